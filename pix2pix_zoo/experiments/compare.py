"""Comparing runs and translators: one row per run directory (or every run of a sweep), from what
each run wrote, or per translator (a catalog name or a weights file), evaluated on a dataset split.

A row is the canonical spec, the networks' parameter counts and the discriminator's receptive field
(built on the meta device, nothing allocated), the steps trained, the wall time from the run's start
to its translator, the median images/s of its logged windows, and the held-out L1, PSNR and SSIM of
the translator beside the run's two baselines (from its ``eval.json``, the trainer's evaluation:
the code ``zoo eval`` uses). Runs evaluated on different data, splits or directions are not ranked
together: each such group has its own best per column.

With a dataset (``zoo compare ... --data D``) every row, runs included, is evaluated afresh on that
split by :func:`pix2pix_zoo.evaluation.evaluate`, so that all rank together; translators can only be
compared so. LPIPS and FID/KID need their weights files: given those, a run without ``--data`` has
its translator evaluated again on its own held-out split (as its trainer did) for those columns.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pix2pix_zoo.engine.finish import saved_evaluation
from pix2pix_zoo.engine.rundir import CONFIG, METRICS, TRANSLATOR, read_metrics, run_config
from pix2pix_zoo.errors import SpecError, ZooError, first_line
from pix2pix_zoo.experiments.sweep import MANIFEST
from pix2pix_zoo.spec import describe
from pix2pix_zoo.translator_file import WEIGHTS_FILE, Card, read_card

if TYPE_CHECKING:
    from pix2pix_zoo.translator import Translator

# Held-out figures and whether a larger value is better.
METRICS_COLUMNS = {"l1": False, "psnr": True, "ssim": True, "lpips": False, "fid": False, "kid": False}
BASELINES = ("input unchanged", "mean training target")
NOT_EVALUATED = "not evaluated"


@dataclass
class RunRow:
    """One run or translator as ``zoo compare`` shows it."""

    run: str
    """The run directory, or the translator as it was named."""
    spec: str
    evaluated_on: str
    """What its held-out figures were measured on (data, options, direction, split, pairs); rows
    are ranked only against rows with the same."""
    kind: str = "run"
    """``run`` (a run directory) or ``translator`` (a catalog name or weights file)."""
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


@dataclass
class Compared:
    """One thing named on the command line: a run directory, or a translator reference."""

    name: str
    run_dir: Path | None = None


@dataclass
class EvaluationSetting:
    """How rows are evaluated afresh: ``--data`` and its split, or each run's own held-out split
    (``data`` None) for the LPIPS and FID/KID columns only."""

    data: str | None = None
    split: str = "test"
    data_options: dict[str, Any] = field(default_factory=dict)
    size: int | None = None
    device: str = "auto"
    lpips_weights: Path | None = None
    inception_weights: Path | None = None
    backend: str = "auto"
    """As :meth:`Translator.from_pretrained` takes it; each row runs in its card's mode."""

    @property
    def extra_metrics(self) -> bool:
        return self.lpips_weights is not None or self.inception_weights is not None

    def translator(self, name: str | Path) -> Translator:
        """The translator ``name`` names, loaded to be evaluated as this setting says (seed 0)."""
        from pix2pix_zoo.translator import Translator

        return Translator.from_pretrained(name, device=self.device, seed=0, backend=self.backend)


def named_items(names: list[str]) -> list[Compared]:
    """What ``names`` stand for: each run directory, each run of a sweep folder (in the order of its
    manifest, those that exist), and every other name as a translator (checked when it is loaded)."""
    found: list[Compared] = []
    for name in names:
        path = Path(name).expanduser()
        if (path / MANIFEST).is_file():
            try:
                runs = json.loads((path / MANIFEST).read_text(encoding="utf-8"))["runs"]
                run_names = [run["name"] for run in runs]
            except (OSError, ValueError, KeyError, TypeError) as error:
                raise ZooError(f"cannot read {path / MANIFEST}: {first_line(error)}") from None
            found += [Compared(str(path / run), path / run) for run in run_names
                      if isinstance(run, str) and (path / run / CONFIG).is_file()]
        elif (path / CONFIG).is_file():
            found.append(Compared(name, path))
        elif path.is_dir() and not (path / WEIGHTS_FILE).is_file():
            raise ZooError(f"{name} is neither a run directory (no {CONFIG}), a sweep folder (no {MANIFEST}) "
                           f"nor a translator's folder (no {WEIGHTS_FILE})")
        else:
            found.append(Compared(name))
    if not found:
        raise ZooError("nothing to compare: the sweeps named have no runs yet")
    return found


