"""``zoo colorize-scan PATH``: is this folder of photos ready for colourisation?

Per split (as ``--data colorize:PATH`` splits it): how many photos, how many are nearly grey (they
teach a colouriser nothing but still cost training time) and which files cannot be read (training
stops on them unless ``--skip-bad``). A photo is nearly grey when 99% of its pixels have a Lab
chroma sqrt(a² + b²) below ``--grey-chroma`` (default 5, a barely visible tint), measured on a copy
at most 128 pixels on a side.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import typer

from pix2pix_zoo.cli.output import print_json, print_table
from pix2pix_zoo.data.images import image_to_tensor, open_image
from pix2pix_zoo.errors import BadImageError, DataError
from pix2pix_zoo.data.photos import split_photos
from pix2pix_zoo_colorize.dataset import INFO
from pix2pix_zoo_colorize.lab import chroma

GREY_CHROMA = 5.0
SCAN_SIDE = 128
NAMES_SHOWN = 5


@dataclass
class SplitScan:
    """What one split holds; names are relative to the scanned folder."""

    split: str
    photos: int = 0
    grey: list[str] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)


def is_nearly_grey(image, grey_chroma: float = GREY_CHROMA) -> bool:
    """Whether a PIL image has (almost) no colour: the 99th percentile of its chroma is below ``grey_chroma``."""
    small = image.copy()
    small.thumbnail((SCAN_SIDE, SCAN_SIDE))
    rgb = image_to_tensor(small, 3).float().div(255)
    return torch.quantile(chroma(rgb).flatten(), 0.99).item() < grey_chroma


def scan_photos(root: Path, *, grey_chroma: float = GREY_CHROMA) -> list[SplitScan]:
    """Scan every split of ``colorize:root``; a DataError if ``root`` holds no photos at all."""
    root = Path(root).expanduser()
    scans = []
    for split in INFO.splits:
        try:
            _, files = split_photos(root, split, INFO.splits, INFO.name)
        except DataError:
            if not root.is_dir():
                raise
            continue  # split folders without this one
        scan = SplitScan(split, photos=len(files))
        for path in files:
            name = path.relative_to(root).as_posix()
            try:
                grey = is_nearly_grey(open_image(path), grey_chroma)
            except BadImageError as error:
                scan.unreadable.append({"name": name, "reason": error.reason})
                continue
            if grey:
                scan.grey.append(name)
        scans.append(scan)
    if not any(scan.photos for scan in scans):
        raise DataError(f"{str(root)!r} holds no photos (looked for image files under it, recursively)")
    return scans


def colorize_scan(
    path: Path = typer.Argument(..., metavar="PATH", help="The folder --data colorize:PATH would read."),
    grey_chroma: float = typer.Option(GREY_CHROMA, "--grey-chroma", min=0.0,
                                      help="Chroma below which a pixel counts as grey."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Count photos, nearly grey photos and unreadable files per split of colorize:PATH (exit 1: unreadable files)."""
    scans = scan_photos(path, grey_chroma=grey_chroma)
    if as_json:
        print_json([asdict(scan) for scan in scans])
    else:
        rows = [[s.split, str(s.photos), str(len(s.grey)), str(len(s.unreadable))] for s in scans]
        print_table(f"colorize:{path}", ["split", "photos", "nearly grey", "unreadable"], rows)
    grey = [name for scan in scans for name in scan.grey]
    if grey:
        more = f" and {len(grey) - NAMES_SHOWN} more" if len(grey) > NAMES_SHOWN else ""
        shown = ", ".join(grey[:NAMES_SHOWN])
        typer.echo(f"note: {len(grey)} nearly grey photos teach no colour: {shown}{more}", err=True)
    unreadable = [item for scan in scans for item in scan.unreadable]
    for item in unreadable:
        typer.echo(f"error: cannot read {item['name']}: {item['reason']}", err=True)
    if unreadable:
        raise typer.Exit(1)


def register_scan_command(app: typer.Typer) -> None:
    app.command("colorize-scan")(colorize_scan)
