"""Checkpoints: tensors as safetensors, everything else as JSON; no pickle anywhere.

A checkpoint is a folder ``checkpoints/step-000001234/`` holding ``<module>.safetensors`` for each
network and optimiser and ``state.json`` (step, epoch, schedule, optimiser hyper-parameters and the
sha256 of every tensor file, verified on load). It is written under a temporary name, flushed to disk
and renamed into place; only then does the file ``checkpoints/latest`` (replaced atomically too) point
at it. A process killed at any moment leaves the previous checkpoint, or the new one, complete and
loadable; a write the system refuses (a full disk) leaves the previous one and no temporary files.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from safetensors.torch import load_file, save_file

from pix2pix_zoo.atomic import fsync_path, write_json_atomic
from pix2pix_zoo.download import sha256_of
from pix2pix_zoo.errors import ZooError

LATEST = "latest"
STATE = "state.json"
STEP_NAME = re.compile(r"step-\d{9}")


class CheckpointError(ZooError):
    """A checkpoint is missing or unreadable."""


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
    """Write one checkpoint atomically, point ``latest`` at it, keep the newest ``keep``; return its folder.

    The caller holds the run's lock, so temporary files found here are a dead process's and go.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob(".*.tmp"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale)
        else:
            stale.unlink()
    name = f"step-{step:09d}"
    final = directory / name
    temporary = directory / f".{name}.tmp"
    pointer = directory / f".{LATEST}.tmp"
    try:
        temporary.mkdir()
        plain_optimizers, checksums = {}, {}
        tensors_of = {key: module_tensors(module) for key, module in modules.items()}
        for key, optimizer in optimizers.items():
            tensors_of[key], plain_optimizers[key] = flatten_optimizer(optimizer)
        for key, tensors in tensors_of.items():
            save_file(tensors, temporary / f"{key}.safetensors")
            checksums[f"{key}.safetensors"] = sha256_of(temporary / f"{key}.safetensors")
        write_json_atomic(temporary / STATE, {**state, "step": step, "optimizers": plain_optimizers,
                                              "sha256": checksums})
        for path in temporary.iterdir():
            fsync_path(path)
        fsync_path(temporary)
        if final.exists():  # the same step saved again after falling back from a corrupt checkpoint
            shutil.rmtree(final)
        temporary.rename(final)
        fsync_path(directory)
        try:
            pointer.write_text(name + "\n")
            fsync_path(pointer)
            pointer.replace(directory / LATEST)
        except OSError:
            shutil.rmtree(final, ignore_errors=True)  # `latest` still names the previous checkpoint
            raise
        fsync_path(directory)
    except OSError as error:
        shutil.rmtree(temporary, ignore_errors=True)
        pointer.unlink(missing_ok=True)
        previous = _pointed_name(directory)
        kept = f"the previous checkpoint {previous} is kept" if previous else "there is no earlier checkpoint"
        raise CheckpointError(f"cannot write checkpoint {final}: {error.strerror or error}; {kept}") from None
    for old in sorted(p for p in directory.glob("step-*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _pointed_name(directory: Path) -> str | None:
    """The checkpoint name in ``latest`` (None when there is none); a CheckpointError when the file
    holds anything but a checkpoint's name, so that it cannot point anywhere else."""
    pointer = directory / LATEST
    if not pointer.exists():
        return None
    try:
        name = pointer.read_bytes().decode("utf-8").strip()
    except (UnicodeDecodeError, OSError):
        name = None
    if name is None or not STEP_NAME.fullmatch(name):
        raise CheckpointError(
            f"{pointer} does not hold a checkpoint's name (like step-000001234); write the name of one of "
            f"the step-* folders beside it into it"
        )
    return name


def latest_checkpoint(directory: Path) -> Path | None:
    """The folder ``latest`` points at, or None when the run has no checkpoint yet."""
    name = _pointed_name(directory)
    if name is None:
        return None
    folder = directory / name
    if not (folder / STATE).exists():
        raise CheckpointError(f"checkpoint {folder} named by {directory / LATEST} is incomplete")
    return folder


def checkpoints_newest_first(directory: Path) -> Iterator[Path]:
    """The checkpoint ``latest`` names, then the older ones, newest first (none if there is no ``latest``)."""
    name = _pointed_name(directory)
    if name is None:
        return
    yield directory / name
    older = sorted((p for p in directory.glob("step-*") if STEP_NAME.fullmatch(p.name) and p.name < name), reverse=True)
    yield from older


def verify_checkpoint(folder: Path) -> dict[str, Any]:
    """The checkpoint's JSON state once every tensor file matches its recorded sha256; a CheckpointError
    saying what is missing or corrupt. (Checkpoints written before checksums are taken as they are.)"""
    try:
        state = json.loads((folder / STATE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"cannot load checkpoint {folder}: it has no {STATE}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"cannot load checkpoint {folder}: {STATE} is unreadable ({error})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"cannot load checkpoint {folder}: {STATE} is not an object")
    required = {"step": int, "epoch": int, "step_in_epoch": int, "optimizers": dict}
    for key, kind in required.items():
        if not isinstance(state.get(key), kind):
            raise CheckpointError(f"cannot load checkpoint {folder}: {STATE} lacks a valid {key!r}")
    checksums = state.get("sha256", {})
    if not isinstance(checksums, dict):
        raise CheckpointError(f"cannot load checkpoint {folder}: {STATE} has a malformed 'sha256'")
    for file_name, expected in checksums.items():
        path = folder / str(file_name)
        if path.parent != folder or not path.is_file():
            raise CheckpointError(f"cannot load checkpoint {folder}: {file_name} is missing")
        if sha256_of(path) != expected:
            raise CheckpointError(f"cannot load checkpoint {folder}: {file_name} does not match its sha256 (corrupt)")
    return state


def newest_verified_checkpoint(directory: Path) -> Path | None:
    """The newest checkpoint whose files match their checksums; None when there is none."""
    try:
        for folder in checkpoints_newest_first(directory):
            try:
                verify_checkpoint(folder)
                return folder
            except CheckpointError:
                continue
    except CheckpointError:  # `latest` itself is unreadable
        pass
    return None


def load_newest_checkpoint(
    directory: Path,
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    warn: Callable[[str], None],
) -> dict[str, Any] | None:
    """Load the checkpoint ``latest`` names, or, if it is corrupt, the newest older one that loads
    (saying so through ``warn`` in one line); None when the run has no checkpoint."""
    failure = None
    for folder in checkpoints_newest_first(directory):
        if failure is not None:
            warn(f"{failure}; falling back to the previous checkpoint {folder}")
        try:
            return load_checkpoint(folder, modules, optimizers)
        except CheckpointError as error:
            failure = str(error)
    if failure is not None:
        raise CheckpointError(f"{failure}, and no earlier checkpoint is left to fall back to")
    return None


def load_checkpoint(
    folder: Path, modules: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer]
) -> dict[str, Any]:
    """Verify the checkpoint, load weights and optimiser states into the given objects; return the JSON state."""
    state = verify_checkpoint(folder)
    try:
        for key, module in modules.items():
            module.load_state_dict(load_file(folder / f"{key}.safetensors"))
        for key, optimizer in optimizers.items():
            restore_optimizer(optimizer, load_file(folder / f"{key}.safetensors"), state["optimizers"][key])
    except Exception as error:  # safetensors raises its own error type for a corrupt file
        raise CheckpointError(f"cannot load checkpoint {folder}: {error}") from None
    return state
