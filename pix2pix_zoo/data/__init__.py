"""Paired-data plumbing: opening datasets by name or scheme; downloads, readers and augmentation live
in the submodules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pix2pix_zoo.errors import DataError, SpecError, ZooError, first_line
from pix2pix_zoo.home import datasets_dir
from pix2pix_zoo.interfaces import DatasetInfo, PairedDataset

PreprocessMode = Literal["resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none"]
"""``--preprocess``, what :mod:`~pix2pix_zoo.data.augment` does: named here, apart from its torch code, so
that a run's settings (``engine/config.py``, the options of ``zoo train``) read without torch."""


def parse_data(text: str) -> tuple[str, str | None]:
    """``"facades"`` -> ("facades", None); ``"folder:/data/x"`` -> ("folder", "/data/x")."""
    name, sep, argument = text.partition(":")
    if sep and not argument:
        raise SpecError(f"dataset {text!r}: a path must follow '{name}:'")
    return name, (argument if sep else None)


def dataset_info(factory: Callable) -> DatasetInfo | None:
    """The :class:`DatasetInfo` a dataset factory carries (see ``describe_dataset``), if any."""
    info = getattr(factory, "info", None)
    return info if isinstance(info, DatasetInfo) else None


def reads_your_files(info: DatasetInfo | None) -> bool:
    """Whether a dataset with this info reads files the user names (``NAME:PATH``) rather than
    downloading or making them: its info says so, or it has none (the folder readers)."""
    return info is None or info.reads_your_files


def open_dataset(text: str, split: str, **options: Any) -> PairedDataset:
    """Open ``split`` of a dataset named like ``--data`` is: ``NAME`` or ``SCHEME:PATH``.

    A plain name gets ``$ZOO_HOME/datasets`` as its root (the factory downloads there on first use);
    a scheme gets the path after the colon. Options are validated like spec options.
    """
    from pix2pix_zoo.plugins import get_registry

    name, argument = parse_data(text)
    component = get_registry().get(name, "dataset")
    if argument is None and reads_your_files(dataset_info(component.factory)):
        raise SpecError(f"dataset {name!r} reads files you name: use --data {name}:PATH")
    root = Path(argument).expanduser() if argument is not None else datasets_dir()
    try:
        dataset = component.build(root, split, **options)
    except ValueError as error:
        if isinstance(error, ZooError):
            raise
        # A factory's own ValueError is a bad option value or argument, reported as one line.
        raise DataError(f"dataset {text!r}: {first_line(error)}") from None
    if len(dataset) == 0:
        raise DataError(f"dataset {text!r} has no pairs in split {split!r} (under {root})")
    return dataset
