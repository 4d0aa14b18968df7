"""``zoo plugins``: installed plugins, their distributions and what each registered; ``zoo plugins
new NAME`` writes a working plugin package to start from."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from pix2pix_zoo.cli.output import print_json, print_table
from pix2pix_zoo.plugins import plugin_records
from pix2pix_zoo.scaffold import KINDS, new_plugin

app = typer.Typer(add_completion=False, invoke_without_command=True)


@app.callback()
def plugins(
    context: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")
) -> None:
    """List the loaded plugins: distribution, version and the components each registered."""
    if context.invoked_subcommand is not None:
        return
    from pix2pix_zoo.experiments.recipes import plugin_recipes
    from pix2pix_zoo.translators import plugin_entries

    plugin_entries()  # the catalog's hooks note each plugin's translators in its record
    plugin_recipes()  # and the recipes' hook its recipes
    records = plugin_records()
    if as_json:
        print_json([record.as_dict() for record in records])
        return
    rows = []
    for record in records:
        by_kind: dict[str, list[str]] = {}
        for kind, name in [*record.registered, *record.added]:
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


@app.command("new")
def new(
    name: str = typer.Argument(..., metavar="NAME", help="The component's name, e.g. mynet (lower case, digits, _)."),
    kind: str = typer.Option("generator", "--kind", "-k", help=f"What it adds: {', '.join(KINDS)}."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Where to write it (default: ./pix2pix-zoo-NAME)."),
) -> None:
    """Write a working plugin package (pyproject, the component, its tests, README) to start from."""
    folder = new_plugin(name, output, kind)
    typer.echo(str(folder))
    typer.echo(f'next: pip install -e "{folder}[test]" && python -m pytest {folder / "tests"}', err=True)
