"""The comparison page (``zoo compare ... --html FILE``): one self-contained HTML file in the layout
of the paper's figures, for fixed held-out inputs a row each with the columns input | each row's
output | target, labelled by spec; then the table; then the loss curves of every run overlaid on
shared axes, one chart per loss. No JavaScript and no external file: the pictures are inline PNGs
and the charts inline SVG (:mod:`pix2pix_zoo.charts`).

The inputs are the first ``samples`` pairs of the split the rows were evaluated on: ``--data``'s, or
else the first evaluated run's held-out split, prepared as its trainer prepared them. A translator
that maps another direction or other channels than those pairs is left out of the figure, with a
note.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import torch
from torch import Tensor

from pix2pix_zoo.atomic import write_text_atomic
from pix2pix_zoo.engine.rundir import METRICS, read_metrics
from pix2pix_zoo.experiments.compare import EvaluationSetting, RunRow, comparison_table, row_labels, run_held_out
from pix2pix_zoo.pictures import open_codec, picture, sample_grid

# What metrics.jsonl holds besides the losses.
NOT_LOSSES = {"step", "epoch", "lr", "img_per_s"}
STYLE = (
    "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
    "th,td{padding:.3em .6em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}"
    "table.figure{table-layout:fixed}"
    "table.figure td,table.figure th{text-align:center;border:none;font-size:.8em;width:160px;"
    "overflow-wrap:anywhere;vertical-align:bottom}"
    "table.figure img{width:160px;image-rendering:pixelated}"
    "figure{display:inline-block;margin:1em}.note{color:#8a4b00}"
)


def write_compare_page(path: Path, rows: list[RunRow], notes: list[str], setting: EvaluationSetting,
                       samples: int) -> list[str]:
    """Write the page to ``path`` (atomically); the notes it adds (rows left out of the figure)."""
    figure, figure_notes = _figure(rows, setting, samples)
    header, table = comparison_table(rows, ("<strong>", "</strong>"))
    head = "".join(f"<th>{html.escape(column)}</th>" for column in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{_escape_keeping_strong(cell)}</td>" for cell in cells) + "</tr>" for cells in table
    )
    compared = f"{len(rows)} translator" + ("" if len(rows) == 1 else "s")
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>zoo compare</title>"
        f"<style>{STYLE}</style></head><body><h1>Comparison of {compared}</h1>"
        + "".join(f"<p class='note'>{html.escape(note)}</p>" for note in [*notes, *figure_notes])
        + f"<h2>Held-out samples</h2>{figure}"
        + f"<h2>Figures</h2><p>The best of each group in bold.</p><table class='figures'><thead><tr>{head}</tr></thead>"
        + f"<tbody>{body}</tbody></table>"
        + f"<h2>Losses</h2>{_loss_charts(rows)}</body></html>\n"
    )
    write_text_atomic(path, page)
    return figure_notes


def _escape_keeping_strong(cell: str) -> str:
    strong = cell.startswith("<strong>") and cell.endswith("</strong>")
    text = cell[len("<strong>"):-len("</strong>")] if strong else cell
    return f"<strong>{html.escape(text)}</strong>" if strong else html.escape(text)


def _figure(rows: list[RunRow], setting: EvaluationSetting, samples: int) -> tuple[str, list[str]]:
    from pix2pix_zoo.data import open_dataset
    from pix2pix_zoo.evaluation import prepared_batches

    source = _figure_source(rows, setting)
    if source is None:
        return "<p>No row was evaluated: there are no held-out pairs to show.</p>", []
    data, split, options, size = source
    translator = setting.translator(rows[0].run)  # its card says how the pairs are oriented
    first = translator.card
    torch.manual_seed(0)
    inputs, targets = [], []
    pairs = open_dataset(data, split, **options)
    for x, y, _ in prepared_batches(pairs, size, first.direction, translator.device):
        inputs += list(x.split(1))[: samples - len(inputs)]
        targets += list(y.split(1))[: samples - len(targets)]
        if len(inputs) == samples:
            break
    shown, notes = [], []  # (label, its outputs)
    for label, row in zip(row_labels(rows), rows):
        if translator is None:  # one at a time: a sweep's translators are never all in memory together
            translator = setting.translator(row.run)
        card = translator.card
        if (card.direction, card.in_channels, card.out_channels) != (first.direction, first.in_channels, first.out_channels):
            notes.append(f"{label} is left out of the samples: it maps {card.direction} "
                         f"{card.in_channels} -> {card.out_channels} channels, not as the first row")
        else:
            shown.append((label, [translator.translate(x) for x in inputs]))
        translator = None
    codec = open_codec(first.codec)
    cells = "".join(f"<th>{html.escape(label)}</th>" for label, _ in shown)
    table_rows = []
    for index, (x, y) in enumerate(zip(inputs, targets)):
        pictures = [picture(codec, x), *(picture(codec, x, outputs[index]) for _, outputs in shown),
                    picture(codec, x, y)]
        table_rows.append("<tr>" + "".join(f"<td>{_png(image)}</td>" for image in pictures) + "</tr>")
    where = f"{html.escape(data)}, {html.escape(split)} split" + (f", {size} x {size}" if size else "")
    return (
        f"<p>The first {len(inputs)} pairs of {where}, {html.escape(first.direction)}.</p>"
        f"<table class='figure'><thead><tr><th>input</th>{cells}<th>target</th></tr></thead>"
        f"<tbody>{''.join(table_rows)}</tbody></table>"
    ), notes


def _figure_source(rows: list[RunRow], setting: EvaluationSetting) -> tuple[str, str, dict, int | None] | None:
    """(data, split, options, size) of the pairs the figure shows."""
    if setting.data is not None:
        return setting.data, setting.split, setting.data_options, setting.size
    return next((own for row in rows if row.kind == "run" and (own := run_held_out(Path(row.run)))), None)


def _png(image: Tensor) -> str:
    buffer = io.BytesIO()
    sample_grid(image).save(buffer, format="PNG")
    return f"<img alt='' src='data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}'/>"


def _loss_charts(rows: list[RunRow]) -> str:
    from pix2pix_zoo.charts import line_chart

    curves: dict[str, dict[str, list[tuple[float, float]]]] = {}
    labels = row_labels(rows)
    for row, label in zip(rows, labels):
        if row.kind != "run":
            continue
        for record in read_metrics(Path(row.run) / METRICS):
            for key, value in record.items():
                if key not in NOT_LOSSES and isinstance(value, (int, float)) and isinstance(record.get("step"), int):
                    curves.setdefault(key, {}).setdefault(label, []).append((record["step"], value))
    if not curves:
        return "<p>No run logged losses.</p>"
    return "".join(
        f"<figure>{line_chart(series, title=key, ylabel=key, smoothing=0.6, palette=labels)}</figure>"
        for key, series in sorted(curves.items())
    )
