"""The paired datasets of the pix2pix paper, as the reference implementation distributes them.

Each archive at ``http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/NAME.tar.gz`` holds a folder
``NAME/`` with one subfolder per split of side-by-side JPEGs, A on the left, B on the right. A
factory downloads and extracts it into ``root/NAME`` on first use (``root`` is
``$ZOO_HOME/datasets``; ``$ZOO_DATASETS_URL`` names a mirror), then reads ``root/NAME/<split>``.

Cityscapes may not be redistributed: :func:`prepare_cityscapes` builds the same layout from the
official archives. Split sizes and archive sizes are approximate; no checksums are published.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from itertools import repeat
from pathlib import Path

from PIL import Image

from pix2pix_zoo.data.catalog import fetch_dataset
from pix2pix_zoo.data.images import open_image
from pix2pix_zoo.download import staged_directory
from pix2pix_zoo.errors import DataError
from pix2pix_zoo.interfaces import DatasetInfo, PairedDataset, describe_dataset
from pix2pix_zoo_datasets.folders import AlignedFolder
from pix2pix_zoo_datasets.infos import CITYSCAPES, EDGES2HANDBAGS, EDGES2SHOES, FACADES, MAPS, NIGHT2DAY

logger = logging.getLogger("pix2pix_zoo")


def open_reference(info: DatasetInfo, root: Path, split: str, *, download: bool = True) -> AlignedFolder:
    """``root/NAME/split`` of a reference dataset, downloaded first when missing and ``download`` is on."""
    if split not in info.splits:
        raise DataError(f"dataset {info.name!r} has no split {split!r}; its splits are {', '.join(info.splits)}")
    folder = Path(root) / info.name
    if not folder.is_dir() and info.url is not None and not download:
        raise DataError(
            f"dataset {info.name!r} is not in {folder} and download is off; `zoo data download {info.name}` gets it"
        )
    folder = fetch_dataset(info, root)
    if not (folder / split).is_dir():
        present = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        raise DataError(f"{folder} has no split {split!r}; it has {', '.join(present) or 'no split folders'}")
    return AlignedFolder(folder / split, info)


@describe_dataset(FACADES)
def facades(root: Path, split: str, *, download: bool = True) -> PairedDataset:
    """CMP Facades: 606 photo | label pairs; the paper translates labels to photos (BtoA)."""
    return open_reference(FACADES, root, split, download=download)


@describe_dataset(MAPS)
def maps(root: Path, split: str, *, download: bool = True) -> PairedDataset:
    """Google Maps: 2194 aerial photo | map pairs around New York City; no test split."""
    return open_reference(MAPS, root, split, download=download)


@describe_dataset(EDGES2SHOES)
def edges2shoes(root: Path, split: str, *, download: bool = True) -> PairedDataset:
    """UT Zappos50K: 50k edges | shoe photo pairs."""
    return open_reference(EDGES2SHOES, root, split, download=download)


@describe_dataset(EDGES2HANDBAGS)
def edges2handbags(root: Path, split: str, *, download: bool = True) -> PairedDataset:
    """iGAN handbags: 137k edges | handbag photo pairs."""
    return open_reference(EDGES2HANDBAGS, root, split, download=download)


@describe_dataset(NIGHT2DAY)
def night2day(root: Path, split: str, *, download: bool = True) -> PairedDataset:
    """Transient Attributes: 20k night | day webcam frame pairs."""
    return open_reference(NIGHT2DAY, root, split, download=download)


LABEL_SUFFIX = "_gtFine_color.png"
PHOTO_SUFFIX = "_leftImg8bit.png"
_SIDE = 256
_UNMATCHED_SHOWN = 5


def prepare_cityscapes(gtfine: Path, leftimg8bit: Path, output: Path) -> Path:
    """Build the pix2pix Cityscapes layout in the new folder ``output`` from the official archives.

    ``gtfine`` and ``leftimg8bit`` are the extracted ``gtFine_trainvaltest`` and
    ``leftImg8bit_trainvaltest`` (the ``gtFine``/``leftImg8bit`` folders or the folders holding
    them). Each ``<split>/<city>/<frame>_gtFine_color.png`` label pairs with the photo
    ``<frame>_leftImg8bit.png``; both are resized to 256x256 (bicubic, as the reference does) and
    written side by side, photo left (A) and label right (B), as ``output/<split>/<frame>.jpg``
    (quality 100, no chroma subsampling). The reference's script writes val as ``test``; the
    pix2pix archive, and this, keep ``val``. Files without a partner are reported and skipped.
    """
    label_root, photo_root = _official_folder(gtfine, "gtFine"), _official_folder(leftimg8bit, "leftImg8bit")
    pairs: dict[str, list[tuple[str, Path, Path]]] = {}
    for split in CITYSCAPES.splits:
        labels, photos = _frames(label_root / split, LABEL_SUFFIX), _frames(photo_root / split, PHOTO_SUFFIX)
        unmatched = sorted(str(labels[k]) for k in labels.keys() - photos.keys())
        unmatched += sorted(str(photos[k]) for k in photos.keys() - labels.keys())
        if unmatched:
            shown = ", ".join(unmatched[:_UNMATCHED_SHOWN]) + (" ..." if len(unmatched) > _UNMATCHED_SHOWN else "")
            logger.warning("cityscapes %s: skipping %d files without a partner: %s", split, len(unmatched), shown)
        pairs[split] = [(frame, photos[frame], labels[frame]) for frame in sorted(labels.keys() & photos.keys())]
    if not any(pairs.values()):
        raise DataError(
            f"no Cityscapes pairs found: expected {label_root}/<split>/<city>/*{LABEL_SUFFIX} "
            f"and {photo_root}/<split>/<city>/*{PHOTO_SUFFIX}"
        )
    # PIL releases the GIL while it decodes, resizes and encodes, so threads keep every core busy;
    # the first error cancels the pairs not yet started and the staging folder is deleted.
    with staged_directory(Path(output)) as staging, ThreadPoolExecutor(os.cpu_count()) as pool:
        for split, split_pairs in pairs.items():
            if split_pairs:
                folder = staging / split
                folder.mkdir()
                frames, photos, labels = zip(*split_pairs)
                list(pool.map(_write_side_by_side, repeat(folder), frames, photos, labels))
    return Path(output)


def _official_folder(path: Path, name: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_dir():
        raise DataError(f"{str(path)!r} is not a directory (expected the extracted {name} folder)")
    return path / name if (path / name).is_dir() else path


def _frames(split_folder: Path, suffix: str) -> dict[str, Path]:
    """``{frame: path}`` for ``split_folder/<city>/<frame><suffix>``."""
    return {path.name[: -len(suffix)]: path for path in split_folder.glob(f"*/*{suffix}")}


def _write_side_by_side(folder: Path, frame: str, photo_path: Path, label_path: Path) -> None:
    pair = Image.new("RGB", (2 * _SIDE, _SIDE))
    for x, path in ((0, photo_path), (_SIDE, label_path)):
        pair.paste(open_image(path).convert("RGB").resize((_SIDE, _SIDE), Image.Resampling.BICUBIC), (x, 0))
    pair.save(folder / f"{frame}.jpg", quality=100, subsampling=0)


@describe_dataset(CITYSCAPES, prepare=prepare_cityscapes)
def cityscapes(root: Path, split: str, *, download: bool = True) -> PairedDataset:
    """Cityscapes: 3475 street photo | label pairs, prepared locally (``zoo data prepare cityscapes``).

    ``download`` is accepted like the other reference datasets' but never downloads anything.
    """
    return open_reference(CITYSCAPES, root, split, download=download)

