"""The translator file: a generator's weights in safetensors with its card in the file's metadata.

The card's essentials (canonical spec, channels, direction, normalisation, size multiple) live in
the safetensors ``__metadata__``, so ``model.safetensors`` alone rebuilds the generator. The
trainer writes these files, the catalog pulls, converts and publishes them, and
:class:`~pix2pix_zoo.translator.Translator` runs them; this module is the format all three share.

A translator file is anyone's data, so it never steers the zoo: its card is checked like any input,
its spec is rebuilt without the options that would load weights from elsewhere, and the generator
is compared with the file's tensor shapes on the meta device before anything is built for real.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from safetensors import safe_open

from pix2pix_zoo.atomic import temporary_path
from pix2pix_zoo.errors import SpecError, ZooError, first_line
from pix2pix_zoo.plugins import missing_distributions_hint
from pix2pix_zoo.spec import MAX_CHANNELS, Spec, resolve
from pix2pix_zoo.weights import misfit, read_safetensors, safetensors_shapes

if TYPE_CHECKING:  # torch is imported where tensors are written or networks built: the catalog lists without it
    from torch import Tensor, nn

InferenceMode = Literal["eval", "paper"]
WEIGHTS_FILE = "model.safetensors"
CARD_KEY = "pix2pix_zoo.card"


def check_mode(mode: str, modes: tuple[InferenceMode, ...] = ("eval", "paper")) -> None:
    """Refuse, in one line, a mode that is not an inference mode or that a translator cannot run
    (``modes``: an export computes only the mode it was exported in)."""
    if mode not in ("eval", "paper"):
        raise ZooError(f"inference mode must be 'eval' or 'paper', not {mode!r}")
    if mode not in modes:
        raise ZooError(f"this translator runs {' or '.join(modes)} mode only, not {mode}")


@dataclass
class Card:
    """What a translator is; serialised as JSON into the weights file's metadata."""

    spec: str
    in_channels: int
    out_channels: int
    direction: str = "AtoB"
    codec: str = ""
    """The registered image codec between pictures and tensors (``""``: plain grey or RGB)."""
    size_multiple: int = 1
    normalisation: str = "[-1, 1]"
    inference_mode: InferenceMode = "paper"
    dataset: str = ""
    task: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    license: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)
    plugins: dict[str, str] = field(default_factory=dict)
    """``{distribution: version}`` of the third-party plugins the spec's components come from."""

    @classmethod
    def from_dict(cls, data: Any, where: str = "card") -> Card:
        """A card from its JSON, every field's type, range or choice checked first (unknown fields
        are ignored); a ZooError names ``where`` and the field at fault."""
        if not isinstance(data, dict):
            raise ZooError(f"{where}: the card is {_shown(data)}, not a JSON object")
        for key in ("spec", "in_channels", "out_channels"):
            if key not in data:
                raise ZooError(f"{where}: the card has no {key!r}")
        for key, (fits, expected) in _CARD_RULES.items():
            if key in data and not fits(data[key]):
                raise ZooError(f"{where}: card field {key!r} must be {expected}, not {_shown(data[key])}")
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def _int_from(low: int, high: int) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


# A size multiple is a generator's total downsampling: 2**8 for the paper's U-Net.
MAX_SIZE_MULTIPLE = 2**16
MAX_CARD_PLUGINS = 32
_CARD_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "spec": (lambda value: isinstance(value, str) and bool(value.strip()), "a spec string"),
    "in_channels": (_int_from(1, MAX_CHANNELS), f"an integer from 1 to {MAX_CHANNELS}"),
    "out_channels": (_int_from(1, MAX_CHANNELS), f"an integer from 1 to {MAX_CHANNELS}"),
    "direction": (lambda value: value in ("AtoB", "BtoA"), "AtoB or BtoA"),
    "codec": (_is_text, "a codec name"),
    "size_multiple": (_int_from(1, MAX_SIZE_MULTIPLE), f"an integer from 1 to {MAX_SIZE_MULTIPLE}"),
    "normalisation": (_is_text, "a string"),
    "inference_mode": (lambda value: value in ("eval", "paper"), "eval or paper"),
    "dataset": (_is_text, "a string"),
    "task": (_is_text, "a string"),
    "metrics": (lambda value: isinstance(value, dict), "a JSON object"),
    "license": (_is_text, "a string"),
    "provenance": (lambda value: isinstance(value, dict), "a JSON object"),
    "plugins": (lambda value: isinstance(value, dict) and len(value) <= MAX_CARD_PLUGINS and all(
        isinstance(k, str) and isinstance(v, str) and 0 < len(k) <= 100 and len(v) <= 100 for k, v in value.items()
    ), f"a JSON object of at most {MAX_CARD_PLUGINS} distribution names and versions"),
}


def _shown(value: Any, longest: int = 60) -> str:
    """A value from a file, short enough for a one-line message."""
    text = repr(value)
    return text if len(text) <= longest else f"{text[:longest]}..."


