"""``zoo list``, ``zoo pull`` and ``zoo publish``: the translator catalog, the local cache of its weights,
and training runs turned into catalog entries."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.filesize import decimal

from pix2pix_zoo import translators
from pix2pix_zoo.cli.output import print_json, print_table


def list_translators(
    pattern: Optional[str] = typer.Argument(None, metavar="PATTERN", help="Shell wildcard on names, e.g. '*2photo'."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the pretrained translators: shipped, yours ($ZOO_HOME/registry) and plugins'."""
    entries = translators.list_translators(pattern)
    if as_json:
        print_json([entry.as_dict() for entry in entries])
        return
    # Two lines per translator keep the table readable in 80 columns.
    rows = [
        [
            entry.name,
            f"{entry.spec}\n{entry.task} ({entry.direction}), {entry.dataset}",
            f"{entry.parameters / 1e6:.1f}M" + (f"\n{decimal(entry.size_bytes)}" if entry.size_bytes else ""),
            entry.origin,
            f"{'pulled' if entry.downloaded else 'not pulled'}\n{entry.verification}",
        ]
        for entry in entries
    ]
    columns = ["name", "spec, task, dataset", "params", "origin", "state"]
    print_table("translators", columns, rows, wrap=("spec, task, dataset",))


def pull(name: str = typer.Argument(..., metavar="NAME", help="A translator name from `zoo list`, or a Hub name hf://ORG/NAME.")) -> None:
    """Download, verify and convert a translator into $ZOO_HOME/translators/NAME; print its weights file.

    $ZOO_TRANSLATORS_URL names a mirror holding the same files (http:// or file://). A Hub name,
    hf://ORG/NAME or hf://ORG/NAME@REVISION, is its model.safetensors, downloaded with huggingface_hub
    (the hub extra; HF_ENDPOINT is honoured) and checked against the sha256 of its first pull.
    """
    if not translators.is_hub_name(name) and translators.find_translator(name).downloaded:
        typer.echo(f"{name} is already pulled", err=True)
    typer.echo(str(translators.pull(name)))


def publish(
    run: Path = typer.Argument(..., metavar="RUN", help="A finished training run (runs/<name>)."),
    name: Optional[str] = typer.Option(None, "--name", help="The catalog name (default: the run's, lower-cased)."),
    registry: Optional[Path] = typer.Option(None, "--registry", metavar="DIR", help="Where NAME.toml goes (default: $ZOO_HOME/registry)."),
    to: Optional[str] = typer.Option(None, "--to", metavar="hf://ORG/NAME", help="Also upload to this Hugging Face Hub model repository."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the entry published as NAME in this registry before (never another registry's weights)."),
) -> None:
    """Publish a run's translator as a catalog entry; print its folder.

    Writes $ZOO_HOME/translators/NAME/ (model.safetensors with its card, a README.md model card, the
    newest sample grid), so `zoo translate NAME` runs it at once, and NAME.toml with the weights'
    sha256 and a file:// URL. --to hf://ORG/NAME uploads the folder with huggingface_hub (pip install
    huggingface_hub; log in with `hf auth login`) and makes the entry's URL the Hub's.
    """
    published = translators.publish(run, name, registry=registry, overwrite=overwrite, to=to)
    where = f", uploaded to https://huggingface.co/{published.hub_repo}" if published.hub_repo else ""
    typer.echo(f"published {published.entry.name} ({published.registry_file}){where}", err=True)
    typer.echo(str(published.folder))
