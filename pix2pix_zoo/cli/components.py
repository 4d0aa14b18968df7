"""``zoo components``: what the installed plugins provide."""

from __future__ import annotations

from typing import Optional

import typer

from pix2pix_zoo.cli.output import print_json, print_table
from pix2pix_zoo.components import format_value, parse_kind
from pix2pix_zoo.plugins import get_registry


def components(
    kind: Optional[str] = typer.Argument(None, metavar="KIND", help="Only this kind: generator, discriminator, objective, dataset or codec."),
    pattern: Optional[str] = typer.Option(None, "--filter", "-f", help="Shell wildcard on names, e.g. 'unet*'."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the installed components: generators, discriminators, objectives, datasets, codecs."""
    found = get_registry().components(parse_kind(kind) if kind else None, pattern)
    if as_json:
        print_json([component.as_dict() for component in found])
        return
    columns = ["kind", "name", "aliases", "options (defaults)", "plugin", "summary"]
    rows = [
        [
            c.kind,
            c.name,
            ", ".join(c.aliases),
            "\n".join(f"{o.name}={format_value(o.default)}" for o in c.options),
            c.plugin,
            c.summary,
        ]
        for c in found
    ]
    if kind:  # one kind: the column would only repeat it
        columns, rows = columns[1:], [row[1:] for row in rows]
    print_table("components", columns, rows, wrap=("summary",))
