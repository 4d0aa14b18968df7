"""Paired datasets derived from a folder of photos: the base a task like colourisation or inpainting
builds on, supplying only how a photo becomes a pair.

A plugin subclasses :class:`PhotoPairs`, gives it a :class:`~pix2pix_zoo.interfaces.DatasetInfo`
and a ``make_pair``, and registers the class itself as the dataset factory (``--data NAME:PATH``)::

    import torch
    from pix2pix_zoo import hookimpl
    from pix2pix_zoo.data.photos import PhotoPairs
    from pix2pix_zoo.interfaces import DatasetInfo

    class Inpaint(PhotoPairs):
        \"\"\"A = the photo with a white square hole, B = the photo.\"\"\"

        info = DatasetInfo("inpaint", task="photo with a hole <-> photo", reads_your_files=True)

        def make_pair(self, photo: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
            height, width = photo.shape[1:]
            holed = photo.clone()
            holed[:, height // 4 : height * 3 // 4, width // 4 : width * 3 // 4] = 255
            return holed, photo

    @hookimpl
    def register_datasets(register):
        register("inpaint", Inpaint, summary="your photos with a hole to fill: --data inpaint:PATH")

What the base does, so that every derived task behaves alike:

* lists the photos under ``PATH`` recursively, with the zoo's image suffixes, sorted by relative
  path, hidden files and folders skipped (:func:`~pix2pix_zoo.data.images.list_images`);
* splits them: if ``PATH`` has any of the folders of ``info.splits``, the photos under
  ``PATH/<split>/`` (a split without its folder is an error naming those there are); otherwise each
  photo goes to one split by a stable hash of its relative path (:func:`hashed_split`: 80% train,
  10% val, 10% test), so adding or removing photos never moves the others and every machine agrees;
* decodes each photo as RGB (``photo_channels = 1``: grey), optionally no larger than ``max_side``
  pixels on its longer side (an option, ``--data-opt max_side=1024``: the engine resizes on the
  device anyway, so this only spares the loader decoding huge camera photos in full);
* names each pair by the photo's relative path, and turns a ``make_pair`` that breaks the contract
  into one line naming the photo.

Photos may differ in size: the engine batches pairs of any sizes (see CONTRIBUTING). ``make_pair``
must be deterministic for a photo (seed any randomness from ``name``), so that a resumed run, the
evaluation and the sample grids see the same pairs every time.
"""

from __future__ import annotations

import abc
import hashlib
from pathlib import Path
from typing import Annotated

import torch
from PIL import Image
from torch import Tensor

from pix2pix_zoo.components import Bounds
from pix2pix_zoo.data.images import image_to_tensor, list_images, open_image
from pix2pix_zoo.errors import DataError
from pix2pix_zoo.interfaces import PairedDataset

SPLIT_PERCENT = {"train": 80, "val": 10, "test": 10}
"""Shares of a folder without split folders, by :func:`hashed_split`."""
MAX_SIDE = 1 << 16


def hashed_split(name: str) -> str:
    """The split of a photo by its relative POSIX path, in a folder without split folders: the first
    two bytes of its SHA-1, modulo 100, below 80 -> train, below 90 -> val, else test."""
    bucket = int.from_bytes(hashlib.sha1(name.encode("utf-8")).digest()[:2], "big") % 100
    if bucket < SPLIT_PERCENT["train"]:
        return "train"
    return "val" if bucket < SPLIT_PERCENT["train"] + SPLIT_PERCENT["val"] else "test"


def split_photos(root: Path, split: str, splits: tuple[str, ...], scheme: str) -> tuple[Path, list[Path]]:
    """(the folder item names are relative to, the photos of ``split``) under ``root``, as the module
    docstring says; ``scheme`` names the dataset in errors (``"inpaint"``)."""
    root = Path(root)
    if split not in splits:
        raise DataError(f"{scheme} has the splits {', '.join(splits)}, not {split!r}")
    if not root.is_dir():
        raise DataError(f"{str(root)!r} is not a directory ({scheme}:PATH reads the photos under PATH)")
    present = [name for name in splits if (root / name).is_dir()]
    if present:
        if split not in present:
            raise DataError(f"{str(root)!r} has no folder {split!r}, only {', '.join(present)} "
                            f"(with split folders, {scheme}:PATH reads PATH/<split>/)")
        return root / split, list_images(root / split)
    return root, [path for path in list_images(root) if hashed_split(path.relative_to(root).as_posix()) == split]


class PhotoPairs(PairedDataset, abc.ABC):
    """Pairs made one per photo of a folder by :meth:`make_pair`; see the module docstring.

    Subclasses set ``info`` (its ``a_channels``/``b_channels`` are what ``make_pair`` returns) and
    may set ``photo_channels`` (3: RGB, 1: grey).
    """

    photo_channels: int = 3

    def __init__(self, root: Path, split: str, *, max_side: Annotated[int, Bounds(0, MAX_SIDE)] = 0) -> None:
        self.max_side = max_side
        self.directory, self.files = split_photos(root, split, self.info.splits, self.info.name)

    @abc.abstractmethod
    def make_pair(self, photo: Tensor, name: str) -> tuple[Tensor, Tensor]:
        """``(a, b)`` for one photo (``uint8 [photo_channels, H, W]``, named by its relative path):
        ``uint8`` tensors of the channels ``info`` declares and one size (not necessarily the photo's)."""

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        path = self.files[index]
        name = path.relative_to(self.directory).as_posix()
        image = open_image(path)
        if self.max_side and max(image.size) > self.max_side:
            image.thumbnail((self.max_side, self.max_side), Image.Resampling.BICUBIC)
        a, b = self.make_pair(image_to_tensor(image, self.photo_channels), name)
        expected = (self.info.a_channels, self.info.b_channels)
        if not (isinstance(a, Tensor) and isinstance(b, Tensor) and a.dtype == b.dtype == torch.uint8
                and a.ndim == b.ndim == 3 and (a.shape[0], b.shape[0]) == expected and a.shape[1:] == b.shape[1:]):
            shapes = [f"{x.dtype} {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__ for x in (a, b)]
            raise DataError(f"{type(self).__name__}.make_pair gave {' and '.join(shapes)} for {str(path)!r}; "
                            f"expected uint8 A and B of {expected[0]} and {expected[1]} channels and one size")
        return {"a": a, "b": b, "name": name}
