"""The deployable unit: :class:`Translator` runs a translator file on images of any size.

A translator is one ``model.safetensors``: the generator's weights with its card in the file's
metadata (the format, and the checks that keep a stranger's file from steering the zoo, are
:mod:`pix2pix_zoo.translator_file`'s; its names are importable from here too).
:meth:`Translator.from_pretrained` takes a file, a folder, a run directory or a catalog name: names
are looked up by :func:`pix2pix_zoo.translators.locate`, so this runtime sits above the translator
catalog, which itself needs only the file format. Pictures (PIL in, PIL out) are
:mod:`pix2pix_zoo.pictures`'s, the same as the trainer's sample grids.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor, nn
from torch.nn import functional

from pix2pix_zoo.cpu_kernels import use_native_kernels_where_faster
from pix2pix_zoo.devices import pick_device
from pix2pix_zoo.errors import BadImageError, ZooError
from pix2pix_zoo.export import exported
from pix2pix_zoo.geometry import aligned_tiling, padding_steps
from pix2pix_zoo.image_files import same_size_batches, translate_files
from pix2pix_zoo.onnx_backend import BACKENDS, OnnxGenerator, load_onnx_generator
from pix2pix_zoo.pictures import SUPPORTED_CHANNELS, image_to_tensor, open_codec, picture, sample_grid, to_rgb
from pix2pix_zoo.translator_file import (
    CARD_KEY,
    WEIGHTS_FILE,
    Card,
    InferenceMode,
    check_mode,
    check_translator,
    generator_from_state,
    load_generator,
    read_card,
    save_translator,
)
from pix2pix_zoo.translators import locate

__all__ = [
    "CARD_KEY", "WEIGHTS_FILE", "Card", "InferenceMode", "Translator", "check_translator", "generator_from_state",
    "PRECISIONS", "inference_mode", "load_generator", "locate", "pad_to_multiple", "read_card", "save_translator",
]


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
"""Translator precisions, and the dtype each runs the forward pass's autocast in (None: no autocast)."""


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
    each batch, or tile, is normalised by its own statistics). ``seed`` makes paper mode repeatable:
    with the torch backend each batch starts from it; an onnxruntime session is seeded once, when it
    is loaded (:class:`~pix2pix_zoo.onnx_backend.OnnxGenerator`), and repeats its whole run.

    ``precision`` is ``"fp32"`` (the default, what the reference computes) or ``"bf16"`` / ``"fp16"``:
    the forward pass under torch's autocast (convolutions in half precision, batch norm and the
    output in fp32), faster where the hardware multiplies in 16 bits (GPUs; CPUs with AMX or
    AVX-512 BF16), with outputs that differ by a few levels of 255 (``zoo eval --precision`` says
    how much that moves the held-out figures).
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
        precision: str = "fp32",
    ) -> None:
        self.card = card
        _check_precision(precision, onnxruntime=isinstance(generator, OnnxGenerator))
        self.precision = precision
        self.mode: InferenceMode = mode or card.inference_mode
        self.modes: tuple[InferenceMode, ...] = getattr(generator, "modes", ("eval", "paper"))
        """The modes the generator can compute: both, or an export's own (see :mod:`pix2pix_zoo.export`)."""
        check_mode(self.mode, self.modes)
        check_seed(generator, self.mode, seed)
        self.seed = seed
        self.device = pick_device(device) if isinstance(device, str) else device
        self.generator = generator.to(self.device)
        self.size_multiple = card.size_multiple
        self.tile, self.overlap = aligned_tiling(tile, overlap, self.size_multiple)
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
        backend: str = "auto",
        precision: str = "fp32",
    ) -> Translator:
        """Load a translator from a weights file, its folder, a run directory, a catalog name, a Hub
        name (``hf://ORG/NAME[@REVISION]``, pulled and verified by :func:`pix2pix_zoo.translators.locate`)
        or an ONNX export (``.onnx``, from ``zoo export``).

        ``backend``: ``torch`` runs a weights file's generator; ``onnxruntime`` runs an ONNX export, or
        a weights file exported to ONNX in memory in the one mode asked for (see :mod:`pix2pix_zoo.export`);
        ``auto`` is onnxruntime for ONNX files and torch for the rest. On a CPU the torch backend runs
        small maps on ATen's native kernels (:func:`~pix2pix_zoo.cpu_kernels.use_native_kernels_where_faster`:
        the same results to float rounding, unet_256 1.5-1.7x faster at batch 1). In a 16-bit
        ``precision`` the weights and inputs are channels-last, the layout the 16-bit kernels want
        (unet_256 at batch 8 in bf16 on a CPU with AMX: 39-72 -> 23-34 ms an image)."""
        if backend not in BACKENDS:
            raise ZooError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
        path = locate(name_or_path)
        onnx_file = path.suffix.lower() == ".onnx"
        _check_precision(precision, onnxruntime=onnx_file or backend == "onnxruntime")  # before any export
        picked = pick_device(device) if isinstance(device, str) else device
        if onnx_file:
            if backend == "torch":
                raise ZooError(f"{str(path)!r} is an ONNX export: it runs with the onnxruntime backend")
            generator, card = load_onnx_generator(path, picked, seed)
        else:
            card = read_card(path)
            generator = load_generator(path, card)
            if backend == "onnxruntime":
                model, card = exported(generator, card, "onnx", mode=mode or card.inference_mode)
                generator = OnnxGenerator(model, card, picked, seed)
            elif precision != "fp32":
                generator.to(memory_format=torch.channels_last)  # what 16-bit kernels (AMX, tensor cores) run on
            elif picked.type == "cpu":
                use_native_kernels_where_faster(generator)
        return cls(generator, card, device=picked, mode=mode, seed=seed, tile=tile, overlap=overlap,
                   precision=precision)

    # -- tensors --------------------------------------------------------------------------------------
    def translate(self, images: Tensor) -> Tensor:
        """``[N, C_in, H, W]`` in [-1, 1], any H and W -> ``[N, C_out, H, W]`` on the translator's device."""
        if images.ndim != 4 or images.shape[1] != self.card.in_channels:
            raise ZooError(f"expected images [N, {self.card.in_channels}, H, W], got {list(images.shape)}")
        images = images.to(self.device, torch.float32)
        height, width = images.shape[-2:]
        padded, (top, left) = pad_to_multiple(images, self.size_multiple)
        if self.precision != "fp32":
            padded = padded.contiguous(memory_format=torch.channels_last)
        with inference_mode(self.generator, self.mode), self._seeded(), self._autocast():
            if self.tile is None or max(padded.shape[-2:]) <= self.tile:
                output = self.generator(padded)
            else:
                output = self._tiled(padded)
        return output[..., top : top + height, left : left + width].float()

    def _autocast(self) -> contextlib.AbstractContextManager:
        dtype = PRECISIONS[self.precision]
        return contextlib.nullcontext() if dtype is None else torch.autocast(self.device.type, dtype=dtype)

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
        if self.codec is not None:
            rgb = image_to_tensor(image, 3).float().div_(255)
            return self.codec.encode(rgb[None])[0]
        if self.card.in_channels not in SUPPORTED_CHANNELS:
            raise ZooError(f"this translator takes {self.card.in_channels}-channel input: use translate() with tensors")
        return image_to_tensor(image, self.card.in_channels).float().div_(127.5).sub_(1)

    def to_image(self, output: Tensor, source: Tensor) -> Image.Image:
        """One output ``[C_out, H, W]`` as a PIL image: ``L`` for 1 channel, ``RGB`` for 3, or the
        codec's rendering of it with the input it came from (``[C_in, H, W]``, from :meth:`to_tensor`)."""
        if self.codec is not None:
            output = picture(self.codec, source[None].cpu(), output[None].cpu())[0]
        elif output.shape[0] not in (1, 3):
            raise ZooError(f"this translator makes {output.shape[0]}-channel output: use translate() for tensors")
        rgb = to_rgb(output[None].cpu())[0].permute(1, 2, 0).numpy()
        return Image.fromarray(rgb[..., 0], "L") if output.shape[0] == 1 else Image.fromarray(rgb, "RGB")

    def translate_images(self, images: Sequence[Image.Image], batch_size: int = 1) -> list[Image.Image]:
        """Translate PIL images, running images of the same size together in batches; same order out."""
        results: list[Image.Image | None] = [None] * len(images)
        for chunk in same_size_batches(images, batch_size):
            inputs = torch.stack([self.to_tensor(images[i]) for i in chunk])
            outputs = self.translate(inputs).cpu()  # one copy (and one wait) a batch, not one an image
            for index, source, output in zip(chunk, inputs, outputs):
                results[index] = self.to_image(output, source)
        return results  # type: ignore[return-value]

    def translate_files(
        self, jobs: Sequence[tuple[Path, Path]], output: Path, *, batch_size: int = 1, side_by_side: bool = False,
        file_threads: bool | None = None,
    ) -> Iterator[tuple[Path, Path | BadImageError]]:
        """Translate image files into PNGs under ``output``, as :func:`pix2pix_zoo.image_files.translate_files`
        says; ``side_by_side`` writes input | output sheets.

        ``file_threads`` (decoding and encoding on threads of their own, beside the forward passes)
        defaults to where a core is spare: the forward passes run on an accelerator, or torch's
        threads leave a CPU core free. Where no core is spare they run in turn: on a 2-core CPU the
        threads took cores from the forward passes and saved nothing (48 images, unet_256: the
        passes 5.5-6.5 s in turn, 6.9 s beside the threads, the same wall time).
        """
        if file_threads is None:
            file_threads = self.device.type != "cpu" or (os.cpu_count() or 1) > torch.get_num_threads()
        yield from translate_files(self.translate_images, jobs, output, batch_size=batch_size,
                                   sheet=self.sheet if side_by_side else None, file_threads=file_threads)

    def __call__(self, image: Image.Image) -> Image.Image:
        """Translate one PIL image; the output has its size."""
        return self.translate_images([image])[0]

    def sheet(self, image: Image.Image, output: Image.Image) -> Image.Image:
        """Input | output side by side, as the trainer's sample grids show them."""
        translated = image_to_tensor(output, len(output.getbands())).float().div_(127.5).sub_(1)
        return sample_grid(picture(self.codec, self.to_tensor(image)[None]), translated[None])


