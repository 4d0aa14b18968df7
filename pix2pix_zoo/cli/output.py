"""Shared output helpers: JSON and rich tables on stdout, notes on stderr."""

from __future__ import annotations

import json
from typing import Any

import typer
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


def print_evaluation(evaluation: dict[str, Any], title: str) -> None:
    """An evaluation summary (``{"split", "pairs", candidate: {metric: mean}}``) as a table: one row
    per candidate; LPIPS, FID and KID columns where any candidate has them."""
    columns = {"l1": ("L1", "{:.4f}"), "psnr": ("PSNR (dB)", "{:.2f}"), "ssim": ("SSIM", "{:.4f}"),
               "lpips": ("LPIPS", "{:.4f}"), "fid": ("FID", "{:.3f}"), "kid": ("KID", "{:.5f}")}
    figures = {name: values for name, values in evaluation.items() if isinstance(values, dict)}
    shown = [key for key in columns if any(key in values for values in figures.values())]
    rows = [[name, *(columns[key][1].format(values[key]) if key in values else "" for key in shown)]
            for name, values in figures.items()]
    print_table(f"{title}, {evaluation['pairs']} pairs", ["", *(columns[key][0] for key in shown)], rows)


def note_emulated_precision(device: Any, precision: str) -> None:
    """A note on stderr where ``precision`` has no native kernels on ``device`` (far slower than fp32)."""
    from pix2pix_zoo.devices import emulated_precision_note

    if note := emulated_precision_note(device, precision):
        typer.echo(f"note: {note}; --precision fp32 is faster", err=True)
