"""Shared output helpers: JSON and rich tables on stdout."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table


def print_json(data: Any) -> None:
    """Machine-readable output on stdout."""
    print(json.dumps(data, indent=2))


def print_table(title: str, columns: list[str], rows: list[list[str]], wrap: tuple[str, ...] = ()) -> None:
    """A rich table on stdout; only the ``wrap`` columns wrap, the others keep their words whole."""
    table = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold", no_wrap=column not in wrap)
    for row in rows:
        table.add_row(*row)
    Console().print(table)
