"""Checkpoints: tensors as safetensors, everything else as JSON; no pickle anywhere.

A checkpoint is a folder ``checkpoints/step-000001234/`` holding ``<module>.safetensors`` for each
network and optimiser and ``state.json`` (step, epoch, schedule, optimiser hyper-parameters and the
sha256 of every tensor file, verified on load). It is written under a temporary name, flushed to disk
and renamed into place; only then does the file ``checkpoints/latest`` (replaced atomically too) point
at it. A process killed at any moment leaves the previous checkpoint, or the new one, complete and
loadable; a write the system refuses (a full disk) leaves the previous one and no temporary files.

Training does not wait for the disk: :func:`take_snapshot` copies the tensors out (on CUDA into
pinned host memory, asynchronously) and a :class:`CheckpointWriter` writes the copy on a thread of
its own, one write at a time, by the same atomic steps as :func:`save_checkpoint`.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from dataclasses import dataclass
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
    """Split an optimiser's state dict into host copies of its tensors (for safetensors) and plain
    data (for JSON)."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = host_copy(value)
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


def host_copy(tensor: torch.Tensor) -> torch.Tensor:
    """A contiguous copy of ``tensor`` in host memory that later in-place updates do not reach.

    From a GPU the copy goes to pinned memory without blocking (the caller waits for it, see
    :class:`Snapshot`); torch's caching host allocator hands the same pinned blocks to the next
    snapshot once this one is freed.
    """
    tensor = tensor.detach()
    if tensor.device.type == "cpu":
        return tensor.clone(memory_format=torch.contiguous_format)
    copy = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=tensor.device.type == "cuda")
    return copy.copy_(tensor.contiguous(), non_blocking=tensor.device.type == "cuda")


def module_tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Host copies of a module's state dict, ready for safetensors."""
    return {key: host_copy(value) for key, value in module.state_dict().items()}


@dataclass
class Snapshot:
    """Everything a checkpoint writes, copied out of the training state at one step."""

    step: int
    tensors: dict[str, dict[str, torch.Tensor]]  # file stem -> tensors
    state: dict[str, Any]  # state.json without the checksums
    copied: Any = None  # a CUDA event recorded after the copies to the host were queued; None on a CPU

    def wait_until_copied(self) -> None:
        if self.copied is not None:
            self.copied.synchronize()


def take_snapshot(step: int, modules: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                  state: dict[str, Any]) -> Snapshot:
    """Copies of the networks' and optimisers' tensors at ``step``, and the JSON state to go with them."""
    tensors_of = {key: module_tensors(module) for key, module in modules.items()}
    plain_optimizers = {}
    for key, optimizer in optimizers.items():
        tensors_of[key], plain_optimizers[key] = flatten_optimizer(optimizer)
    copied = None
    if any(t.is_pinned() for tensors in tensors_of.values() for t in tensors.values()):
        copied = torch.cuda.Event()
        copied.record()
    return Snapshot(step, tensors_of, {**state, "step": step, "optimizers": plain_optimizers}, copied)


def save_checkpoint(
    directory: Path,
    step: int,
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    state: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write one checkpoint atomically, point ``latest`` at it, keep the newest ``keep``; return its
    folder. (:class:`CheckpointWriter` does the same without making the caller wait for the disk.)"""
    return write_checkpoint(directory, take_snapshot(step, modules, optimizers, state), keep)


def write_checkpoint(directory: Path, snapshot: Snapshot, keep: int = 2) -> Path:
    """Write ``snapshot`` as a checkpoint atomically, point ``latest`` at it, keep the newest ``keep``;
    return its folder.

    The caller holds the run's lock, so temporary files found here are a dead process's and go.
    """
    step = snapshot.step
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
        checksums = {}
        snapshot.wait_until_copied()
        for key, tensors in snapshot.tensors.items():
            save_file(tensors, temporary / f"{key}.safetensors")
            checksums[f"{key}.safetensors"] = sha256_of(temporary / f"{key}.safetensors")
        write_json_atomic(temporary / STATE, {**snapshot.state, "sha256": checksums})
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


class CheckpointWriter:
    """Writes checkpoints on a thread of its own, so that training goes on while the disk works.

    At most one write is in flight: :meth:`submit` first waits for the previous one (a snapshot
    holds a full copy of the training state; two would double that). A write that fails is
    reported by the next call to :meth:`submit`, :meth:`check` or :meth:`wait` as the
    :class:`CheckpointError` that :func:`write_checkpoint` raised, in one line; the checkpoint
    before it stays the newest.
    """

    def __init__(self, directory: Path, keep: int) -> None:
        self.directory, self.keep = directory, keep
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.writes, self.seconds_writing = 0, 0.0  # written on the writer's thread

    def submit(self, snapshot: Snapshot, then: Callable[[], None] = lambda: None) -> None:
        """Write ``snapshot`` once the previous write has ended, then call ``then`` (on the writer's
        thread, only if the write succeeded)."""
        self.wait()
        self._thread = threading.Thread(target=self._write, args=(snapshot, then), name="checkpoint-writer")
        self._thread.start()

    def _write(self, snapshot: Snapshot, then: Callable[[], None]) -> None:
        started = time.perf_counter()
        try:
            write_checkpoint(self.directory, snapshot, self.keep)
            then()
        except BaseException as error:  # handed to the training thread, which stops the run
            self._error = error
        finally:
            self.writes += 1
            self.seconds_writing += time.perf_counter() - started

    def check(self) -> None:
        """Raise the error of a write that has failed, if one has."""
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def join(self) -> None:
        """Wait for the write in flight (if any) to end, keeping its error for :meth:`check`."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def wait(self) -> None:
        """Wait for the write in flight (if any) to end; raise its error if it failed."""
        self.join()
        self.check()


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
