"""Writes that are all-or-nothing, and work in progress that is never left behind.

A write goes to a temporary file of its own in the same folder (hidden, named with the process id
and a random part, so that concurrent writers never share one), then is renamed over the target.
What a failure or an interruption leaves behind is deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


_TEMPORARY_NAME = re.compile(r"\.(?P<name>.+)\.\d+-[0-9a-f]{8}\.[a-z]+")


def temporary_path(path: Path, label: str = "tmp") -> Path:
    """A hidden name beside ``path`` that no other process or call uses: ``.<name>.<pid>-<random>.<label>``."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.{label}")


def temporary_target(name: str) -> str | None:
    """The file name that a :func:`temporary_path` name was made for; None for any other name."""
    match = _TEMPORARY_NAME.fullmatch(name)
    return match["name"] if match else None


def write_bytes_atomic(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Replace ``path`` with ``data``; a reader sees the old content or the new, never half of it.

    ``durable`` also flushes the file and the rename to the disk before returning (for records
    that must survive a power cut, not just a crash of the process).
    """
    temporary = temporary_path(path)
    try:
        with open(temporary, "xb") as file:
            file.write(data)
            if durable:
                file.flush()
                os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if durable:
        fsync_path(path.parent)  # the rename


def write_text_atomic(path: Path, text: str, *, durable: bool = False) -> None:
    """:func:`write_bytes_atomic` of ``text`` in UTF-8."""
    write_bytes_atomic(path, text.encode("utf-8"), durable=durable)


def write_json_atomic(path: Path, data: Any, *, durable: bool = False) -> None:
    """:func:`write_text_atomic` of indented, key-sorted JSON (paths and the like as strings)."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", durable=durable)


def fsync_path(path: Path) -> None:
    """Flush a file's content, or a folder's entries (a rename into it), to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt as Ctrl-C does, so that the ``finally``
    clauses that delete work in progress run; the previous handler is restored afterwards.

    Outside the main thread (where Python cannot set handlers) the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the clean-up short
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        # None: a handler set outside Python, which cannot be put back; the default is closest.
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
