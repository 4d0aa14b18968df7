"""``zoo plugins``: installed plugins, their distributions and what each registered."""

from __future__ import annotations

import typer

from pix2pix_zoo.cli.output import print_json, print_table
from pix2pix_zoo.plugins import plugin_records


def plugins(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List the loaded plugins: distribution, version and the components each registered."""
    records = plugin_records()
    if as_json:
        print_json([record.as_dict() for record in records])
        return
    rows = []
    for record in records:
        by_kind: dict[str, list[str]] = {}
        for kind, name in record.registered:
            by_kind.setdefault(kind, []).append(name)
        registered = "; ".join(f"{kind}s: {', '.join(names)}" for kind, names in by_kind.items())
        rows.append(
            [
                record.name,
                record.distribution or "(registered at run time)",
                record.version or "",
                "yes" if record.builtin else "no",
                f"FAILED: {record.error}" if record.error else registered or "(nothing)",
            ]
        )
    print_table("plugins", ["plugin", "distribution", "version", "built-in", "registered"], rows, wrap=("registered",))
