"""What keeps a run directory safe: a marker that says ``zoo train`` made it, a lock that keeps it to
one process, a replacement that happens only once the new run is set up, and a metrics file that
survives a crash in the middle of a line.

Only a folder with the marker, a config.json of the zoo's own structure and nothing but the files a
run writes may be replaced (``--overwrite``); never a symbolic link, a file, or a folder of anything
else. The lock is an ``flock`` on a file inside the run directory: the operating system releases it
when its holder ends, however it ends, so a killed run never blocks its own resume.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from pix2pix_zoo.atomic import temporary_path, temporary_target, write_text_atomic
from pix2pix_zoo.errors import ZooError

MARKER = ".pix2pix-zoo-run"
LOCK = ".pix2pix-zoo-run.lock"
CONFIG = "config.json"
METRICS = "metrics.jsonl"
TRANSLATOR = "translator"  # the trained translator's folder in a run
# Everything a run writes at its top level (plus atomic's temporary names while one is being replaced).
RUN_ENTRIES = frozenset({MARKER, LOCK, CONFIG, METRICS, "samples", "checkpoints", "report.html", TRANSLATOR,
                         "eval.json", "tensorboard"})


class RunExists(ZooError):
    """The run directory exists and may not be replaced (no --overwrite, or it is not a run of the zoo)."""


class RunBusy(ZooError):
    """Another process holds the run directory's lock."""


class RunLock:
    """An exclusive lock on one run directory, held until :meth:`release` or the end of the process."""

    def __init__(self, run_dir: Path) -> None:
        path = run_dir / LOCK
        self._descriptor: int | None = None
        try:
            # O_NOFOLLOW: a lock file planted as a link cannot make the zoo write somewhere else.
            self._descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as error:
            if error.errno != errno.ELOOP:
                raise
            raise RunExists(f"{path} is a symbolic link, not the run's lock file; remove it") from None
        try:
            fcntl.flock(self._descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._descriptor, 32, 0).decode("ascii", "replace").strip()
            self.release()
            process = f" (process {holder})" if holder.isdigit() else ""
            raise RunBusy(f"run directory {run_dir} is in use by another zoo process{process}; "
                          "wait for it to end or stop it") from None
        os.ftruncate(self._descriptor, 0)
        os.pwrite(self._descriptor, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self._descriptor is not None:
            # Unlock before closing: forked loader workers share this descriptor and may outlive
            # the run for a while; the lock must not live on in them.
            fcntl.flock(self._descriptor, fcntl.LOCK_UN)
            os.close(self._descriptor)
            self._descriptor = None

    def __del__(self) -> None:
        self.release()


def check_run_target(run_dir: Path) -> None:
    """Refuse a run directory that is a link or a file, or that lies under a file."""
    if run_dir.is_symlink():
        raise RunExists(f"{run_dir} is a symbolic link, not a run directory; choose another run name")
    if run_dir.exists() and not run_dir.is_dir():
        raise RunExists(f"{run_dir} is a file, not a run directory; choose another run name")
    for folder in run_dir.parents:
        if folder.exists():
            if not folder.is_dir():
                raise RunExists(f"cannot make run directory {run_dir}: {folder} is a file, not a folder")
            break


def run_config(run_dir: Path) -> dict[str, Any]:
    """The run's config.json as the zoo wrote it: an object with a ``config`` object and a
    ``canonical_spec``; a RunExists error naming what is wrong otherwise."""
    path = run_dir / CONFIG
    if path.is_symlink() or not path.is_file():
        raise RunExists(f"{run_dir} is not a run directory: it has no {CONFIG}")
    try:
        saved = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunExists(f"{path} is not valid JSON ({error})") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
        raise RunExists(f"{path} is not a zoo run's config: it has no 'config' object")
    if not isinstance(saved.get("canonical_spec"), str):
        raise RunExists(f"{path} is not a zoo run's config: it has no 'canonical_spec' string")
    return saved


def check_replaceable(run_dir: Path) -> None:
    """Refuse to replace anything but a run directory ``zoo train`` made and nothing else wrote into
    (an empty folder may go too)."""
    check_run_target(run_dir)
    entries = sorted(path.name for path in run_dir.iterdir())
    if not entries:
        return
    refusal = f"--overwrite replaces only a run directory made by zoo train, and {run_dir}"
    if not (run_dir / MARKER).is_file() or (run_dir / MARKER).is_symlink():
        raise RunExists(f"{refusal} has no {MARKER} marker: it is not a run directory; not overwriting it")
    try:
        run_config(run_dir)
    except RunExists as error:
        raise RunExists(f"{refusal} has a config.json that is not a run's ({error}); not overwriting it") from None
    foreign = [name for name in entries if name not in RUN_ENTRIES and temporary_target(name) not in RUN_ENTRIES]
    if foreign:
        raise RunExists(f"{refusal} holds {foreign[0]!r}, which zoo train did not write; not overwriting it")


def install_run(run_dir: Path, fill: Callable[[Path], None], replacing: RunLock | None = None) -> RunLock:
    """Set up a new run in a folder beside ``run_dir`` (``fill`` writes its files), lock it, and only
    then move it into place; return its lock.

    ``replacing`` is the held lock of the old run directory being replaced: the old one is moved
    aside before the new one moves in, and deleted last. A run directory that appeared meanwhile
    (another process) is not replaced but refused.
    """
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = temporary_path(run_dir, "new")
    staging.mkdir()
    try:
        (staging / MARKER).write_text(json.dumps({"made_by": "zoo train"}) + "\n")
        lock = RunLock(staging)
        fill(staging)
        old = temporary_path(run_dir, "old") if replacing is not None else None
        if old is not None:
            run_dir.rename(old)
        try:
            staging.rename(run_dir)  # fails if run_dir appeared and is not empty
        except OSError as error:
            if old is not None:
                old.rename(run_dir)
            if error.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise RunExists(f"run directory {run_dir} was just made by another process; not replacing it") from None
            raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
        replacing.release()
    return lock


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl, leaving out any line that is not one (the torn last line a
    crash in the middle of an append leaves)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_bytes().splitlines():
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
    return records


def trim_metrics(path: Path, last_step: int) -> None:
    """Make metrics.jsonl end at ``last_step`` (a resumed run's checkpoint): drop a torn line and the
    records logged after that step, which the resumed run logs again."""
    if not path.is_file():
        return
    kept = [record for record in read_metrics(path) if record["step"] <= last_step]
    text = "".join(json.dumps(record) + "\n" for record in kept)
    if text.encode("utf-8") != path.read_bytes():
        write_text_atomic(path, text)
