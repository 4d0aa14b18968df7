"""Comparing runs: one row per run directory (or every run of a sweep), from what each run wrote.

A row is the canonical spec, the networks' parameter counts and the discriminator's receptive field
(built on the meta device, nothing allocated), the steps trained, the wall time from the run's start
to its translator, the median images/s of its logged windows, and the held-out L1, PSNR and SSIM of
the translator beside the run's two baselines (from its ``eval.json``, the trainer's evaluation:
the code ``zoo eval`` uses). Runs evaluated on different data, splits or directions are not ranked
together: each such group has its own best per column.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pix2pix_zoo.engine.finish import saved_evaluation
from pix2pix_zoo.engine.rundir import CONFIG, METRICS, read_metrics, run_config
from pix2pix_zoo.errors import SpecError, ZooError, first_line
from pix2pix_zoo.experiments.sweep import MANIFEST
from pix2pix_zoo.spec import describe
from pix2pix_zoo.translator_file import WEIGHTS_FILE, read_card

# Held-out figures and whether a larger value is better.
METRICS_COLUMNS = {"l1": False, "psnr": True, "ssim": True}
BASELINES = ("input unchanged", "mean training target")


@dataclass
class RunRow:
    """One run as ``zoo compare`` shows it."""

    run: str
    spec: str
    evaluated_on: str
    """What its held-out figures were measured on (data, options, direction, split, pairs); rows
    are ranked only against rows with the same."""
    generator_parameters: int | None = None
    discriminator_parameters: int | None = None
    receptive_field: int | None = None
    steps: int = 0
    wall_seconds: float | None = None
    images_per_second: float | None = None
    translator: dict[str, float] = field(default_factory=dict)
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    best: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_directories(paths: list[Path]) -> list[Path]:
    """The run directories ``paths`` name: a run directory itself, or a sweep folder's runs (in the
    order of its manifest, those that exist); a ZooError for anything else."""
    found: list[Path] = []
    for path in paths:
        if (path / MANIFEST).is_file():
            try:
                runs = json.loads((path / MANIFEST).read_text(encoding="utf-8"))["runs"]
                names = [run["name"] for run in runs]
            except (OSError, ValueError, KeyError, TypeError) as error:
                raise ZooError(f"cannot read {path / MANIFEST}: {first_line(error)}") from None
            found += [path / name for name in names if isinstance(name, str) and (path / name / CONFIG).is_file()]
        elif (path / CONFIG).is_file():
            found.append(path)
        else:
            raise ZooError(f"{path} is neither a run directory (no {CONFIG}) nor a sweep folder (no {MANIFEST})")
    if not found:
        raise ZooError("nothing to compare: the sweeps named have no runs yet")
    return found


def run_row(run_dir: Path) -> RunRow:
    """One run's row, from its config.json, metrics.jsonl, eval.json and translator."""
    saved = run_config(run_dir)
    config = saved["config"]
    evaluation = saved_evaluation(run_dir)
    translator = run_dir / "translator" / WEIGHTS_FILE
    card = read_card(translator) if translator.is_file() else None
    where = {"data": config.get("data"), "options": config.get("data_options"),
             "direction": card.direction if card else config.get("direction")}
    if evaluation:
        where |= {"split": evaluation.get("split"), "pairs": evaluation.get("pairs")}
    row = RunRow(str(run_dir), saved["canonical_spec"],
                 json.dumps(where, sort_keys=True, default=str) if evaluation else "not evaluated")
    if card is not None:
        try:
            facts = describe(row.spec, card.in_channels, card.out_channels)
        except SpecError:  # a plugin no longer installed: the figures that need no network remain
            facts = None
        if facts is not None:
            row.generator_parameters = facts["generator"]["parameters"]
            if facts["discriminator"] is not None:
                row.discriminator_parameters = facts["discriminator"]["parameters"]
                row.receptive_field = facts["discriminator"]["receptive_field"]
    records = read_metrics(run_dir / METRICS)
    row.steps = int(card.provenance.get("step", 0)) if card else (records[-1]["step"] if records else 0)
    speeds = [r["img_per_s"] for r in records if isinstance(r.get("img_per_s"), (int, float))]
    row.images_per_second = statistics.median(speeds) if speeds else None
    started = saved.get("started")
    if card is not None and isinstance(started, str):
        try:
            row.wall_seconds = translator.stat().st_mtime - datetime.fromisoformat(started).timestamp()
        except ValueError:
            row.wall_seconds = None
    if evaluation:
        row.translator = {k: v for k, v in (evaluation.get("translator") or {}).items() if k in METRICS_COLUMNS}
        row.baselines = {name: {k: v for k, v in evaluation[name].items() if k in METRICS_COLUMNS}
                         for name in BASELINES if isinstance(evaluation.get(name), dict)}
    return row


def compare_runs(paths: list[Path]) -> tuple[list[RunRow], list[str]]:
    """The rows of the runs ``paths`` name, the best of each group marked per column, and one line
    for each group beyond the first saying that it is ranked apart."""
    rows = [run_row(run_dir) for run_dir in run_directories(paths)]
    groups: dict[str, list[RunRow]] = {}
    for row in rows:
        groups.setdefault(row.evaluated_on, []).append(row)
    for key, members in groups.items():
        if key == "not evaluated" or len(members) < 2:
            continue
        for column, larger_is_better in METRICS_COLUMNS.items():
            values = [row.translator[column] for row in members if column in row.translator]
            if not values:
                continue
            best = max(values) if larger_is_better else min(values)
            for row in members:
                if row.translator.get(column) == best:
                    row.best.append(column)
    notes = []
    if len(groups) > 1:
        for key, members in list(groups.items())[1:]:
            names = ", ".join(Path(row.run).name for row in members)
            what = "were not evaluated" if key == "not evaluated" else f"were evaluated on other data or another split ({key})"
            notes.append(f"not ranked with the first runs: {names} {what}")
    return rows, notes
