"""What a run shows: a self-contained report.html with loss curves as inline SVG and the newest
sample grids (no JavaScript, no external files). The grids themselves are drawn by
:mod:`pix2pix_zoo.pictures`."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from pix2pix_zoo.atomic import write_text_atomic
from pix2pix_zoo.engine.rundir import read_metrics

CURVE_WIDTH, CURVE_HEIGHT, MARGIN = 640, 220, 48


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
