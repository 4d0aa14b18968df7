"""The deployable unit: a generator's weights in safetensors with its card in the file's metadata.

The card's essentials (canonical spec, channels, direction, normalisation, size multiple) live in
the safetensors ``__metadata__``, so ``model.safetensors`` alone rebuilds and runs the generator.
:class:`Translator` loads one and runs it on images of any size.

A translator file is anyone's data, so it never steers the zoo: its card is checked like any input,
its spec is rebuilt without the options that would load weights from elsewhere, and the generator
is compared with the file's tensor shapes on the meta device before anything is built for real.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save
from torch import Tensor, nn
from torch.nn import functional

from pix2pix_zoo.atomic import temporary_path
from pix2pix_zoo.errors import SpecError, ZooError, first_line
from pix2pix_zoo.plugins import missing_distributions_hint
from pix2pix_zoo.spec import MAX_CHANNELS, Spec, resolve
from pix2pix_zoo.weights import misfit, read_safetensors, safetensors_shapes

InferenceMode = Literal["eval", "paper"]
WEIGHTS_FILE = "model.safetensors"
CARD_KEY = "pix2pix_zoo.card"


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
    spec = _rebuilding_spec(path, card, str(path))
    # Built for real rather than on the meta device: a plugin's non-persistent buffers would be left
    # on meta by load_state_dict, and initialising a pix2pix generator costs well under a second.
    generator = spec.build_generator(card.in_channels, card.out_channels)
    generator.load_state_dict(read_safetensors(path), strict=True)
    return generator


def _rebuilding_spec(path: Path, card: Card, where: str) -> Spec:
    """The spec that rebuilds the card's generator, checked against the file on the meta device:
    its options, the size multiple and the tensor names and shapes in the file's header."""
    spec, generator = _meta_generator(card.spec, card.in_channels, card.out_channels, where, card.plugins)
    if generator.size_multiple != card.size_multiple:
        raise ZooError(
            f"{where}: card field 'size_multiple' is {card.size_multiple}, but {spec.generator} "
            f"needs {generator.size_multiple}"
        )
    problems = misfit(_shapes(generator.state_dict()), safetensors_shapes(path))
    if problems:
        raise ZooError(f"{where} does not fit {card.spec!r}: {problems}")
    return spec


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
    generator = spec.build_generator(in_channels, out_channels)
    generator.load_state_dict(state, strict=True)
    return generator


def _meta_generator(text: str | Spec, in_channels: int, out_channels: int, where: str,
                    plugins: dict[str, str] | None = None) -> tuple[Spec, nn.Module]:
    """A spec for weights from a file, without the options that would load weights from elsewhere
    (see :class:`pix2pix_zoo.registry.External`), and its generator on the meta device, which
    allocates and initialises nothing; a ZooError naming ``where`` if either is invalid (and the
    plugin distributions to install, of ``plugins``, where this environment lacks them)."""
    try:
        spec = resolve(text).self_contained()
        with torch.device("meta"):
            return spec, spec.build_generator(in_channels, out_channels)
    except SpecError as error:
        raise ZooError(f"{where}: {error}{missing_distributions_hint(plugins)}") from None


def _shapes(tensors: dict[str, Tensor]) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in tensors.items()}


@contextlib.contextmanager
def inference_mode(generator: nn.Module, mode: InferenceMode) -> Iterator[nn.Module]:
    """Run a generator as ``eval`` (running statistics, no dropout) or as the ``paper`` does at test
    time (batch statistics and dropout, the reference test script's default) without changing it:
    in paper mode batch-norm running statistics are frozen (momentum 0) and restored afterwards.
    """
    was_training = generator.training
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone()) for m in norms]
    try:
        if mode == "eval":
            generator.eval()
        else:
            generator.train()
            for m in norms:
                m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch: unchanged
        with torch.no_grad():
            yield generator
    finally:
        for m, (momentum, tracked) in zip(norms, saved):
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)
        generator.train(was_training)


