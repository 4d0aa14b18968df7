"""Many processes through torchrun: the same command, DDP, one writer.

torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; without them the run is one process.
NCCL serves CUDA devices and gloo the CPU (which is how the tests run two ranks).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from pix2pix_zoo.devices import pick_device


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