def check_seed(generator: nn.Module, mode: InferenceMode, seed: int | None) -> None:
    """Refuse a paper-mode seed that ``generator`` cannot take: an onnxruntime session draws dropout
    from the seed it was made with (:class:`~pix2pix_zoo.onnx_backend.OnnxGenerator`)."""
    if isinstance(generator, OnnxGenerator) and mode == "paper" and seed != generator.seed:
        drawn = "a random seed" if generator.seed is None else f"seed {generator.seed}"
        raise ZooError(f"this onnxruntime session draws paper mode's dropout from {drawn}, set when it was "
                       "loaded: load it again to change the seed")


def _check_precision(precision: str, *, onnxruntime: bool) -> None:
    if precision not in PRECISIONS:
        raise ZooError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    if precision != "fp32" and onnxruntime:
        raise ZooError(f"the onnxruntime backend runs the file's own precision, not {precision} "
                       "(zoo export --half writes an fp16 file)")


def pad_to_multiple(images: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Pad ``[N, C, H, W]`` so H and W are multiples of ``multiple``, split evenly between the two
    sides (see :func:`~pix2pix_zoo.geometry.padding_steps`); return the padded images and the
    (top, left) offset of the original."""
    reflections, rest, offset = padding_steps(*images.shape[-2:], multiple)
    for step in reflections:  # F.pad's order: left, right, top, bottom
        images = functional.pad(images, step, mode="reflect")
    if any(rest):
        images = functional.pad(images, rest, mode="replicate")
    return images, offset


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
