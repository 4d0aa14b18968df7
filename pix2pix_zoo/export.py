"""Translators out of Python: ONNX and TorchScript files that carry their card (``zoo export``).

An export computes what :class:`~pix2pix_zoo.translator.Translator` computes on one batch, for any
batch size and any height and width that are multiples of the card's size multiple: images in the
card's normalisation (``[-1, 1]``, NCHW) in, the generator's output out. Padding an image to the
size multiple and cropping back stays with the caller, as it does for the weights file.

Two inference modes, never silently one for the other:

* ``eval`` (running statistics, no dropout): every batch norm that follows a convolution (plain or
  transposed) in the same ``nn.Sequential`` is folded into that convolution's weights and bias
  (:func:`fold_batch_norms`), which is how the layers of the paper's networks are laid out; other
  batch norms are exported as they are, with their running statistics.
* ``paper`` (each batch's own statistics, dropout active and random, as the reference's test script
  runs): to TorchScript, where the traced graph keeps batch norm's training branch and dropout's
  random masks; to ONNX, with batch norm and dropout written as plain operators (batch means and
  variances, ``RandomUniformLike`` masks: :mod:`pix2pix_zoo.paper_graph`), since inference runtimes
  may ignore ONNX's training-mode flags (onnxruntime removes ``Dropout`` nodes). Either way the
  running statistics are not updated by a call, and a generator whose paper mode cannot be written
  so is refused in one line, never exported as eval mode.

The card travels in the file (ONNX ``metadata_props``, TorchScript extra files) with its
``inference_mode`` set to the mode exported, and ``export`` recorded under ``provenance``, so the
file alone says what it is; :func:`read_export_card` reads it back, checked like any card.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pix2pix_zoo.atomic import write_bytes_atomic
from pix2pix_zoo.errors import ZooError, first_line
from pix2pix_zoo.translator_file import CARD_KEY, Card, InferenceMode

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

ExportFormat = Literal["onnx", "torchscript"]
FORMATS: tuple[ExportFormat, ...] = ("onnx", "torchscript")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}
TORCHSCRIPT_CARD = "card.json"
"""The extra file of a TorchScript export that holds the card."""
DEFAULT_OPSET = 18
INPUT_NAME, OUTPUT_NAME = "images", "translated"


def fold_batch_norms(generator: nn.Module) -> nn.Module:
    """An eval-mode copy of ``generator`` in which every batch norm that directly follows a convolution
    (``Conv2d`` or ``ConvTranspose2d``, ungrouped) in an ``nn.Sequential`` is folded into it and
    replaced by ``nn.Identity``. The copy computes the same function in eval mode, to float rounding."""
    import torch
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = copy.deepcopy(generator).eval()
    for sequence in [m for m in folded.modules() if isinstance(m, nn.Sequential)]:
        names = list(sequence._modules)
        for first, second in zip(names, names[1:]):
            conv, norm = sequence._modules[first], sequence._modules[second]
            if (type(conv) in (nn.Conv2d, nn.ConvTranspose2d) and conv.groups == 1
                    and type(norm) is nn.BatchNorm2d and norm.track_running_stats and norm.running_mean is not None):
                with torch.no_grad():
                    sequence._modules[first] = fuse_conv_bn_eval(conv, norm, transpose=isinstance(conv, nn.ConvTranspose2d))
                sequence._modules[second] = nn.Identity()
    return folded


def export_generator(generator: nn.Module, card: Card, output: Path, export_format: ExportFormat, *,
                     mode: InferenceMode = "eval", opset: int | None = None, half: bool = False) -> Path:
    """Write ``generator`` as ``export_format`` to ``output`` (atomically) with ``card`` inside; return it.
    The errors are :func:`exported`'s, and a file that cannot be written, in one line."""
    data, _ = exported(generator, card, export_format, mode=mode, opset=opset, half=half)
    output = Path(output)
    try:
        write_bytes_atomic(output, data)
    except OSError as error:
        raise ZooError(f"cannot write {output}: {error.strerror or error}") from None
    return output


