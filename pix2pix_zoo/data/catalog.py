"""Named datasets as ``zoo data`` sees them: what each is, whether it is on disk, getting it there.

A dataset plugin describes its data with a :class:`~pix2pix_zoo.interfaces.DatasetInfo` attached to
the factory (:func:`~pix2pix_zoo.interfaces.describe_dataset`). Data with a ``url`` is downloaded
into ``$ZOO_HOME/datasets/<name>`` on first use; ``$ZOO_DATASETS_URL`` names a mirror that holds the
same archives under the same file names (an ``http://`` or ``file://`` base URL).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pix2pix_zoo.atomic import temporary_path
from pix2pix_zoo.components import Component, did_you_mean
from pix2pix_zoo.data import dataset_info, open_dataset, parse_data, reads_your_files
from pix2pix_zoo.download import download, mirrored_url, safe_extract, url_file_name
from pix2pix_zoo.errors import DataError, SpecError
from pix2pix_zoo.home import datasets_dir
from pix2pix_zoo.interfaces import DatasetInfo
from pix2pix_zoo.plugins import get_registry

MIRROR_VARIABLE = "ZOO_DATASETS_URL"


def dataset_url(info: DatasetInfo) -> str | None:
    """Where ``info``'s archive is downloaded from: its ``url``, or the same file on ``$ZOO_DATASETS_URL``."""
    return None if info.url is None else mirrored_url(info.url, MIRROR_VARIABLE)


def fetch_dataset(info: DatasetInfo, root: Path, *, progress: bool = True) -> Path:
    """``root/<name>``, downloaded and extracted there first if it is missing.

    The archive goes to ``root`` (atomically, with a progress bar), is extracted with
    :func:`~pix2pix_zoo.download.safe_extract` and deleted, whether that worked or not.
    """
    folder = Path(root) / info.name
    if folder.is_dir():
        return folder
    url = dataset_url(info)
    if url is None:
        if info.manual_download:
            raise DataError(f"dataset {info.name!r} is not in {folder}: {info.manual_download}")
        raise DataError(f"dataset {info.name!r} has no URL to download it from")
    # An archive name of this call's own: two processes fetching one dataset never share a download.
    # The promised size is approximate, so it only raises the cap on what a download may bring.
    archive = download(url, temporary_path(Path(root) / url_file_name(url), "download"), sha256=info.sha256,
                       max_bytes=2 * info.download_size if info.download_size else None, progress=progress)
    try:
        safe_extract(archive, folder, top_folder=info.name)
    except DataError:
        if not folder.is_dir():
            raise  # else another process (a DDP rank, say) fetched the same dataset first
    finally:
        archive.unlink(missing_ok=True)
    return folder


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset, its info (None for readers of your own files) and where it lives."""

    name: str
    plugin: str
    summary: str
    info: DatasetInfo | None
    factory: Callable = dataclasses.field(repr=False)
    root: Path

    @classmethod
    def of(cls, component: Component, root: Path) -> DatasetEntry:
        return cls(component.name, component.plugin, component.summary, dataset_info(component.factory),
                   component.factory, Path(root))

    @property
    def prepare(self) -> Callable[..., Path] | None:
        """The plugin's function that builds the dataset from files the user obtained, if any (read
        only when asked: a :class:`~pix2pix_zoo.components.LazyFactory` is imported to answer)."""
        return getattr(self.factory, "prepare", None)

    @property
    def reads_your_files(self) -> bool:
        """Whether it reads files the user names (``NAME:PATH``) rather than downloading or making them."""
        return reads_your_files(self.info)

    @property
    def origin(self) -> str:
        """The URL it is downloaded from, ``"embedded"`` (made by its plugin) or ``"local"`` (files you provide)."""
        if self.reads_your_files or self.info.manual_download:
            return "local"
        return dataset_url(self.info) or "embedded"

    @property
    def path(self) -> Path | None:
        """Where it is downloaded or prepared to; None for embedded data and readers of your files."""
        return None if self.reads_your_files or self.origin == "embedded" else self.root / self.name

    @property
    def downloaded(self) -> bool | None:
        """Whether it is in :attr:`path` (None where there is no such place)."""
        return None if self.path is None else self.path.is_dir()

    @property
    def pairs(self) -> int | None:
        """Approximate number of pairs in all splits, if the info says."""
        return sum(self.info.sizes.values()) if self.info is not None and self.info.sizes else None

    def as_dict(self) -> dict[str, Any]:
        """What ``zoo data`` shows: the entry's state first, then every field of its info."""
        facts: dict[str, Any] = {
            "name": self.name,
            "plugin": self.plugin,
            "summary": self.summary,
            "task": self.info.task if self.info is not None else "",
            "origin": self.origin,
            "downloaded": self.downloaded,
            "path": str(self.path) if self.path is not None else None,
            "pairs": self.pairs,
        }
        if self.info is not None:
            info = dataclasses.asdict(self.info) | {"splits": list(self.info.splits), "sizes": dict(self.info.sizes)}
            facts.update((key, value) for key, value in info.items() if key not in facts)
        return facts


