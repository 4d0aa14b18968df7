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
import io
import math
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor, nn
from torch.nn import functional

from pix2pix_zoo.atomic import write_bytes_atomic
from pix2pix_zoo.cpu_kernels import use_native_kernels_where_faster
from pix2pix_zoo.data.images import open_image
from pix2pix_zoo.devices import pick_device
from pix2pix_zoo.errors import BadImageError, ZooError
from pix2pix_zoo.export import exported
from pix2pix_zoo.onnx_backend import BACKENDS, OnnxGenerator, load_onnx_generator
from pix2pix_zoo.pictures import SUPPORTED_CHANNELS, image_to_tensor, open_codec, picture, sample_grid, to_rgb
from pix2pix_zoo.translator_file import (
    CARD_KEY,
    WEIGHTS_FILE,
    Card,
    InferenceMode,
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
        if self.mode not in ("eval", "paper"):
            raise ZooError(f"inference mode must be 'eval' or 'paper', not {self.mode!r}")
        self.modes: tuple[InferenceMode, ...] = getattr(generator, "modes", ("eval", "paper"))
        """The modes the generator can compute: both, or an export's own (see :mod:`pix2pix_zoo.export`)."""
        if self.mode not in self.modes:
            raise ZooError(f"this translator runs {' or '.join(self.modes)} mode only, not {self.mode}")
        check_seed(generator, self.mode, seed)
        self.seed = seed
        self.device = pick_device(device) if isinstance(device, str) else device
        self.generator = generator.to(self.device)
        self.size_multiple = card.size_multiple
        self.tile, self.overlap = self._tiling(tile, overlap)
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
        by_size: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(images):
            by_size.setdefault(image.size, []).append(index)
        results: list[Image.Image | None] = [None] * len(images)
        for indices in by_size.values():
            for start in range(0, len(indices), max(1, batch_size)):
                chunk = indices[start : start + max(1, batch_size)]
                inputs = torch.stack([self.to_tensor(images[i]) for i in chunk])
                outputs = self.translate(inputs).cpu()  # one copy (and one wait) a batch, not one an image
                for index, source, output in zip(chunk, inputs, outputs):
                    results[index] = self.to_image(output, source)
        return results  # type: ignore[return-value]

    def translate_files(
        self, jobs: Sequence[tuple[Path, Path]], output: Path, *, batch_size: int = 1, side_by_side: bool = False,
        file_threads: bool | None = None,
    ) -> Iterator[tuple[Path, Path | BadImageError]]:
        """Translate image files into PNGs under ``output``: each job is a source file and its output
        name relative to ``output``. Yields, in the jobs' order, each source with the file written or
        the BadImageError that kept it from being read; any other error (a full disk) is raised.

        With ``file_threads`` (the default where a core is spare: the forward passes run on an
        accelerator, or torch's threads leave a CPU core free), the forward passes do not wait for
        files: decoding runs up to :data:`FILES_AHEAD` batches ahead and encoding as many behind, each
        on a thread of its own (PIL decodes and encodes without the GIL). Where no core is spare they
        run in turn: on a 2-core CPU the threads took cores from the forward passes and saved nothing
        (48 images, unet_256: the passes 5.5-6.5 s in turn, 6.9 s beside the threads, the same wall time).
        Each output is written whole or not at all (a temporary file renamed), so an interrupted
        run leaves no half-written PNG; ``side_by_side`` writes input | output sheets instead.
        """
        batches = [jobs[start : start + max(1, batch_size)] for start in range(0, len(jobs), max(1, batch_size))]
        if file_threads is None:
            file_threads = self.device.type != "cpu" or (os.cpu_count() or 1) > torch.get_num_threads()
        with _file_worker(file_threads, "zoo-decode") as readers, _file_worker(file_threads, "zoo-encode") as writers:
            reads: deque[Future] = deque(readers.submit(_read_batch, batch) for batch in batches[:FILES_AHEAD])
            writes: deque[Future] = deque()
            try:
                for index in range(len(batches)):
                    decoded = reads.popleft().result()
                    if index + FILES_AHEAD < len(batches):
                        reads.append(readers.submit(_read_batch, batches[index + FILES_AHEAD]))
                    images = [image for _, _, image in decoded if isinstance(image, Image.Image)]
                    outputs = iter(self.translate_images(images, batch_size))
                    pairs = [(source, name, image, None if isinstance(image, BadImageError) else next(outputs))
                             for source, name, image in decoded]
                    writes.append(writers.submit(self._write_batch, pairs, output, side_by_side))
                    while len(writes) > FILES_AHEAD or (writes and writes[0].done()):
                        yield from writes.popleft().result()
                while writes:
                    yield from writes.popleft().result()
            finally:
                for pending in (*reads, *writes):
                    pending.cancel()

    def _write_batch(self, pairs: list[tuple[Path, Path, Image.Image | BadImageError, Image.Image | None]],
                     output: Path, side_by_side: bool) -> list[tuple[Path, Path | BadImageError]]:
        written: list[tuple[Path, Path | BadImageError]] = []
        for source, name, image, result in pairs:
            if result is None:
                written.append((source, image))  # type: ignore[arg-type]  # the BadImageError
                continue
            target = output / name
            target.parent.mkdir(parents=True, exist_ok=True)
            encoded = io.BytesIO()
            picture_out = self.sheet(image, result) if side_by_side else result  # type: ignore[arg-type]
            picture_out.save(encoded, format="PNG")
            write_bytes_atomic(target, encoded.getvalue())
            written.append((source, target))
        return written

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


FILES_AHEAD = 2
"""Batches :meth:`Translator.translate_files` decodes ahead of the forward passes, and encodes behind."""


class _InTurn(Executor):
    """An executor that runs each task when it is submitted, on the caller's thread."""

    def submit(self, fn, /, *args, **kwargs) -> Future:  # type: ignore[override]
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as error:  # handed to whoever asks for the result, as a thread's would be
            future.set_exception(error)
        return future


def _file_worker(own_thread: bool, name: str) -> Executor:
    return ThreadPoolExecutor(1, thread_name_prefix=name) if own_thread else _InTurn()


def _read_batch(jobs: Sequence[tuple[Path, Path]]) -> list[tuple[Path, Path, Image.Image | BadImageError]]:
    """Each job's source decoded (or the error that kept it from being read), with its output name."""
    decoded: list[tuple[Path, Path, Image.Image | BadImageError]] = []
    for source, name in jobs:
        try:
            decoded.append((source, name, open_image(source)))
        except BadImageError as error:
            decoded.append((source, name, error))
    return decoded


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
