"""``--data colorize:PATH``: any folder of photos as colourisation pairs, A = L and B = ab (Lab).

Which photos make a split:

* if ``PATH`` has any of the folders ``train``, ``val``, ``test``, the photos under ``PATH/<split>/``
  (a split without its folder is an error naming the folders there are);
* otherwise every photo under ``PATH`` goes to one split by a stable hash of its relative path:
  the first two bytes of its SHA-1, modulo 100, below 80 -> train, below 90 -> val, else test.
  Adding or removing photos never moves the others, and the split is the same on every machine.

Photos are found recursively, with the zoo's usual image suffixes, sorted by relative path (hidden
files skipped); grey photos are fine (their ab is 128, no colour). See :mod:`.lab` for the uint8
mapping of L and ab.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pix2pix_zoo.data.images import decode_image, list_images
from pix2pix_zoo.errors import DataError
from pix2pix_zoo.interfaces import DatasetInfo, PairedDataset, describe_dataset
from pix2pix_zoo_colorize.lab import photo_to_lab_uint8

SPLITS = ("train", "val", "test")
SPLIT_PERCENT = {"train": 80, "val": 10, "test": 10}

INFO = DatasetInfo(
    name="colorize",
    a_channels=1,
    b_channels=2,
    default_direction="AtoB",
    task="grey L channel <-> ab colour channels (Lab)",
    license="that of your photos",
    source="your own photos (--data colorize:PATH); the task is the colourisation experiment of Isola, "
           "Zhu, Zhou and Efros, Image-to-Image Translation with Conditional Adversarial Networks, CVPR 2017, "
           "section 4",
    splits=SPLITS,
    codec="lab_colorize",
    reads_your_files=True,
)


def hashed_split(name: str) -> str:
    """The split of a photo by its relative POSIX path when ``PATH`` has no split folders."""
    bucket = int.from_bytes(hashlib.sha1(name.encode("utf-8")).digest()[:2], "big") % 100
    if bucket < SPLIT_PERCENT["train"]:
        return "train"
    return "val" if bucket < SPLIT_PERCENT["train"] + SPLIT_PERCENT["val"] else "test"


def split_photos(root: Path, split: str) -> tuple[Path, list[Path]]:
    """(the folder that item names are relative to, the photos of ``split``) under ``root``; see the module doc."""
    root = Path(root)
    if split not in SPLITS:
        raise DataError(f"colorize has the splits {', '.join(SPLITS)}, not {split!r}")
    if not root.is_dir():
        raise DataError(f"{str(root)!r} is not a directory (colorize:PATH reads the photos under PATH)")
    present = [name for name in SPLITS if (root / name).is_dir()]
    if present:
        if split not in present:
            raise DataError(f"{str(root)!r} has no folder {split!r}, only {', '.join(present)} "
                            "(with split folders, colorize:PATH reads PATH/<split>/)")
        return root / split, list_images(root / split)
    return root, [path for path in list_images(root) if hashed_split(path.relative_to(root).as_posix()) == split]


class ColorizeFolder(PairedDataset):
    """Photos as (L, ab) pairs, decoded and converted one per item."""

    info = INFO

    def __init__(self, root: Path, split: str) -> None:
        self.directory, self.files = split_photos(root, split)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        path = self.files[index]
        lightness, ab = photo_to_lab_uint8(decode_image(path, 3))
        return {"a": lightness, "b": ab, "name": path.relative_to(self.directory).as_posix()}


@describe_dataset(INFO)
def colorize(root: Path, split: str) -> ColorizeFolder:
    """Your photos as L -> ab pairs (``--data colorize:PATH``)."""
    return ColorizeFolder(root, split)
