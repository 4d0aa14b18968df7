"""``zoo list`` and ``zoo pull``: the translator catalog and the local cache of its weights."""

from __future__ import annotations

from typing import Optional

import typer
from rich.filesize import decimal

from pix2pix_zoo import catalog
from pix2pix_zoo.cli.output import print_json, print_table


def list_translators(
    pattern: Optional[str] = typer.Argument(None, metavar="PATTERN", help="Shell wildcard on names, e.g. '*2photo'."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the pretrained translators: shipped, yours ($ZOO_HOME/registry) and plugins'."""
    entries = catalog.list_translators(pattern)
    if as_json:
        print_json([entry.as_dict() for entry in entries])
        return
    rows = [
        [
            entry.name,
            entry.spec,
            f"{entry.task} ({entry.direction})",
            entry.dataset,
            f"{entry.parameters / 1e6:.1f}M" + (f", {decimal(entry.size_bytes)}" if entry.size_bytes else ""),
            entry.origin,
            "yes" if entry.downloaded else "no",
            entry.verification,
        ]
        for entry in entries
    ]
    columns = ["name", "spec", "task", "dataset", "params", "origin", "pulled", "sha256"]
    print_table("translators", columns, rows, wrap=("spec", "task", "dataset", "origin"))


def pull(name: str = typer.Argument(..., metavar="NAME", help="A translator name from `zoo list`.")) -> None:
    """Download, verify and convert a translator into $ZOO_HOME/translators/NAME; print its weights file.

    $ZOO_TRANSLATORS_URL names a mirror holding the same files (http:// or file://).
    """
    entry = catalog.find_translator(name)
    if entry.downloaded:
        typer.echo(f"{name} is already pulled", err=True)
    typer.echo(str(catalog.pull(name)))
