"""What a run shows: sample grids (input | output | target) as PNG and a self-contained report.html
with loss curves as inline SVG (no JavaScript, no external files)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from pix2pix_zoo.atomic import write_text_atomic
from pix2pix_zoo.engine.metrics import to_unit
from pix2pix_zoo.engine.rundir import read_metrics
from pix2pix_zoo.errors import SpecError
from pix2pix_zoo.interfaces import ImageCodec

CURVE_WIDTH, CURVE_HEIGHT, MARGIN = 640, 220, 48


def to_rgb(images: Tensor) -> Tensor:
    """[-1, 1] images with 1, 2, 3 or more channels -> RGB uint8 (N, 3, H, W) for viewing."""
    unit = to_unit(images)
    channels = unit.shape[1]
    if channels == 1:
        unit = unit.expand(-1, 3, -1, -1)
    elif channels == 2:
        unit = torch.cat([unit, unit.new_zeros(unit.shape[0], 1, *unit.shape[2:])], 1)
    else:
        unit = unit[:, :3]
    return (unit * 255).round().to(torch.uint8)


def open_codec(name: str) -> ImageCodec | None:
    """The registered codec called ``name``; None for ``""`` (plain grey or RGB images)."""
    if not name:
        return None
    from pix2pix_zoo.plugins import get_registry

    try:
        component = get_registry().get(name, "codec")
    except SpecError:
        raise SpecError(f"the image codec {name!r} is not installed: install the plugin that provides it "
                        "(`zoo components codec` lists the installed ones)") from None
    return component.build()


def picture(codec: ImageCodec | None, x: Tensor, y: Tensor | None = None) -> Tensor:
    """What a person sees of an input ``x``, or of an output or target ``y`` for it, in [-1, 1]:
    the codec's RGB rendering, or without a codec the tensor itself."""
    if codec is None:
        return x if y is None else y
    return codec.render(x.float(), None if y is None else y.float()).mul(2).sub(1)


def sample_grid(*columns: Tensor) -> Image.Image:
    """One row per sample, the columns side by side (the trainer's: input | output | target)."""
    rows = torch.cat([to_rgb(t.detach().cpu()) for t in columns], dim=3)  # side by side
    grid = torch.cat(list(rows), dim=1)  # stacked
    return Image.fromarray(grid.permute(1, 2, 0).numpy())


def _curve(name: str, steps: list[float], values: list[float]) -> str:
    """An inline SVG line chart of one metric over steps."""
    if not values:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    first, last = steps[0], steps[-1]
    width = (last - first) or 1.0
    points = " ".join(
        f"{MARGIN + (s - first) / width * (CURVE_WIDTH - 2 * MARGIN):.1f},"
        f"{CURVE_HEIGHT - MARGIN - (v - low) / span * (CURVE_HEIGHT - 2 * MARGIN):.1f}"
        for s, v in zip(steps, values)
    )
    label = html.escape(name)
    return (
        f'<figure><svg xmlns="http://www.w3.org/2000/svg" width="{CURVE_WIDTH}" height="{CURVE_HEIGHT}" '
        f'role="img" aria-label="{label}"><rect width="100%" height="100%" fill="#fff"/>'
        f'<polyline fill="none" stroke="#1f5fa8" stroke-width="1.5" points="{points}"/>'
        f'<text x="4" y="{MARGIN - 8}" font-size="12">{high:.4g}</text>'
        f'<text x="4" y="{CURVE_HEIGHT - MARGIN + 4}" font-size="12">{low:.4g}</text>'
        f'<text x="{MARGIN}" y="{CURVE_HEIGHT - 12}" font-size="12">step {first:g}</text>'
        f'<text x="{CURVE_WIDTH - MARGIN}" y="{CURVE_HEIGHT - 12}" font-size="12" text-anchor="end">step {last:g}</text>'
        f"</svg><figcaption>{label}</figcaption></figure>"
    )


def write_report(run_dir: Path, title: str, summary: dict[str, Any]) -> Path:
    """(Re)write ``run_dir/report.html`` from metrics.jsonl and the newest sample grids."""
    records = read_metrics(run_dir / "metrics.jsonl")
    keys = sorted({k for r in records for k, v in r.items() if isinstance(v, (int, float))} - {"step", "epoch"})
    curves = []
    for key in keys:
        points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
        curves.append(_curve(key, [p[0] for p in points], [p[1] for p in points]))
    grids = []
    for path in sorted((run_dir / "samples").glob("*.png"))[-3:]:
        data = base64.b64encode(path.read_bytes()).decode()
        grids.append(f'<figure><img alt="{path.stem}" src="data:image/png;base64,{data}"/>'
                     f"<figcaption>{html.escape(path.stem)}: input | output | target</figcaption></figure>")
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(json.dumps(v) if not isinstance(v, str) else v)}</td></tr>"
        for k, v in summary.items()
    )
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}figure{display:inline-block;margin:1em}"
        "th{text-align:left;padding-right:1em}img{image-rendering:pixelated;max-width:100%}</style>"
        f"</head><body><h1>{html.escape(title)}</h1><table>{rows}</table>"
        f"<h2>Losses</h2>{''.join(curves) or '<p>no metrics yet</p>'}"
        f"<h2>Samples</h2>{''.join(grids) or '<p>no samples yet</p>'}</body></html>\n"
    )
    path = run_dir / "report.html"
    write_text_atomic(path, page)
    return path
