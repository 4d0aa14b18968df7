"""Feeding the training loop: loader workers that pass the zoo's errors on as data, and a sampler
that resumes mid-epoch.

A DataLoader re-raises an exception from a worker as a multi-line traceback; the zoo's errors (an
unreadable image, any DataError of a plugin's dataset) travel as data instead and are raised by the
trainer as the same one line as without workers.
"""

from __future__ import annotations

import itertools
from typing import Iterator

import torch
from torch.utils.data import DistributedSampler, Sampler

from pix2pix_zoo.data.augment import collate_pairs
from pix2pix_zoo.errors import BadImageError, ZooError
from pix2pix_zoo.interfaces import PairedDataset


class SkippingSampler(Sampler[int]):
    """Wraps a sampler and drops the first ``skip`` indices of the next pass (resuming mid-epoch)."""

    def __init__(self, sampler: DistributedSampler, skip: int = 0) -> None:
        self.sampler = sampler
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        skip, self.skip = self.skip, 0
        return itertools.islice(iter(self.sampler), skip, None)

    def __len__(self) -> int:
        return len(self.sampler)


class GuardedImages(torch.utils.data.Dataset):
    """Turns the zoo's errors (an unreadable image, any DataError of a plugin's dataset) into data
    instead of an exception inside a loader worker, which the DataLoader would re-raise as a
    multi-line traceback: :func:`collate_guarded` passes the error on, and the trainer raises it
    as the same one line as without workers. With ``skip_bad`` the next readable pair is used
    instead of an unreadable one and the skipped files travel with the batch, to be counted."""

    def __init__(self, dataset: PairedDataset, skip_bad: bool) -> None:
        self.dataset = dataset
        self.info = dataset.info
        self.skip_bad = skip_bad

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        skipped = []
        for offset in range(len(self.dataset)):
            try:
                return {**self.dataset[(index + offset) % len(self.dataset)], "skipped": skipped}
            except BadImageError as error:
                if not self.skip_bad:
                    return {"error": error}
                skipped.append(str(error.path))
            except ZooError as error:
                return {"error": error}
        return {"error": BadImageError("(all)", "every image of the dataset is unreadable")}


def collate_guarded(items: list[dict]) -> dict:
    """:func:`collate_pairs`, passing on an error or the skipped files from :class:`GuardedImages`."""
    for item in items:
        if "error" in item:
            return {"error": item["error"]}
    skipped = [path for item in items for path in item.pop("skipped")]
    return {**collate_pairs(items), "skipped": skipped}


def with_skip_hint(error: BadImageError) -> BadImageError:
    """An unreadable image's error as the trainer reports it: saying how to skip such files."""
    return BadImageError(error.path, f"{error.reason} (--skip-bad skips unreadable images)")


def raise_loader_error(batch: dict) -> None:
    """Raise the error a guarded loader passed on in place of a batch (see :class:`GuardedImages`)."""
    error = batch.get("error")
    if isinstance(error, BadImageError):
        raise with_skip_hint(error)
    if error is not None:
        raise error