def save_translator(directory: Path, generator: nn.Module, card: Card) -> Path:
    """Write ``directory/model.safetensors`` (weights + card) atomically and return its path.

    The file is written under a temporary name of this call's own in the same folder, then renamed
    over the target, so that concurrent saves never share a half-written file; a failed write
    (a full disk) leaves the folder as it was and is one ZooError.
    """
    from safetensors.torch import save

    path = directory / WEIGHTS_FILE
    temporary = temporary_path(path)
    tensors = {k: v.detach().contiguous().cpu() for k, v in generator.state_dict().items()}
    try:
        directory.mkdir(parents=True, exist_ok=True)
        temporary.write_bytes(save(tensors, metadata={CARD_KEY: json.dumps(asdict(card), sort_keys=True)}))
        temporary.replace(path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise ZooError(f"cannot write {path}: {error.strerror or error}") from None
        raise
    return path


def read_card(path: Path, where: str | None = None) -> Card:
    """The card stored in a translator's weights file, its fields checked; ``where`` names the file
    in errors (default: its path)."""
    where = where or str(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception as error:  # safetensors raises its own error types for corrupt files
        raise ZooError(f"{where} is not a pix2pix-zoo translator: {first_line(error)}") from None
    if CARD_KEY not in metadata:
        raise ZooError(f"{where} is not a pix2pix-zoo translator: its metadata holds no {CARD_KEY!r}")
    try:
        data = json.loads(metadata[CARD_KEY])
    except ValueError as error:
        raise ZooError(f"{where}: the card is not valid JSON: {first_line(error)}") from None
    return Card.from_dict(data, where)


def check_translator(path: Path, where: str | None = None) -> Card:
    """The file's card, once the file is known to rebuild its generator (see :func:`load_generator`)
    without building anything for real."""
    card = read_card(path, where)
    _rebuilding_spec(path, card, where or str(path))
    return card


def load_generator(path: Path, card: Card) -> nn.Module:
    """The card's generator with the file's weights, loaded strictly, on the CPU; built only once
    the file is known to fit it (see :func:`check_translator`)."""
    spec, meta = _rebuilding_spec(path, card, str(path))
    return _holding(meta, spec, card.in_channels, card.out_channels, read_safetensors(path))


def _rebuilding_spec(path: Path, card: Card, where: str) -> tuple[Spec, nn.Module]:
    """The spec that rebuilds the card's generator, checked against the file on the meta device:
    its options, the size multiple and the tensor names and shapes in the file's header; and that
    generator, on the meta device."""
    spec, generator = _meta_generator(card.spec, card.in_channels, card.out_channels, where, card.plugins)
    if generator.size_multiple != card.size_multiple:
        raise ZooError(
            f"{where}: card field 'size_multiple' is {card.size_multiple}, but {spec.generator} "
            f"needs {generator.size_multiple}"
        )
    problems = misfit(_shapes(generator.state_dict()), safetensors_shapes(path))
    if problems:
        raise ZooError(f"{where} does not fit {card.spec!r}: {problems}")
    return spec, generator


def generator_from_state(spec: str | Spec, in_channels: int, out_channels: int, state: dict[str, Tensor],
                         where: str) -> nn.Module:
    """``spec``'s generator holding the tensors of ``state`` (loaded strictly), built only once
    their names and shapes are known to fit it; ``where`` names them in errors.

    Batch norm's ``num_batches_tracked`` may be missing: the reference's files predate it, and
    loading fills it in.
    """
    spec, meta = _meta_generator(spec, in_channels, out_channels, where)
    expected = {
        k: v for k, v in _shapes(meta.state_dict()).items() if k in state or not k.endswith("num_batches_tracked")
    }
    problems = misfit(expected, _shapes(state))
    if problems:
        raise ZooError(f"{where} does not fit {str(spec)!r}: {problems}")
    return _holding(meta, spec, in_channels, out_channels, state)


def _holding(meta: nn.Module, spec: Spec, in_channels: int, out_channels: int, state: dict[str, Tensor]) -> nn.Module:
    """The generator ``meta`` (built on the meta device, checked to fit ``state``) holding copies of
    ``state``'s tensors, in its own dtypes, on the CPU.

    Nothing is initialised only to be overwritten: the 54M weights of unet_256 took 0.9 s to
    initialise. The tensors are copied rather than kept, since a safetensors file's tensors are
    mapped from the file, which may later change under a long-lived process. A generator that
    keeps something the state does not hold (a plugin's non-persistent buffer) would be left on
    the meta device: that one is built for real and loaded into instead. A missing
    ``num_batches_tracked`` is filled in as the zero a fresh build holds.
    """
    import torch

    expected = meta.state_dict()
    copies = {key: value.to(dtype=expected[key].dtype, copy=True) for key, value in state.items()}
    for key, value in expected.items():
        if key not in copies and key.endswith("num_batches_tracked"):
            copies[key] = torch.zeros((), dtype=value.dtype)
    meta.load_state_dict(copies, strict=True, assign=True)
    if any(tensor.is_meta for tensor in [*meta.parameters(), *meta.buffers()]):
        generator = spec.build_generator(in_channels, out_channels)
        generator.load_state_dict(state, strict=True)
        return generator
    return meta


def _meta_generator(text: str | Spec, in_channels: int, out_channels: int, where: str,
                    plugins: dict[str, str] | None = None) -> tuple[Spec, nn.Module]:
    """A spec for weights from a file, without the options that would load weights from elsewhere
    (see :class:`pix2pix_zoo.components.External`), and its generator on the meta device, which
    allocates and initialises nothing; a ZooError naming ``where`` if either is invalid (and the
    plugin distributions to install, of ``plugins``, where this environment lacks them)."""
    import torch

    try:
        spec = resolve(text).self_contained()
        with torch.device("meta"):
            return spec, spec.build_generator(in_channels, out_channels)
    except SpecError as error:
        raise ZooError(f"{where}: {error}{missing_distributions_hint(plugins)}") from None


def _shapes(tensors: dict[str, Tensor]) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in tensors.items()}
