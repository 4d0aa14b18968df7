"""Checkpoints: tensors as safetensors, everything else as JSON; no pickle anywhere.

A checkpoint is a folder ``checkpoints/step-000001234/`` holding ``<module>.safetensors`` for each
network and optimiser and ``state.json`` (step, epoch, schedule, optimiser hyper-parameters). It is
written under a temporary name, flushed to disk and renamed into place; only then does the file
``checkpoints/latest`` (replaced atomically too) point at it. A process killed at any moment leaves
the previous checkpoint, or the new one, complete and loadable.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from pix2pix_zoo.atomic import write_json_atomic
from pix2pix_zoo.errors import ZooError

LATEST = "latest"
STATE = "state.json"


class CheckpointError(ZooError):
    """A checkpoint is missing or unreadable."""


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimiser's state dict into tensors (for safetensors) and plain data (for JSON)."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> None:
    """Inverse of :func:`flatten_optimizer`.

    The states were saved contiguous; each is given back in its parameter's memory layout (e.g.
    channels-last weights), because fused optimiser kernels walk a parameter and its states in
    memory order and silently mix up elements whose layouts differ.
    """
    state: dict[int, dict[str, Any]] = {}
    for flat, value in [*tensors.items(), *plain["scalars"].items()]:
        index, key = flat.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": plain["param_groups"]})
    for parameter, values in optimizer.state.items():
        for key, value in values.items():
            shaped_alike = isinstance(value, torch.Tensor) and value.shape == parameter.shape
            if shaped_alike and value.stride() != parameter.stride():
                values[key] = torch.empty_like(parameter, dtype=value.dtype).copy_(value)


def module_tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A module's state dict as contiguous CPU tensors, ready for safetensors."""
    return {key: value.detach().contiguous().cpu() for key, value in module.state_dict().items()}


def save_checkpoint(
    directory: Path,
    step: int,
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    state: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write one checkpoint atomically, point ``latest`` at it, keep the newest ``keep``; return its folder."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:09d}"
    final = directory / name
    temporary = directory / f".{name}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    plain_optimizers = {}
    for key, module in modules.items():
        save_file(module_tensors(module), temporary / f"{key}.safetensors")
    for key, optimizer in optimizers.items():
        tensors, plain = flatten_optimizer(optimizer)
        save_file(tensors, temporary / f"{key}.safetensors")
        plain_optimizers[key] = plain
    write_json_atomic(temporary / STATE, {**state, "step": step, "optimizers": plain_optimizers})
    for path in temporary.iterdir():
        _fsync(path)
    _fsync(temporary)
    if final.exists():  # the same step saved again (e.g. end of epoch right after a periodic save)
        shutil.rmtree(final)
    temporary.rename(final)
    _fsync(directory)
    pointer = directory / f".{LATEST}.tmp"
    pointer.write_text(name + "\n")
    _fsync(pointer)
    pointer.replace(directory / LATEST)
    _fsync(directory)
    for old in sorted(p for p in directory.glob("step-*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(directory: Path) -> Path | None:
    """The folder ``latest`` points at, or None when the run has no checkpoint yet."""
    pointer = directory / LATEST
    if not pointer.exists():
        return None
    folder = directory / pointer.read_text().strip()
    if not (folder / STATE).exists():
        raise CheckpointError(f"checkpoint {folder} named by {pointer} is incomplete")
    return folder


def load_checkpoint(
    folder: Path, modules: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer]
) -> dict[str, Any]:
    """Load weights and optimiser states into the given objects; return the JSON state."""
    try:
        state = json.loads((folder / STATE).read_text())
        for key, module in modules.items():
            module.load_state_dict(load_file(folder / f"{key}.safetensors"))
        for key, optimizer in optimizers.items():
            restore_optimizer(optimizer, load_file(folder / f"{key}.safetensors"), state["optimizers"][key])
    except Exception as error:  # safetensors raises its own error type for a corrupt file
        raise CheckpointError(f"cannot load checkpoint {folder}: {error}") from None
    return state