def _network_facts(row: RunRow, card: Card) -> None:
    try:
        facts = describe(row.spec, card.in_channels, card.out_channels)
    except SpecError:  # a plugin no longer installed: the figures that need no network remain
        return
    row.generator_parameters = facts["generator"]["parameters"]
    if facts["discriminator"] is not None:
        row.discriminator_parameters = facts["discriminator"]["parameters"]
        row.receptive_field = facts["discriminator"]["receptive_field"]


def run_row(run_dir: Path) -> RunRow:
    """One run's row, from its config.json, metrics.jsonl, eval.json and translator."""
    saved = run_config(run_dir)
    config = saved["config"]
    evaluation = saved_evaluation(run_dir)
    translator = run_dir / TRANSLATOR / WEIGHTS_FILE
    card = read_card(translator) if translator.is_file() else None
    where = {"data": config.get("data"), "options": config.get("data_options"),
             "direction": card.direction if card else config.get("direction")}
    if evaluation:
        where |= {"split": evaluation.get("split"), "pairs": evaluation.get("pairs")}
    row = RunRow(str(run_dir), saved["canonical_spec"],
                 json.dumps(where, sort_keys=True, default=str) if evaluation else NOT_EVALUATED)
    if card is not None:
        _network_facts(row, card)
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


def translator_row(name: str, card: Card) -> RunRow:
    """A translator's row before evaluation: its spec, networks and the steps it was trained for."""
    row = RunRow(name, card.spec, NOT_EVALUATED, kind="translator")
    _network_facts(row, card)
    step = card.provenance.get("step")
    row.steps = step if isinstance(step, int) else 0
    return row


def run_held_out(run_dir: Path) -> tuple[str, str, dict[str, Any], int | None] | None:
    """(data, split, data options, size) of the pairs a run's trainer evaluated it on, prepared as
    it prepared them; None where it was not evaluated."""
    split = (saved_evaluation(run_dir) or {}).get("split")
    if not isinstance(split, str):
        return None
    config = run_config(run_dir)["config"]
    return config["data"], split, config.get("data_options") or {}, config.get("crop_size")


def evaluate_row(row: RunRow, translator: Translator, run_dir: Path | None, setting: EvaluationSetting) -> list[str]:
    """Evaluate the row's translator afresh: on ``setting.data`` (every figure, the row ranked with
    the others evaluated there), or on its run's (``run_dir``) own held-out split for LPIPS and
    FID/KID only."""
    from pix2pix_zoo.evaluation import evaluate

    if setting.data is not None:
        data, split, options, size = setting.data, setting.split, setting.data_options, setting.size
    else:
        own = run_held_out(run_dir)
        if own is None:
            return []  # not evaluated by its trainer: no held-out split to add figures on
        data, split, options, size = own
    evaluation = evaluate(translator, data, split, data_options=options, size=size,
                          lpips_weights=setting.lpips_weights, inception_weights=setting.inception_weights)
    figures = {k: v for k, v in evaluation.means["translator"].items() if k in METRICS_COLUMNS}
    if setting.data is None:
        row.translator |= {k: v for k, v in figures.items() if k not in ("l1", "psnr", "ssim")}
        return evaluation.notes
    row.translator = figures
    row.baselines = {}  # the baselines of a run's own evaluation need its training data, not --data's
    row.evaluated_on = json.dumps({"data": data, "options": options, "direction": translator.card.direction,
                                   "split": split, "pairs": evaluation.pairs, "size": size},
                                  sort_keys=True, default=str)
    return evaluation.notes