def locate(name_or_path: str | os.PathLike[str]) -> Path:
    """The weights file a name or path stands for: a ``.safetensors`` file, a folder holding
    ``model.safetensors`` (or a run directory holding ``translator/model.safetensors``), else a
    catalog name, pulled into the cache."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        for candidate in (path / WEIGHTS_FILE, path / "translator" / WEIGHTS_FILE):
            if candidate.is_file():
                return candidate
        raise ZooError(f"{str(path)!r} holds no {WEIGHTS_FILE} (nor translator/{WEIGHTS_FILE})")
    text = str(name_or_path)
    if path.suffix == ".safetensors" or os.sep in text or "/" in text:
        raise ZooError(f"no translator at {text!r}: no such file or folder")
    from pix2pix_zoo.catalog import pull  # the catalog is only needed for names

    return pull(text)


class Translator:
    """A generator ready to translate images of any size and aspect.

    Images are reflect-padded to the generator's size multiple and cropped back, so the output has
    the input's size. Images larger than ``tile`` pixels on a side are translated in overlapping
    tiles (``tile`` and ``overlap`` aligned to the size multiple) blended with a linear window, so
    memory stays bounded; ``tile=None`` never tiles. The window is zero in the outer quarter of
    each overlap, so a network whose receptive field reaches at most ``overlap // 4`` pixels gives
    the untiled result; a U-Net sees the whole image and differs slightly near the seams.

    ``mode`` is ``"eval"`` (running statistics, no dropout: deterministic, batching changes
    nothing) or ``"paper"`` (batch statistics and dropout, as the reference test script runs:
    each batch, or tile, is normalised by its own statistics). ``seed`` makes paper mode repeatable.
    """

    def __init__(
        self,
        generator: nn.Module,
        card: Card,
        *,
        device: str | torch.device = "auto",
        mode: InferenceMode | None = None,
        seed: int | None = None,
        tile: int | None = 1024,
        overlap: int = 128,
    ) -> None:
        from pix2pix_zoo.engine.distributed import pick_device

        self.card = card
        self.mode: InferenceMode = mode or card.inference_mode
        if self.mode not in ("eval", "paper"):
            raise ZooError(f"inference mode must be 'eval' or 'paper', not {self.mode!r}")
        self.seed = seed
        self.device = pick_device(device) if isinstance(device, str) else device
        self.generator = generator.to(self.device)
        self.size_multiple = card.size_multiple
        self.tile, self.overlap = self._tiling(tile, overlap)
        from pix2pix_zoo.engine.report import open_codec

        self.codec = open_codec(card.codec)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str],
        *,
        device: str | torch.device = "auto",
        mode: InferenceMode | None = None,
        seed: int | None = None,
        tile: int | None = 1024,
        overlap: int = 128,
    ) -> Translator:
        """Load a translator from a weights file, its folder, a run directory or a catalog name."""
        path = locate(name_or_path)
        card = read_card(path)
        generator = load_generator(path, card)
        return cls(generator, card, device=device, mode=mode, seed=seed, tile=tile, overlap=overlap)

    def _tiling(self, tile: int | None, overlap: int) -> tuple[int | None, int]:
        if tile is None:
            return None, 0
        if tile < 1 or overlap < 0:
            raise ZooError(f"tile must be at least 1 and overlap at least 0, not tile {tile} and overlap {overlap}")
        multiple = self.size_multiple
        aligned_tile = max(multiple, tile // multiple * multiple)
        aligned_overlap = math.ceil(overlap / multiple) * multiple
        if aligned_overlap >= aligned_tile:
            raise ZooError(
                f"tile {tile} is too small for overlap {overlap}: both are rounded to this translator's size "
                f"multiple {multiple}, and the tile must be at least {aligned_overlap + multiple} to exceed the overlap"
            )
        return aligned_tile, aligned_overlap

    # -- tensors --------------------------------------------------------------------------------------
    def translate(self, images: Tensor) -> Tensor:
        """``[N, C_in, H, W]`` in [-1, 1], any H and W -> ``[N, C_out, H, W]`` on the translator's device."""
        if images.ndim != 4 or images.shape[1] != self.card.in_channels:
            raise ZooError(f"expected images [N, {self.card.in_channels}, H, W], got {list(images.shape)}")
        images = images.to(self.device, torch.float32)
        height, width = images.shape[-2:]
        padded, (top, left) = pad_to_multiple(images, self.size_multiple)
        with inference_mode(self.generator, self.mode), self._seeded():
            if self.tile is None or max(padded.shape[-2:]) <= self.tile:
                output = self.generator(padded)
            else:
                output = self._tiled(padded)
        return output[..., top : top + height, left : left + width]

    @contextlib.contextmanager
    def _seeded(self) -> Iterator[None]:
        """Dropout draws from a forked, seeded generator: the same seed, the same output."""
        if self.seed is None:
            yield
            return
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, device_type=self.device.type):
            torch.manual_seed(self.seed)
            yield

    def _tiled(self, images: Tensor) -> Tensor:
        """Run tile by tile, accumulating window-weighted outputs and their weights."""
        height, width = images.shape[-2:]
        output: Tensor | None = None
        total = images.new_zeros(1, 1, height, width)
        for top, tile_height in _spans(height, self.tile, self.overlap):
            for left, tile_width in _spans(width, self.tile, self.overlap):
                piece = self.generator(images[..., top : top + tile_height, left : left + tile_width])
                if output is None:
                    output = images.new_zeros(images.shape[0], piece.shape[1], height, width)
                window = torch.outer(
                    _ramp(tile_height, top > 0, top + tile_height < height, self.overlap, images),
                    _ramp(tile_width, left > 0, left + tile_width < width, self.overlap, images),
                )
                output[..., top : top + tile_height, left : left + tile_width] += piece * window
                total[..., top : top + tile_height, left : left + tile_width] += window
        assert output is not None
        return output / total

    # -- PIL images -----------------------------------------------------------------------------------
    def to_tensor(self, image: Image.Image) -> Tensor:
        """A PIL image as the generator's input ``[C_in, H, W]`` in [-1, 1]: through the card's codec
        when it has one, else grey or colour converted as the zoo reads data."""
        from pix2pix_zoo.data.images import SUPPORTED_CHANNELS, image_to_tensor

        if self.codec is not None:
            rgb = image_to_tensor(image, 3).float().div_(255)
            return self.codec.encode(rgb[None])[0]
        if self.card.in_channels not in SUPPORTED_CHANNELS:
            raise ZooError(f"this translator takes {self.card.in_channels}-channel input: use translate() with tensors")
        return image_to_tensor(image, self.card.in_channels).float().div_(127.5).sub_(1)

    def to_image(self, output: Tensor, source: Tensor) -> Image.Image:
        """One output ``[C_out, H, W]`` as a PIL image: ``L`` for 1 channel, ``RGB`` for 3, or the
        codec's rendering of it with the input it came from (``[C_in, H, W]``, from :meth:`to_tensor`)."""
        from pix2pix_zoo.engine.report import picture, to_rgb

        if self.codec is not None:
            output = picture(self.codec, source[None].cpu(), output[None].cpu())[0]
        elif output.shape[0] not in (1, 3):
            raise ZooError(f"this translator makes {output.shape[0]}-channel output: use translate() for tensors")
        rgb = to_rgb(output[None].cpu())[0].permute(1, 2, 0).numpy()
        return Image.fromarray(rgb[..., 0], "L") if output.shape[0] == 1 else Image.fromarray(rgb, "RGB")

    def translate_images(self, images: Sequence[Image.Image], batch_size: int = 1) -> list[Image.Image]:
        """Translate PIL images, running images of the same size together in batches; same order out."""
        by_size: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(images):
            by_size.setdefault(image.size, []).append(index)
        results: list[Image.Image | None] = [None] * len(images)
        for indices in by_size.values():
            for start in range(0, len(indices), max(1, batch_size)):
                chunk = indices[start : start + max(1, batch_size)]
                inputs = torch.stack([self.to_tensor(images[i]) for i in chunk])
                outputs = self.translate(inputs)
                for index, source, output in zip(chunk, inputs, outputs):
                    results[index] = self.to_image(output, source)
        return results  # type: ignore[return-value]

    def __call__(self, image: Image.Image) -> Image.Image:
        """Translate one PIL image; the output has its size."""
        return self.translate_images([image])[0]

    def sheet(self, image: Image.Image, output: Image.Image) -> Image.Image:
        """Input | output side by side, as the trainer's sample grids show them."""
        from pix2pix_zoo.data.images import image_to_tensor
        from pix2pix_zoo.engine.report import picture, sample_grid

        translated = image_to_tensor(output, len(output.getbands())).float().div_(127.5).sub_(1)
        return sample_grid(picture(self.codec, self.to_tensor(image)[None]), translated[None])


