"""Pictures: tensors in [-1, 1] as what a person sees, and back.

Low-level and shared: the trainer's sample grids and report, :class:`~pix2pix_zoo.translator.Translator`
(PIL in, PIL out) and anything that shows images use these, so a picture looks the same wherever
it is drawn. A dataset may name an image codec (a registered component) that turns its tensors
into RGB, e.g. Lab colour; without one, 1 channel is grey, 2 are shown as red-green and 3 or more
as their first three.

PIL to tensors (:func:`image_to_tensor`) handles colour the same everywhere in the zoo:

* 1 channel is PIL's luminance (``"L"``, ITU-R 601-2); 3 channels are RGB (grey repeated);
* transparency (RGBA, LA, palettes with a transparent colour) is composited on **white**: line
  drawings, label maps and product shots saved with a transparent background have black (0) in
  their transparent pixels, which would turn a black-on-transparent sketch black-on-black if the
  alpha channel were simply dropped;
* 16-bit greyscale (and 32-bit integer, taken as 16-bit) is scaled to 8 bits; PIL's own
  conversion would clip it instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from pix2pix_zoo.errors import SpecError
from pix2pix_zoo.interfaces import ImageCodec
from pix2pix_zoo.plugins import get_registry

if TYPE_CHECKING:  # torch is imported where a tensor is made: the ONNX path runs on arrays without it
    import torch
    from torch import Tensor

SUPPORTED_CHANNELS = (1, 3)
"""The channel counts a picture converts to and from: grey and RGB."""
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


def image_to_tensor(image: Image.Image, channels: int) -> torch.Tensor:
    """A decoded PIL image as a ``uint8`` tensor ``[channels, H, W]`` (1: luminance, 3: RGB)."""
    import torch

    return torch.from_numpy(image_to_array(image, channels))


def image_to_array(image: Image.Image, channels: int) -> np.ndarray:
    """A decoded PIL image as a writable ``uint8`` array ``[channels, H, W]`` (1: luminance, 3: RGB;
    a channels-first view of the pixels, not a copy)."""
    if channels not in SUPPORTED_CHANNELS:
        raise ValueError(f"channels must be 1 or 3, not {channels}")
    pixels = _to_8bit(image)
    if pixels.mode != ("L" if channels == 1 else "RGB"):
        pixels = pixels.convert("L" if channels == 1 else "RGB")
    array = np.array(pixels)  # a writable copy, so torch can share it without a warning
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def array_to_image(output: np.ndarray) -> Image.Image:
    """One output ``[C, H, W]`` in [-1, 1] with 1 or 3 channels as a PIL image (``L`` or ``RGB``),
    rounded as :func:`to_rgb` rounds (in float32, half to even)."""
    unit = np.clip((output.astype(np.float32) + np.float32(1)) / np.float32(2), 0, 1)
    pixels = np.round(unit * np.float32(255)).astype(np.uint8)
    return Image.fromarray(pixels[0], "L") if len(pixels) == 1 else Image.fromarray(pixels.transpose(1, 2, 0), "RGB")


def _to_8bit(image: Image.Image) -> Image.Image:
    """An 8-bit image without transparency (L, RGB or a mode PIL converts to them exactly)."""
    if image.mode in _SIXTEEN_BIT_MODES:
        wide = np.asarray(image, dtype=np.int64)
        return Image.fromarray(((wide.clip(0, 65535) + 128) // 257).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        return _on_white(image)
    if image.mode in ("1", "L", "RGB"):
        return image
    return image.convert("RGB")  # palette, CMYK, YCbCr, LAB, HSV


def _on_white(image: Image.Image) -> Image.Image:
    rgba = np.asarray(image.convert("RGBA"), dtype=np.uint16)
    colour, alpha = rgba[..., :3], rgba[..., 3:]
    blended = (colour * alpha + 255 * (255 - alpha) + 127) // 255
    return Image.fromarray(blended.astype(np.uint8), "RGB")


def to_unit(images: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1], clamped (a generator's tanh output may touch the ends)."""
    return ((images.float() + 1) / 2).clamp(0, 1)


def to_rgb(images: Tensor) -> Tensor:
    """[-1, 1] images with 1, 2, 3 or more channels -> RGB uint8 (N, 3, H, W) for viewing."""
    unit = to_unit(images)
    channels = unit.shape[1]
    if channels == 1:
        unit = unit.expand(-1, 3, -1, -1)
    elif channels == 2:
        import torch

        unit = torch.cat([unit, unit.new_zeros(unit.shape[0], 1, *unit.shape[2:])], 1)
    else:
        unit = unit[:, :3]
    return (unit * 255).round().byte()


def open_codec(name: str) -> ImageCodec | None:
    """The registered codec called ``name``; None for ``""`` (plain grey or RGB images)."""
    if not name:
        return None
    try:
        component = get_registry().get(name, "codec")
    except SpecError:
        raise SpecError(f"the image codec {name!r} is not installed: install the plugin that provides it "
                        "(`zoo components codec` lists the installed ones)") from None
    return component.build()


def picture(codec: ImageCodec | None, x: Tensor, y: Tensor | None = None) -> Tensor:
    """What a person sees of an input ``x``, or of an output or target ``y`` for it, in [-1, 1]:
    the codec's RGB rendering, or without a codec the tensor itself."""
    if codec is None:
        return x if y is None else y
    return codec.render(x.float(), None if y is None else y.float()).mul(2).sub(1)


def sample_grid(*columns: Tensor) -> Image.Image:
    """One row per sample, the columns side by side (the trainer's: input | output | target)."""
    import torch

    rows = torch.cat([to_rgb(t.detach().cpu()) for t in columns], dim=3)  # side by side
    grid = torch.cat(list(rows), dim=1)  # stacked
    return Image.fromarray(grid.permute(1, 2, 0).numpy())
