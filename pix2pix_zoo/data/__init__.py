"""Paired-data plumbing: opening datasets by name or scheme; downloads, readers and augmentation live
in the submodules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pix2pix_zoo.errors import DataError, SpecError
from pix2pix_zoo.home import datasets_dir
from pix2pix_zoo.interfaces import PairedDataset


def parse_data(text: str) -> tuple[str, str | None]:
    """``"facades"`` -> ("facades", None); ``"folder:/data/x"`` -> ("folder", "/data/x")."""
    name, sep, argument = text.partition(":")
    if sep and not argument:
        raise SpecError(f"dataset {text!r}: a path must follow '{name}:'")
    return name, (argument if sep else None)


def open_dataset(text: str, split: str, **options: Any) -> PairedDataset:
    """Open ``split`` of a dataset named like ``--data`` is: ``NAME`` or ``SCHEME:PATH``.

    A plain name gets ``$ZOO_HOME/datasets`` as its root (the factory downloads there on first use);
    a scheme gets the path after the colon. Options are validated like spec options.
    """
    from pix2pix_zoo.plugins import get_registry

    name, argument = parse_data(text)
    component = get_registry().get(name, "dataset")
    root = Path(argument).expanduser() if argument is not None else datasets_dir()
    dataset = component.build(root, split, **options)
    if len(dataset) == 0:
        raise DataError(f"dataset {text!r} has no pairs in split {split!r} (under {root})")
    return dataset