def pad_to_multiple(images: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Pad ``[N, C, H, W]`` so H and W are multiples of ``multiple``, split evenly between the two
    sides; return the padded images and the (top, left) offset of the original.

    Reflection (which has no seam) needs the pad to be smaller than the side, so a side much
    smaller than the multiple is reflected repeatedly, and a side of one pixel is replicated.
    """
    height, width = images.shape[-2:]
    extra_height, extra_width = -height % multiple, -width % multiple
    top, left = extra_height // 2, extra_width // 2
    pads = [left, extra_width - left, top, extra_height - top]  # F.pad order: left, right, top, bottom
    while any(pads):
        height, width = images.shape[-2:]
        step = [min(pads[0], width - 1), min(pads[1], width - 1), min(pads[2], height - 1), min(pads[3], height - 1)]
        if not any(step):  # a side of one pixel: nothing to reflect
            return functional.pad(images, pads, mode="replicate"), (top, left)
        images = functional.pad(images, step, mode="reflect")
        pads = [p - s for p, s in zip(pads, step)]
    return images, (top, left)


def _spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """(start, size) of tiles covering ``length``: a stride of ``tile - overlap``, the last tile
    flush with the end (all starts stay multiples of the size multiple)."""
    if length <= tile:
        return [(0, length)]
    starts = list(range(0, length - tile, tile - overlap)) + [length - tile]
    return [(start, tile) for start in starts]


def _ramp(size: int, fade_in: bool, fade_out: bool, overlap: int, like: Tensor) -> Tensor:
    """A tile's blending weights along one axis: zero on the outer quarter of an overlap (where a
    tile's edge is not the image's edge, the network sees the tile border), rising linearly over
    the next half to one."""
    margin, rise = overlap // 4, max(1, overlap // 2)
    position = torch.arange(size, device=like.device, dtype=like.dtype)
    weight = torch.ones(size, device=like.device, dtype=like.dtype)
    if fade_in:
        weight = torch.minimum(weight, ((position - margin + 1) / (rise + 1)).clamp(0, 1))
    if fade_out:
        weight = torch.minimum(weight, ((size - position - margin) / (rise + 1)).clamp(0, 1))
    return weight
