"""What a run shows: a self-contained report.html (no JavaScript, no external files) with the run's
settings, its held-out figures as a table (one row per candidate: the translator and the
baselines), a chart per logged figure drawn by :mod:`pix2pix_zoo.charts`, and the newest sample
grids with their columns named and the step they were drawn at. The grids themselves are drawn by
:mod:`pix2pix_zoo.pictures`."""

from __future__ import annotations

import base64
import html
import json
import math
import re
from pathlib import Path
from typing import Any

from PIL import Image

from pix2pix_zoo.atomic import write_text_atomic
from pix2pix_zoo.charts import line_chart
from pix2pix_zoo.engine.rundir import read_metrics

# The losses of a GAN step (gan_step.py: "d", "g" and the generator's terms "g_NAME") swing from one
# logged window to the next by design: D and G push against each other, and each window is a few
# batches. Smoothing them as TensorBoard does by default (0.6), over the raw line drawn faint, shows
# the trend without hiding the swings. Under SMOOTH_FROM points there is no trend to show, and an
# average of so few would only lag behind them. The learning rate (a schedule) and the throughput
# are drawn raw.
GAN_SMOOTHING, SMOOTH_FROM = 0.6, 10
DESCRIPTIONS = {"d": "discriminator loss", "g": "generator loss (all terms)", "lr": "learning rate",
                "img_per_s": "images per second", "skipped_images": "unreadable images skipped"}
GRID_COLUMNS = ("input", "output", "target")  # as the trainer draws them (pictures.sample_grid)
MIN_COLUMN_PIXELS = 128  # small crops are shown enlarged (pixelated), so the column names fit above them
SAMPLES_SHOWN = 3
STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:80em}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em}"
    "th,td{text-align:left;padding:0.2em 1em 0.2em 0;vertical-align:top}"
    "table.figures td{text-align:right;font-variant-numeric:tabular-nums}"
    "table.figures th,table.figures td{border-bottom:1px solid #ddd;padding-left:1em}"
    "table.figures th+th{text-align:right}"
    "figure{display:inline-block;margin:0.5em 1em 1em 0;vertical-align:top}"
    "svg{max-width:100%;height:auto}"
    ".columns{display:grid;grid-template-columns:repeat(3,1fr);text-align:center;font-weight:bold}"
    "img{image-rendering:pixelated;display:block}"
)


def write_report(run_dir: Path, title: str, summary: dict[str, Any]) -> Path:
    """(Re)write ``run_dir/report.html`` from ``summary`` (the run's settings; its held-out figures
    as ``candidate: {metric: value}``), metrics.jsonl and the newest sample grids."""
    figures = {name: value for name, value in summary.items() if isinstance(value, dict)}
    settings = {name: value for name, value in summary.items() if not isinstance(value, dict)}
    sections = [f"<h1>{html.escape(title)}</h1>", _settings_table(settings)]
    if figures:
        sections += ["<h2>Held-out figures</h2>", _figures_table(figures)]
    charts, grids = _charts(read_metrics(run_dir / "metrics.jsonl")), _grids(run_dir / "samples")
    sections += ["<h2>Training curves</h2>", charts or "<p>no metrics yet</p>",
                 "<h2>Samples</h2>", grids or "<p>no samples yet</p>"]
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(sections) + "\n</body></html>\n"
    )
    path = run_dir / "report.html"
    write_text_atomic(path, page)
    return path


def _settings_table(settings: dict[str, Any]) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(name))}</th><td>{html.escape(_text(value))}</td></tr>"
                   for name, value in settings.items())
    return f"<table>{rows}</table>"


def _figures_table(figures: dict[str, dict[str, Any]]) -> str:
    """One row per candidate, one column per metric (each metric any candidate has, in order)."""
    metrics = list(dict.fromkeys(metric for values in figures.values() for metric in values))
    head = "".join(f"<th>{html.escape(str(metric))}</th>" for metric in metrics)
    rows = "".join(
        f"<tr><th>{html.escape(str(candidate))}</th>"
        + "".join(_figure_cell(values.get(metric)) for metric in metrics) + "</tr>"
        for candidate, values in figures.items()
    )
    return f"<table class='figures'><tr><th>candidate</th>{head}</tr>{rows}</table>"


def _figure_cell(value: Any) -> str:
    """Four significant digits shown, the full value on hover."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"<td>{html.escape(_text(value)) if value is not None else '&ndash;'}</td>"
    return f"<td title='{html.escape(repr(value))}'>{value:.4g}</td>"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _charts(records: list[dict[str, Any]]) -> str:
    """One chart per logged figure, over steps."""
    keys = sorted({k for r in records for k, v in r.items() if _is_number(v)} - {"step", "epoch"})
    charts = []
    for key in keys:
        points = [(r["step"], r[key]) for r in records if _is_number(r.get(key)) and _is_number(r.get("step"))]
        gan_loss = key in ("d", "g") or key.startswith(("d_", "g_"))
        smoothing = GAN_SMOOTHING if gan_loss and len(points) >= SMOOTH_FROM else 0.0
        description = DESCRIPTIONS.get(key) or (f"generator's {key[2:]} term" if key.startswith("g_") else "")
        chart_title = key + (f": {description}" if description else "")
        if smoothing:
            chart_title += f" (smoothed {smoothing:g}, raw faint)"
        charts.append(f"<figure>{line_chart({key: points}, title=chart_title, smoothing=smoothing)}</figure>")
    return "".join(charts)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _grids(folder: Path) -> str:
    """The newest sample grids, newest first: the column names above each, its step below."""
    shown = []
    for path in sorted(folder.glob("*.png"))[-SAMPLES_SHOWN:][::-1]:
        try:
            with Image.open(path) as image:
                width, height = image.size
        except OSError:  # a grid being written, or damaged: the next report shows it
            continue
        scale = max(1, -(-MIN_COLUMN_PIXELS * len(GRID_COLUMNS) // width))  # whole pixels, ceiling
        step = re.fullmatch(r"step-0*(\d+)", path.stem)
        caption = f"step {step.group(1)}" if step else path.stem
        data = base64.b64encode(path.read_bytes()).decode()
        header = "".join(f"<span>{name}</span>" for name in GRID_COLUMNS)
        shown.append(
            f"<figure><div class='columns'>{header}</div>"
            f"<img alt='{html.escape(' | '.join(GRID_COLUMNS))} at {html.escape(caption)}' "
            f"width='{width * scale}' height='{height * scale}' src='data:image/png;base64,{data}'/>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    return "".join(shown)