def exported(generator: nn.Module, card: Card, export_format: ExportFormat, *, mode: InferenceMode = "eval",
             opset: int | None = None, half: bool = False) -> tuple[bytes, Card]:
    """The bytes of ``generator`` exported as ``export_format``, and the card they carry.

    Raises :class:`~pix2pix_zoo.errors.ZooError` in one line for a mode the format cannot compute
    faithfully, and naming the operator for a generator that cannot be exported."""
    import torch

    if export_format not in FORMATS:
        raise ZooError(f"unknown export format {export_format!r}; choose one of: {', '.join(FORMATS)}")
    if mode not in ("eval", "paper"):
        raise ZooError(f"inference mode must be 'eval' or 'paper', not {mode!r}")
    dtype = torch.float16 if half else torch.float32
    # Two images of twice the size multiple (where that stays small): no traced shape is 1 by accident.
    side = card.size_multiple * (2 if card.size_multiple < 64 else 1)
    example = torch.zeros(2, card.in_channels, side, side, dtype=dtype)
    module = _runnable(generator, mode, export_format, example.shape).to(device="cpu", dtype=dtype)
    export_card = replace(card, inference_mode=mode, provenance={
        **card.provenance,
        "export": {"format": export_format, "mode": mode, "dtype": str(dtype).removeprefix("torch."),
                   "torch": torch.__version__},
    })
    text = json.dumps(asdict(export_card), sort_keys=True)
    if export_format == "onnx":
        return _onnx_bytes(module, example, text, opset or DEFAULT_OPSET), export_card
    return _torchscript_bytes(module, example, text), export_card


def _runnable(generator: nn.Module, mode: InferenceMode, export_format: ExportFormat, shape: torch.Size) -> nn.Module:
    """The module to trace: folded in eval mode; in paper mode a train-mode copy whose batch norms
    use each batch's statistics without updating the running ones (momentum 0), or for ONNX its
    plain-operator form (:func:`~pix2pix_zoo.paper_graph.paper_mode_graph`, checked on random
    images of ``shape``)."""
    import torch
    from torch import nn

    if mode == "eval":
        return fold_batch_norms(generator)
    if export_format == "onnx":
        from pix2pix_zoo.paper_graph import paper_mode_graph

        return paper_mode_graph(generator, torch.rand(shape) * 2 - 1)
    copied = copy.deepcopy(generator).train()
    for norm in copied.modules():
        if isinstance(norm, nn.modules.batchnorm._BatchNorm):
            norm.momentum = 0.0
    return copied


def _onnx_bytes(module: nn.Module, example: Tensor, card_text: str, opset: int) -> bytes:
    import torch

    onnx = import_onnx()
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, (example,), buffer, dynamo=False, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                                            OUTPUT_NAME: {0: "batch", 2: "height", 3: "width"}})
        except Exception as error:  # the exporter's errors name the operator it has no translation for
            raise ZooError(f"cannot export to ONNX (opset {opset}): {first_line(str(error))}") from None
    model = onnx.load_from_string(buffer.getvalue())
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = CARD_KEY, card_text
    return model.SerializeToString()


def _torchscript_bytes(module: nn.Module, example: Tensor, card_text: str) -> bytes:
    import torch

    buffer = io.BytesIO()
    # Quiet: the tracer's notes on the shapes it saw (parity at other shapes is what the tests check)
    # and torch.jit's notice that it is deprecated in favour of torch.export, which runs only in Python.
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            traced = torch.jit.trace(module, (example,), check_trace=False)
        except Exception as error:
            raise ZooError(f"cannot export to TorchScript: {first_line(str(error))}") from None
        torch.jit.save(traced, buffer, _extra_files={TORCHSCRIPT_CARD: card_text})
    return buffer.getvalue()


def import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ZooError('ONNX files need the onnx extra: pip install "pix2pix-zoo[onnx]"') from None
    return onnx


def load_torchscript(data: bytes, device: str | torch.device = "cpu", extra_files: dict[str, Any] | None = None) -> Any:
    """A TorchScript export's module, from its bytes (``extra_files`` filled in as torch.jit.load does)."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's notice that it is deprecated in favour of torch.export
        return torch.jit.load(io.BytesIO(data), map_location=device, _extra_files=extra_files or {})


def read_export_card(path: Path) -> Card:
    """The card inside the ONNX export at ``path``, checked like any card (a file without one is refused)."""
    onnx = import_onnx()
    where = f"{str(path)!r}"
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:
        raise ZooError(f"{where} is not an ONNX model: {first_line(str(error))}") from None
    return card_of_model(model, where)


def card_of_model(model: Any, where: str) -> Card:
    """The card in a parsed ONNX model's ``metadata_props``, checked; ``where`` names the file in errors."""
    cards = [entry.value for entry in model.metadata_props if entry.key == CARD_KEY]
    if len(cards) != 1:
        raise ZooError(f"{where} holds no pix2pix-zoo card: export it with `zoo export`")
    try:
        data: Any = json.loads(cards[0])
    except ValueError as error:
        raise ZooError(f"{where}: its card is not JSON ({error})") from None
    return Card.from_dict(data, where=where)
