"""Writes that are all-or-nothing: a temporary file in the same folder, then a rename over the target."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``; a reader sees the old content or the new, never half of it."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


def write_text_atomic(path: Path, text: str) -> None:
    """:func:`write_bytes_atomic` of ``text`` in UTF-8."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, data: Any) -> None:
    """:func:`write_text_atomic` of indented, key-sorted JSON (paths and the like as strings)."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
