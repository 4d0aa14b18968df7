"""``zoo data``: the named datasets, whether they are downloaded, and getting them."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.filesize import decimal

from pix2pix_zoo.cli.output import print_json, print_table
from pix2pix_zoo.data import catalog
from pix2pix_zoo.errors import DataError

app = typer.Typer(
    help=(
        "Paired datasets: list, inspect, download, prepare.\n\n"
        "They live in $ZOO_HOME/datasets (default ~/.cache/pix2pix-zoo/datasets); "
        f"${catalog.MIRROR_VARIABLE} names a mirror of the archives (http:// or file://)."
    ),
    no_args_is_help=True,
    add_completion=False,
)


def _yes_no(value: bool | None) -> str:
    return "" if value is None else "yes" if value else "no"


@app.command("list")
def list_datasets(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List every registered dataset: task, default direction, whether it is downloaded, size."""
    entries = catalog.list_datasets()
    if as_json:
        print_json([entry.as_dict() for entry in entries])
        return
    rows = [
        [
            entry.name,
            entry.info.task if entry.info else entry.summary,
            entry.info.default_direction if entry.info else "",
            _status(entry),
            f"{entry.pairs:,}" if entry.pairs else "",
            decimal(entry.info.download_size) if entry.info and entry.info.download_size else "",
        ]
        for entry in entries
    ]
    columns = ["name", "task", "direction", "status", "pairs", "download"]
    print_table("datasets", columns, rows, wrap=("task",))


def _status(entry: catalog.DatasetEntry) -> str:
    """Origin and download state in a word or two (``--json`` has them apart, with the URL)."""
    if entry.downloaded is None:
        return "your files" if entry.reads_your_files else "embedded"
    made = "prepared" if entry.origin == "local" else "downloaded"
    return made if entry.downloaded else f"not {made}"


@app.command("info")
def info(
    name: str = typer.Argument(
        ..., metavar="NAME", help="A dataset name, e.g. facades, or your files as --data names them: pairs:PATH."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show everything known about a dataset: channels, direction, splits, source, license, URL.

    For your own files (folder:PATH, pairs:PATH): the pairs found in each split and the range of their sizes.
    """
    facts = catalog.describe_data(name)
    if as_json:
        print_json(facts)
        return
    found = facts.pop("found", {})
    rows = [[key, _text(value)] for key, value in facts.items()]
    rows += [[f"{split} split", _found_text(split_facts)] for split, split_facts in found.items()]
    print_table(facts["name"], ["", "value"], rows, wrap=("value",))


def _found_text(split_facts: dict) -> str:
    if not split_facts["pairs"]:
        return f"no pairs: {split_facts['why']}"
    (small_height, small_width), (large_height, large_width) = split_facts["smallest"], split_facts["largest"]
    pairs = f"{split_facts['pairs']:,} pair{'s' if split_facts['pairs'] > 1 else ''}"
    if split_facts["sizes"] == 1:
        return f"{pairs}, all {small_height}x{small_width} (height x width)"
    return f"{pairs} in {split_facts['sizes']:,} sizes, {small_height}x{small_width} to {large_height}x{large_width} " \
           "(height x width)"


def _text(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{key} {count:,}" for key, count in value.items())
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return _yes_no(value) if isinstance(value, bool) or value is None else str(value)


@app.command("download")
def download(name: str = typer.Argument(..., metavar="NAME", help="A dataset name, e.g. facades.")) -> None:
    """Download and extract a dataset into $ZOO_HOME/datasets (a progress bar on stderr); print its folder."""
    folder, downloaded = catalog.download_dataset(name)
    if not downloaded:
        typer.echo(f"{name} is already downloaded", err=True)
    typer.echo(str(folder))


@app.command("prepare", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def prepare(
    context: typer.Context,
    name: str = typer.Argument(..., metavar="NAME", help="A dataset that is built locally, e.g. cityscapes."),
    output: Optional[Path] = typer.Option(
        None, "--output", help="Where to build it (default: $ZOO_HOME/datasets/NAME)."
    ),
) -> None:
    """Build a dataset that cannot be downloaded from files you obtained (--SOURCE DIR ...); print its folder.

    Cityscapes: zoo data prepare cityscapes --gtfine DIR --leftimg8bit DIR, the extracted official archives.
    """
    folder = catalog.prepare_dataset(name, _sources(context.args), output)
    typer.echo(str(folder))


def _sources(words: list[str]) -> dict[str, Path]:
    """``["--gtfine", "a", "--leftimg8bit=b"]`` -> ``{"gtfine": Path("a"), "leftimg8bit": Path("b")}``."""
    sources: dict[str, Path] = {}
    remaining = iter(words)
    for word in remaining:
        if not word.startswith("--") or word == "--":
            raise DataError(f"unexpected argument {word!r}; give the source folders as --NAME DIR")
        key, has_value, value = word[2:].partition("=")
        if not has_value:
            value = next(remaining, None)
            if value is None:
                raise DataError(f"option --{key} needs a folder")
        sources[key.replace("-", "_")] = Path(value).expanduser()
    return sources
