"""Finding and decoding image files: PIL in, ``uint8`` tensors ``[C, H, W]`` out.

Decoding is all a loader worker does (augmentation runs on the training device), so it is one PIL
decode, a mode conversion where needed and one copy into a tensor that views the pixels as CHW.
The colour handling (luminance, transparency on white, 16-bit scaled) is
:func:`pix2pix_zoo.pictures.image_to_tensor`'s, the same everywhere in the zoo; it and
``SUPPORTED_CHANNELS`` are importable from here too, where dataset plugins have always found them.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageFile

from pix2pix_zoo.errors import BadImageError, DataError
from pix2pix_zoo.pictures import SUPPORTED_CHANNELS, image_to_tensor

if TYPE_CHECKING:  # tensors are made by pictures.image_to_tensor; opening an image needs no torch
    import torch

__all__ = [
    "IMAGE_EXTENSIONS", "SUPPORTED_CHANNELS", "decode_image", "image_size", "image_to_tensor", "is_image_file",
    "list_images", "open_image", "size_text",
]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
"""File suffixes read as images (compared in lower case)."""

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


def decode_image(path: Path | str, channels: int) -> torch.Tensor:
    """Read one image file as a ``uint8`` tensor ``[channels, H, W]``; BadImageError if unreadable."""
    return image_to_tensor(open_image(path), channels)


def size_text(image: torch.Tensor) -> str:
    """``"WxH"`` for an image tensor ``[..., H, W]`` (width first, as image tools print sizes)."""
    return f"{image.shape[-1]}x{image.shape[-2]}"
