"""Paired datasets read from folders of image files: ``folder:PATH`` and ``pairs:PATH``.

``folder:PATH`` is the reference implementation's aligned layout: each image under ``PATH/<split>/``
(recursively) holds a pair side by side, A on the left half and B on the right.

``pairs:PATH`` keeps A and B in separate trees, the layout the reference's ``combine_A_and_B``
script starts from: ``PATH/A/<split>/...`` and ``PATH/B/<split>/...``. Images pair up by their
path relative to the split folder, without the extension (``A/train/x/1.png`` with
``B/train/x/1.jpg``); images without a partner are skipped with a warning.

Both decode lazily, one pair per ``__getitem__``: a malformed file (unreadable, an odd width, A and
B of different sizes) raises a BadImageError naming it when it is reached, so opening a dataset of
tens of thousands of images costs one directory walk, not one decode per file.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pix2pix_zoo.data.images import (
    SUPPORTED_CHANNELS,
    decode_image,
    image_size,
    image_to_tensor,
    list_images,
    open_image,
    size_text,
)
from pix2pix_zoo.errors import BadImageError, DataError, SpecError
from pix2pix_zoo.interfaces import DatasetInfo, PairedDataset

logger = logging.getLogger("pix2pix_zoo")

_UNMATCHED_SHOWN = 5


class AlignedFolder(PairedDataset):
    """Every image under ``directory`` (recursive, sorted) split into A = left half, B = right half."""

    def __init__(self, directory: Path, info: DatasetInfo) -> None:
        self.directory = Path(directory)
        self.info = info
        self.files = list_images(self.directory)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        path = self.files[index]
        image = open_image(path)
        width, height = image.size
        if width % 2:
            raise BadImageError(path, f"its width {width} is odd; A and B side by side must be equally wide")
        half = width // 2
        return {
            "a": image_to_tensor(image.crop((0, 0, half, height)), self.info.a_channels),
            "b": image_to_tensor(image.crop((half, 0, width, height)), self.info.b_channels),
            "name": path.relative_to(self.directory).as_posix(),
        }

    def pair_size(self, index: int) -> tuple[int, int]:
        width, height = image_size(self.files[index])
        return height, width // 2


class PairedFolders(PairedDataset):
    """A images under ``a_directory`` and B images under ``b_directory``, paired by relative name."""

    def __init__(self, a_directory: Path, b_directory: Path, info: DatasetInfo) -> None:
        self.info = info
        a_files, b_files = _by_pair_name(Path(a_directory)), _by_pair_name(Path(b_directory))
        self.names = sorted(a_files.keys() & b_files.keys())
        self.pairs = [(a_files[name], b_files[name]) for name in self.names]
        a_only, b_only = sorted(a_files.keys() - b_files.keys()), sorted(b_files.keys() - a_files.keys())
        if not self.pairs and (a_only or b_only):
            raise DataError(
                f"no image in {str(a_directory)!r} has a partner of the same name in {str(b_directory)!r} "
                f"(A has {_some(a_only)}; B has {_some(b_only)})"
            )
        if a_only or b_only:
            unmatched = len(a_only) + len(b_only)
            logger.warning(
                "skipping %d image%s without a partner: only in %s: %s; only in %s: %s",
                unmatched, "" if unmatched == 1 else "s", a_directory, _some(a_only), b_directory, _some(b_only),
            )

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        a_path, b_path = self.pairs[index]
        a = decode_image(a_path, self.info.a_channels)
        b = decode_image(b_path, self.info.b_channels)
        if a.shape[1:] != b.shape[1:]:
            raise BadImageError(
                b_path, f"its size {size_text(b)} differs from that of its partner {str(a_path)!r} ({size_text(a)})"
            )
        return {"a": a, "b": b, "name": self.names[index]}

    def pair_size(self, index: int) -> tuple[int, int]:
        width, height = image_size(self.pairs[index][0])
        return height, width


def folder(root: Path, split: str, *, a_channels: int = 3, b_channels: int = 3) -> AlignedFolder:
    """Side-by-side AB images under ``root/split`` (``--data folder:PATH``)."""
    info = _info("folder", root, a_channels, b_channels)
    return AlignedFolder(_subfolder(root, split, "folder:PATH reads side-by-side AB images from PATH/<split>/"), info)


def pairs(root: Path, split: str, *, a_channels: int = 3, b_channels: int = 3) -> PairedFolders:
    """A and B images matched by name under ``root/A/split`` and ``root/B/split`` (``--data pairs:PATH``)."""
    info = _info("pairs", root, a_channels, b_channels)
    layout = "pairs:PATH reads PATH/A/<split>/ and PATH/B/<split>/"
    a_directory = _subfolder(_subfolder(root, "A", layout), split, layout)
    b_directory = _subfolder(_subfolder(root, "B", layout), split, layout)
    return PairedFolders(a_directory, b_directory, info)



def _info(name: str, root: Path, a_channels: int, b_channels: int) -> DatasetInfo:
    for option, value in (("a_channels", a_channels), ("b_channels", b_channels)):
        if value not in SUPPORTED_CHANNELS:
            raise SpecError(f"option {option!r} must be 1 or 3, not {value}")
    return DatasetInfo(name, a_channels, b_channels, default_direction="AtoB", source=str(root))


def _subfolder(parent: Path, name: str, layout: str) -> Path:
    """``parent/name``, or a DataError saying what ``parent`` holds instead."""
    parent = Path(parent)
    if not parent.is_dir():
        raise DataError(f"{str(parent)!r} is not a directory ({layout})")
    if not (parent / name).is_dir():
        present = sorted(p.name for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))
        found = f"its folders are {', '.join(present)}" if present else "it has no folders"
        raise DataError(f"{str(parent)!r} has no folder {name!r}; {found} ({layout})")
    return parent / name


def _by_pair_name(directory: Path) -> dict[str, Path]:
    """Images under ``directory`` by relative path without extension; two files with one name are an error."""
    files: dict[str, Path] = {}
    for path in list_images(directory):
        name = path.relative_to(directory).with_suffix("").as_posix()
        if name in files:
            raise DataError(f"{str(files[name])!r} and {str(path)!r} both pair up as {name!r}; keep one of them")
        files[name] = path
    return files


def _some(names: list[str]) -> str:
    if not names:
        return "none"
    shown = ", ".join(names[:_UNMATCHED_SHOWN])
    return shown + (f" and {len(names) - _UNMATCHED_SHOWN} more" if len(names) > _UNMATCHED_SHOWN else "")
