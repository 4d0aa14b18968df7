"""Many processes through torchrun: the same command, DDP, one writer.

torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; without them the run is one process.
NCCL serves CUDA devices and gloo the CPU (which is how the tests run two ranks).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from pix2pix_zoo.errors import ZooError


@dataclass(frozen=True)
class Ranks:
    """Where this process stands among the run's processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Only the main process writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(preference: str, local_rank: int = 0) -> torch.device:
    """``auto``: CUDA (this rank's GPU), then MPS, then CPU; anything else is taken as given, once
    checked to exist here (a ZooError in one line otherwise, not torch's traceback at first use)."""
    if preference != "auto":
        try:
            device = torch.device(preference)
        except RuntimeError:
            raise ZooError(f"unknown device {preference!r}; use auto, cpu, cuda, cuda:N or mps") from None
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", local_rank)
        _check_available(device)
        return device
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _check_available(device: torch.device) -> None:
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if device.index >= count:
            have = f"{count} CUDA device{'s' if count != 1 else ''}" if count else "no CUDA device"
            raise ZooError(f"device {str(device)!r} is not available: this machine has {have} (try --device auto)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ZooError("device 'mps' is not available: it needs Apple silicon and a PyTorch built for it (try --device auto)")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ZooError(f"device {str(device)!r} is not supported; use auto, cpu, cuda, cuda:N or mps")


def start(preference: str) -> tuple[Ranks, torch.device]:
    """Join the process group when launched by torchrun; return this process's ranks and device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Ranks(), pick_device(preference)
    ranks = Ranks(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    device = pick_device(preference, ranks.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", device_id=device if device.type == "cuda" else None)
    return ranks, device


def wait_for_all(ranks: Ranks) -> None:
    """Block until every process gets here (a no-op for one process)."""
    if ranks.distributed:
        dist.barrier()


def stop() -> None:
    """Leave the process group (also after an error, so peers are not left waiting forever)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def mean_across_ranks(values: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """The mean of a tensor over all processes (itself when there is one)."""
    if ranks.distributed:
        values = values.clone()
        dist.all_reduce(values)
        values /= ranks.world_size
    return values
