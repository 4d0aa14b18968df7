"""Paired augmentation ("random jitter") on the training device, a batch at a time.

The loader hands over decoded ``uint8`` pairs (:func:`collate_pairs`); :class:`PairedAugment`
resizes, crops and flips them where the model runs and returns floats in [-1, 1]. A and B of a
pair are concatenated along channels and transformed once, so they stay aligned pixel for pixel;
each pair in the batch gets its own crop position and flip.

The preprocess modes are the reference implementation's (``--preprocess``):

=======================  =================================================================
``resize_and_crop``      resize to ``load_size`` x ``load_size``, random ``crop_size`` crop
``crop``                 random ``crop_size`` crop of the image as it is
``scale_width``          resize to width ``load_size``, height keeping the aspect ratio (at
                         least ``crop_size``)
``scale_width_and_crop`` ``scale_width``, then a random ``crop_size`` crop
``none``                 resize only to the nearest multiple of ``size_multiple`` (4)
=======================  =================================================================

plus a horizontal flip of half the pairs when ``flip`` is on. Resizing is bicubic with
antialiasing, as PIL's bicubic resize in the reference.

Evaluation (``train=False``) is deterministic and does what the reference's test script does
with its defaults: it loads at ``crop_size`` (the reference sets ``load_size = crop_size`` at
test time "to avoid cropping") and never flips. Where a crop is still needed (``crop``, or a tall
image under ``scale_width_and_crop``) it is centred, where the reference's would be random.

Crops and flips are one gather with per-sample indices, exact to the pixel; random numbers come
from the ``generator`` given (on its own device), so a run with the same seeds repeats exactly.
Nothing here reads a value back to the host. (kornia's random augmentations draw from the global
RNG and crop by warping, so this is plain torch.)
"""

from __future__ import annotations

import typing
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from pix2pix_zoo.data import PreprocessMode
from pix2pix_zoo.errors import DataError
from pix2pix_zoo.interfaces import Direction

PREPROCESS_MODES: tuple[str, ...] = typing.get_args(PreprocessMode)