def compare(names: list[str], setting: EvaluationSetting | None = None) -> tuple[list[RunRow], list[str]]:
    """The rows of what ``names`` name, evaluated as ``setting`` says, the best of each group marked
    per column, and one line for each group beyond the first saying that it is ranked apart."""
    setting = setting or EvaluationSetting()
    items = named_items(names)
    rows: list[RunRow] = []
    notes: list[str] = []
    for item in items:
        translator = None
        if item.run_dir is not None:
            row = run_row(item.run_dir)
            has_translator = (item.run_dir / TRANSLATOR / WEIGHTS_FILE).is_file()
            if setting.data is not None or (setting.extra_metrics and has_translator):
                translator = setting.translator(item.run_dir)
        elif setting.data is None:
            raise ZooError(f"{item.name} is neither a run directory (no {CONFIG}) nor a sweep folder (no {MANIFEST}); "
                           "translators (catalog names, weights files) are compared on --data DATASET")
        else:  # loaded once, for its card and its evaluation (an ONNX file's card is inside the whole file)
            translator = setting.translator(item.name)
            row = translator_row(item.name, translator.card)
        if translator is not None:
            notes += [note for note in evaluate_row(row, translator, item.run_dir, setting) if note not in notes]
        rows.append(row)
    return rows, notes + rank(rows)


def rank(rows: list[RunRow]) -> list[str]:
    """Mark the best of each group (rows evaluated on the same) per column; a note for each group
    beyond the first."""
    groups: dict[str, list[RunRow]] = {}
    for row in rows:
        groups.setdefault(row.evaluated_on, []).append(row)
    for key, members in groups.items():
        if key == NOT_EVALUATED or len(members) < 2:
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
            what = "were not evaluated" if key == NOT_EVALUATED else f"were evaluated on other data or another split ({key})"
            notes.append(f"not ranked with the first runs: {names} {what}")
    return notes


def row_labels(rows: list[RunRow]) -> list[str]:
    """What names each row in a figure or a legend: its spec, with the run's folder or the
    translator's name where two rows share a spec."""
    specs = [row.spec for row in rows]
    return [row.spec if specs.count(row.spec) == 1 else f"{row.spec} ({Path(row.run).name})" for row in rows]


# The table's figure columns: heading, format.
FIGURE_COLUMNS = {"l1": ("L1", "{:.4f}"), "psnr": ("PSNR (dB)", "{:.2f}"), "ssim": ("SSIM", "{:.4f}"),
                  "lpips": ("LPIPS", "{:.4f}"), "fid": ("FID", "{:.2f}"), "kid": ("KID", "{:.5f}")}


def comparison_table(rows: list[RunRow], mark: tuple[str, str] = ("**", "**")) -> tuple[list[str], list[list[str]]]:
    """Every column of the rows as text (the Markdown table and the HTML page): the header and one
    list of cells per row, the best of each group wrapped in ``mark``. LPIPS, FID and KID appear
    when a row has them."""
    shown = [key for key in FIGURE_COLUMNS if key in ("l1", "psnr", "ssim") or any(key in r.translator for r in rows)]
    header = ["spec", "G params", "D params", "RF", "steps", "time", "img/s",
              *(FIGURE_COLUMNS[key][0] for key in shown), "L1 of the mean target"]

    def figure(row: RunRow, column: str) -> str:
        value = row.translator.get(column)
        if value is None:
            return ""
        text = FIGURE_COLUMNS[column][1].format(value)
        return f"{mark[0]}{text}{mark[1]}" if column in row.best else text

    def count(value: int | None) -> str:
        if value is None:
            return ""
        return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.1f}k" if value >= 1e3 else str(value)

    table = []
    for row in rows:
        mean_target = row.baselines.get("mean training target", {}).get("l1")
        table.append([
            row.spec, count(row.generator_parameters), count(row.discriminator_parameters),
            "" if row.receptive_field is None else str(row.receptive_field), str(row.steps),
            "" if row.wall_seconds is None else f"{row.wall_seconds:.0f} s",
            "" if row.images_per_second is None else f"{row.images_per_second:.1f}",
            *(figure(row, key) for key in shown),
            "" if mean_target is None else f"{mean_target:.4f}",
        ])
    return header, table
