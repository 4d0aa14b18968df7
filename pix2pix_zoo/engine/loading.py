"""Feeding the training loop: how many loader workers (``--workers auto``), workers that pass the
zoo's errors on as data, and a sampler that resumes mid-epoch.

A DataLoader re-raises an exception from a worker as a multi-line traceback; the zoo's errors (an
unreadable image, any DataError of a plugin's dataset) travel as data instead and are raised by the
trainer as the same one line as without workers.
"""

from __future__ import annotations

import itertools
import os
from typing import Iterator, Literal

import torch
from torch.utils.data import DistributedSampler, Sampler

from pix2pix_zoo.data.augment import collate_pairs
from pix2pix_zoo.errors import BadImageError, ZooError
from pix2pix_zoo.interfaces import PairedDataset


MAX_AUTO_WORKERS = 8


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity, which a scheduler or container sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def loader_workers(setting: int | Literal["auto"], device_type: str, processes_here: int = 1,
                   cores: int | None = None) -> int:
    """The loader processes of one training process: ``setting`` itself, or for ``auto`` a number
    chosen so that decoding never takes the threads the step needs.

    The cores are shared by the ``processes_here`` training processes on this machine (torchrun's
    local world). On a CPU device the step's kernels use every core of the share, so decoding gets
    one worker per four cores (at least one where there are two cores or more, so that it overlaps
    the step; at most 4): on 2 cores, one. On an accelerator the step runs on the device and the
    cores are free for decoding: all of the share but one core for the training process, at most
    ``MAX_AUTO_WORKERS``.
    """
    if setting != "auto":
        return int(setting)
    share = max(1, (cores or usable_cores()) // max(1, processes_here))
    if share < 2:
        return 0
    if device_type == "cpu":
        return min(4, max(1, share // 4))
    return min(MAX_AUTO_WORKERS, share - 1)


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