@dataclass(frozen=True)
class PairedAugment:
    """Resize, crop and flip ``uint8`` pairs identically for A and B; return floats in [-1, 1]."""

    preprocess: PreprocessMode = "resize_and_crop"
    load_size: int = 286
    crop_size: int = 256
    flip: bool = True
    size_multiple: int = 4
    """``preprocess="none"`` rounds sizes to a multiple of this (the reference: 4)."""

    def __post_init__(self) -> None:
        if self.preprocess not in PREPROCESS_MODES:
            raise ValueError(f"preprocess must be one of {', '.join(PREPROCESS_MODES)}, not {self.preprocess!r}")
        for name in ("load_size", "crop_size", "size_multiple"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.preprocess in ("resize_and_crop", "scale_width_and_crop") and self.crop_size > self.load_size:
            raise ValueError(f"crop_size {self.crop_size} is larger than load_size {self.load_size}")

    def __call__(
        self, a: Tensor, b: Tensor, generator: torch.Generator | None = None, *, train: bool = True
    ) -> tuple[Tensor, Tensor]:
        """``uint8 [N, C_a, H, W]`` and ``[N, C_b, H, W]`` -> float32 batches in [-1, 1].

        ``train=False`` is the deterministic evaluation transform (see the module docstring).
        """
        if a.dtype != torch.uint8 or b.dtype != torch.uint8:
            raise ValueError(f"A and B must be uint8 pixels, not {a.dtype} and {b.dtype}")
        if a.ndim != 4 or b.ndim != 4 or a.shape[0] != b.shape[0] or a.shape[2:] != b.shape[2:]:
            raise ValueError(f"A and B must be batches of one size, not {tuple(a.shape)} and {tuple(b.shape)}")
        pair = torch.cat([a, b], dim=1)
        pair = self._resize(pair, train)
        pair = self._crop_and_flip(pair, generator, train)
        pixels = pair.float().div_(127.5).sub_(1)  # .float() copies uint8; a resized pair is already a new float
        return pixels[:, : a.shape[1]], pixels[:, a.shape[1] :]

    def output_size(self, height: int, width: int, *, train: bool = True) -> tuple[int, int]:
        """(H, W) of a prepared pair whose images are ``height`` x ``width``: the crop size for the
        modes that crop, else the resized size, which depends on the pair's size (``scale_width``:
        its aspect ratio; ``none``: its size)."""
        if "crop" in self.preprocess:
            return self.crop_size, self.crop_size
        return self._resized_size(height, width, train)

    @property
    def keeps_sizes(self) -> bool:
        """Whether prepared pairs can differ in size (pairs of several sizes then cannot share a batch)."""
        return self.preprocess in ("scale_width", "none")

    def _resized_size(self, height: int, width: int, train: bool) -> tuple[int, int]:
        load = self.load_size if train else self.crop_size
        if self.preprocess == "resize_and_crop":
            return load, load
        if self.preprocess.startswith("scale_width"):
            if width == load and height >= self.crop_size:
                return height, width
            return max(int(load * height / width), self.crop_size), load
        if self.preprocess == "none":
            multiple = self.size_multiple
            return max(round(height / multiple), 1) * multiple, max(round(width / multiple), 1) * multiple
        return height, width

    def _resize(self, pair: Tensor, train: bool) -> Tensor:
        height, width = pair.shape[2:]
        size = self._resized_size(height, width, train)
        if size == (height, width):
            return pair
        resized = F.interpolate(pair.float(), size=size, mode="bicubic", antialias=True, align_corners=False)
        return resized.clamp_(0, 255)  # bicubic overshoots at edges

    def _crop_and_flip(self, pair: Tensor, generator: torch.Generator | None, train: bool) -> Tensor:
        count, channels, height, width = pair.shape
        crop_height, crop_width = (self.crop_size, self.crop_size) if "crop" in self.preprocess else (height, width)
        if crop_height > height or crop_width > width:
            raise DataError(
                f"pairs of {width}x{height} pixels are smaller than crop_size {self.crop_size}; "
                "use a smaller crop size or a preprocess mode that resizes first"
            )
        flips = train and self.flip
        if not flips and (crop_height, crop_width) == (height, width):
            return pair
        if train:
            top = _random_offsets(height - crop_height, count, generator, pair.device)
            left = _random_offsets(width - crop_width, count, generator, pair.device)
        else:
            top = torch.full((count,), (height - crop_height) // 2, device=pair.device)
            left = torch.full((count,), (width - crop_width) // 2, device=pair.device)
        rows = top[:, None] + torch.arange(crop_height, device=pair.device)
        columns = left[:, None] + torch.arange(crop_width, device=pair.device)
        if flips:
            flipped = _coin_flips(count, generator, pair.device)
            columns = torch.where(flipped[:, None], columns.flip(1), columns)  # read the columns right to left
        # One gather: sample n, channel c, pixel (rows[n, i], columns[n, j]) -> output [n, c, i, j].
        samples = torch.arange(count, device=pair.device)[:, None, None, None]
        channel = torch.arange(channels, device=pair.device)[None, :, None, None]
        return pair[samples, channel, rows[:, None, :, None], columns[:, None, None, :]]


def _random_offsets(high: int, count: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """``count`` offsets drawn uniformly from 0..high (inclusive)."""
    drawn = torch.randint(high + 1, (count,), generator=generator, device=_source(generator, device))
    return drawn.to(device, non_blocking=True)


def _coin_flips(count: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """``count`` booleans, each True with probability 1/2."""
    drawn = torch.rand(count, generator=generator, device=_source(generator, device)) < 0.5
    return drawn.to(device, non_blocking=True)


def _source(generator: torch.Generator | None, device: torch.device) -> torch.device:
    """Where to draw: a generator can only fill tensors on its own device."""
    return generator.device if generator is not None else device


def orient(batch: dict, direction: Direction) -> tuple[Tensor, Tensor]:
    """(input, target) of a batch: (A, B) for ``AtoB``, (B, A) for ``BtoA``."""
    if direction == "AtoB":
        return batch["a"], batch["b"]
    if direction == "BtoA":
        return batch["b"], batch["a"]
    raise ValueError(f"direction must be AtoB or BtoA, not {direction!r}")


def collate_pairs(items: list[dict]) -> dict:
    """Batch dataset items as ``{"a": uint8 [N, C_a, H, W], "b": ..., "name": [str]}`` for a DataLoader.

    Pairs of different sizes (a folder of ordinary photos) are stacked one size at a time: the
    batch is then ``{"groups": [batch of one size, ...], "name": [str]}``, sizes in order of first
    appearance, pairs in order within a size (see :func:`uniform_batches`). This runs in the
    loader's workers, so the main process copies nothing and the pinned batches reach the device
    asynchronously; resizing here instead would run on the loader's CPU and decide sizes before
    the preprocessing does.
    """
    groups: dict[tuple, list[dict]] = {}
    for item in items:
        groups.setdefault((tuple(item["a"].shape), tuple(item["b"].shape)), []).append(item)
    batches = [
        {
            "a": torch.stack([item["a"] for item in group]),
            "b": torch.stack([item["b"] for item in group]),
            "name": [item["name"] for item in group],
        }
        for group in groups.values()
    ]
    if len(batches) == 1:
        return batches[0]
    return {"groups": batches, "name": [name for batch in batches for name in batch["name"]]}


def uniform_batches(batch: dict) -> list[dict]:
    """The batches of one size each that a batch from :func:`collate_pairs` holds."""
    return batch.get("groups", [batch])