def list_datasets(root: Path | None = None) -> list[DatasetEntry]:
    """Every registered dataset by name, as found under ``root`` (default ``$ZOO_HOME/datasets``)."""
    root = datasets_dir() if root is None else Path(root)
    return [DatasetEntry.of(component, root) for component in get_registry().components("dataset")]


def find_dataset(name: str, root: Path | None = None) -> DatasetEntry:
    """The dataset called ``name`` (or an alias); a SpecError naming close matches otherwise."""
    return DatasetEntry.of(get_registry().get(name, "dataset"), datasets_dir() if root is None else Path(root))


SPLITS_DESCRIBED = ("train", "val", "test")
"""The splits ``zoo data info NAME:PATH`` looks for: those training and evaluation read."""


def describe_data(text: str) -> dict[str, Any]:
    """What ``zoo data info`` shows for a ``--data`` value.

    A name gives its entry (:meth:`DatasetEntry.as_dict`). ``NAME:PATH``, for a reader of your own
    files (``folder``, ``pairs``), adds under ``"found"`` what that reader finds in each of
    :data:`SPLITS_DESCRIBED`: the pairs and how many sizes they come in, the smallest and the largest
    (``[height, width]``, by area, from the files' headers), or why there are none; ``"pairs"`` is
    their sum. Nothing is decoded, downloaded or written; a file whose size cannot be read is a
    DataError naming it.
    """
    name, argument = parse_data(text)
    entry = find_dataset(name)
    facts = entry.as_dict()
    if argument is None:
        return facts
    if not entry.reads_your_files:
        raise SpecError(f"dataset {entry.name!r} is not read from a folder you name; `zoo data info {entry.name}` "
                        "shows it")
    folder = Path(argument).expanduser()
    if not folder.is_dir():
        raise DataError(f"{str(folder)!r} is not a directory ({entry.summary})")
    facts["path"] = str(folder)
    found: dict[str, dict[str, Any]] = {}
    for split in SPLITS_DESCRIBED:
        try:
            dataset = open_dataset(text, split)
        except DataError as error:
            found[split] = {"pairs": 0, "why": str(error)}
            continue
        sizes = sorted({tuple(dataset.pair_size(index)) for index in range(len(dataset))},
                       key=lambda size: (size[0] * size[1], size))
        found[split] = {"pairs": len(dataset), "sizes": len(sizes), "smallest": list(sizes[0]),
                        "largest": list(sizes[-1])}
    facts["pairs"] = sum(split_facts["pairs"] for split_facts in found.values())
    facts["found"] = found
    return facts


def download_dataset(name: str, *, progress: bool = True) -> tuple[Path, bool]:
    """Download and extract the named dataset into ``$ZOO_HOME/datasets``.

    Returns its folder and whether it was downloaded now (False: it was there already).
    """
    entry = find_dataset(name)
    if entry.reads_your_files:
        raise DataError(
            f"dataset {entry.name!r} reads your own files ({entry.name}:PATH); there is nothing to download"
        )
    if entry.origin == "embedded":
        raise DataError(f"dataset {entry.name!r} is made by its plugin when it is opened; there is nothing to download")
    was_there = bool(entry.downloaded)
    return fetch_dataset(entry.info, entry.root, progress=progress), not was_there


def prepare_dataset(name: str, sources: dict[str, Path], output: Path | None = None) -> Path:
    """Build the named dataset from files the user obtained, with its plugin's ``prepare``.

    ``sources`` are the ``prepare`` function's arguments (``{"gtfine": ..., "leftimg8bit": ...}``);
    ``output`` defaults to the dataset's folder under ``$ZOO_HOME/datasets``. Returns the folder.
    """
    entry = find_dataset(name)
    if entry.prepare is None:
        hint = f"; `zoo data download {entry.name}` gets it" if entry.info is not None and entry.info.url else ""
        raise DataError(f"dataset {entry.name!r} has nothing to prepare{hint}")
    parameters = {p.name: p for p in inspect.signature(entry.prepare).parameters.values() if p.name != "output"}
    for key in sources:
        if key not in parameters:
            raise DataError(f"`zoo data prepare {entry.name}` has no option --{key}; {did_you_mean(key, parameters)}")
    missing = [key for key, p in parameters.items() if p.default is p.empty and key not in sources]
    if missing:
        needed = " ".join(f"--{key} DIR" for key in missing)
        raise DataError(f"`zoo data prepare {entry.name}` needs {needed}")
    return entry.prepare(output=Path(output) if output is not None else entry.root / entry.name, **sources)
