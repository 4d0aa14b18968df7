"""Finding and decoding image files: PIL in, ``uint8`` tensors ``[C, H, W]`` out.

Decoding is all a loader worker does (augmentation runs on the training device), so it is one PIL
decode, a mode conversion where needed and one copy into a tensor that views the pixels as CHW.

Colour handling, the same everywhere in the zoo:

* 1 channel is PIL's luminance (``"L"``, ITU-R 601-2); 3 channels are RGB (grey repeated);
* transparency (RGBA, LA, palettes with a transparent colour) is composited on **white**: line
  drawings, label maps and product shots saved with a transparent background have black (0) in
  their transparent pixels, which would turn a black-on-transparent sketch black-on-black if the
  alpha channel were simply dropped;
* 16-bit greyscale (and 32-bit integer, taken as 16-bit) is scaled to 8 bits; PIL's own
  conversion would clip it instead;
* floating-point images are refused: their range is unknowable.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile

from pix2pix_zoo.errors import BadImageError, DataError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
"""File suffixes read as images (compared in lower case)."""

SUPPORTED_CHANNELS = (1, 3)

_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
# What PIL raises for a corrupt or unreadable file, depending on the format.
_IMAGE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)
_TRUNCATION_SWITCH = threading.Lock()  # serialises our flips of PIL's process-wide truncation switch


def is_image_file(path: Path | str) -> bool:
    """Whether ``path`` has an image suffix (any case) and is not a hidden file."""
    name = os.path.basename(path)
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def list_images(directory: Path | str) -> list[Path]:
    """Every image file under ``directory``, recursively, sorted by relative path.

    Hidden files and folders (a leading dot: ``.git``, macOS ``._x.jpg``) are skipped. Sorting on
    the relative POSIX path makes the order, hence item indices, the same on every platform.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{str(directory)!r} is not a directory")
    found = []
    for folder, subfolders, files in os.walk(directory):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        found.extend(Path(folder, name) for name in files if is_image_file(name))
    return sorted(found, key=lambda path: path.relative_to(directory).as_posix())


def open_image(path: Path | str) -> Image.Image:
    """Open and fully decode an image file; a BadImageError naming it if that fails.

    A truncated file is an error even if some library switched PIL's process-wide
    ``ImageFile.LOAD_TRUNCATED_IMAGES`` on: that switch pads a cut-off image with grey and trains
    on it silently.
    """
    try:
        if ImageFile.LOAD_TRUNCATED_IMAGES:
            with _TRUNCATION_SWITCH:
                previous, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
                try:
                    image = _load(path)
                finally:
                    ImageFile.LOAD_TRUNCATED_IMAGES = previous
        else:
            image = _load(path)
    except _IMAGE_ERRORS as error:
        raise BadImageError(path, str(error) or type(error).__name__) from None
    if image.mode == "F":
        raise BadImageError(path, "floating-point images are not supported (their range is unknown)")
    return image


def image_size(path: Path | str) -> tuple[int, int]:
    """``(width, height)`` of an image file from its header, without decoding the pixels."""
    try:
        with Image.open(path) as image:
            return image.size
    except _IMAGE_ERRORS as error:
        raise BadImageError(path, str(error) or type(error).__name__) from None


def _load(path: Path | str) -> Image.Image:
    with Image.open(path) as image:
        image.load()  # decodes now, inside the error handling; the pixels outlive the closed file
        return image


def image_to_tensor(image: Image.Image, channels: int) -> torch.Tensor:
    """A decoded PIL image as a ``uint8`` tensor ``[channels, H, W]`` (1: luminance, 3: RGB)."""
    if channels not in SUPPORTED_CHANNELS:
        raise ValueError(f"channels must be 1 or 3, not {channels}")
    pixels = _to_8bit(image)
    if pixels.mode != ("L" if channels == 1 else "RGB"):
        pixels = pixels.convert("L" if channels == 1 else "RGB")
    array = np.array(pixels)  # a writable copy, so torch can share it without a warning
    tensor = torch.from_numpy(array)
    return tensor.unsqueeze(0) if array.ndim == 2 else tensor.permute(2, 0, 1)


def decode_image(path: Path | str, channels: int) -> torch.Tensor:
    """Read one image file as a ``uint8`` tensor ``[channels, H, W]``; BadImageError if unreadable."""
    return image_to_tensor(open_image(path), channels)


def size_text(image: torch.Tensor) -> str:
    """``"WxH"`` for an image tensor ``[..., H, W]`` (width first, as image tools print sizes)."""
    return f"{image.shape[-1]}x{image.shape[-2]}"


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
