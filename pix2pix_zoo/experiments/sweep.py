"""Sweeps: a grid of specs and settings as ordinary run directories, resumable and shardable.

A grid is a spec with brace alternatives, expanded as a product the way a shell expands braces
(the first group varies slowest): ``"{unet,encdec}+patch70+{l1,l1cgan}"`` is four runs (the
discriminator goes with the objectives that train against one: ``unet+l1``, ``unet+patch70+l1cgan``,
...), and alternatives may sit inside options (``"unet_256(ngf={32,64})+patch70+l1cgan"``). A sweep file
(TOML) lists runs instead, each with its own settings over shared defaults::

    name = "lr-study"                 # optional: the sweep's folder under --runs
    [defaults]                        # any zoo train setting (the config.json keys)
    data = "synthfacades"
    epochs = 5
    [[run]]
    spec = "unet_128+patch70+l1cgan"
    lr = 0.0001
    [[run]]
    spec = "unet_128+patch70+l1cgan"
    name = "faster"                   # optional: the run's folder (default: from its spec)
    lr = 0.0004

Every run is an ordinary run directory, ``<runs>/<sweep>/<run>/``, beside a ``sweep.json``
manifest of the runs and their settings. Running the same sweep again skips finished runs (those
with a translator) and resumes interrupted ones exactly, as ``zoo train --resume`` does; settings
that change no result (``--max-steps``, ``--device``, ``--workers``) may differ, anything else is
refused, naming the run. Every run is checked (spec, settings, data) before anything is written.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from pix2pix_zoo.atomic import write_json_atomic
from pix2pix_zoo.data import open_dataset
from pix2pix_zoo.devices import pick_device
from pix2pix_zoo.engine.config import ConfigFileError, TrainConfig, with_added_settings
from pix2pix_zoo.engine.finish import saved_evaluation
from pix2pix_zoo.engine.rundir import CONFIG, TRANSLATOR, check_run_target, run_config
from pix2pix_zoo.engine.setup import check_crop_size, run_name
from pix2pix_zoo.errors import SpecError, ZooError, first_line
from pix2pix_zoo.perceptual import load_lpips
from pix2pix_zoo.spec import canonical, parse, resolve
from pix2pix_zoo.translator_file import WEIGHTS_FILE, read_card

MANIFEST = "sweep.json"
MAX_RUNS = 10_000  # a grid that expands past this is a typo, not an experiment
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+.=-]{0,199}")
# What a resumed run may change (see zoo train --resume): they change no result.
RESUMABLE_SETTINGS = ("max_steps", "device", "workers")
Status = Literal["finished", "interrupted", "new"]


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: its folder name under the sweep and its complete settings."""

    name: str
    config: TrainConfig

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "spec": self.config.spec, "config": self.config.to_dict()}


@dataclass(frozen=True)
class Sweep:
    """A sweep's name (its folder under ``--runs``) and its runs, in order."""

    name: str
    runs: tuple[SweepRun, ...]
    source: str  # the grid or the file it came from, for the manifest

    def folder(self, runs_dir: Path) -> Path:
        return runs_dir / self.name

    def manifest(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "runs": [run.record() for run in self.runs]}


# -- grids -------------------------------------------------------------------------------------------
def expand_braces(text: str) -> list[str]:
    """Every string ``text`` stands for: each ``{a,b,...}`` group replaced by each alternative in
    turn, as a product (the first group varying slowest); groups may nest. A SpecError for an
    unbalanced brace or a grid past ``MAX_RUNS`` strings."""
    start = text.find("{")
    close = text.find("}")
    if start < 0:
        if close >= 0:
            raise SpecError(f"grid {text!r} has a '}}' with no '{{' before it")
        return [text]
    depth, end, cuts = 0, -1, [start]
    for position in range(start, len(text)):
        if text[position] == "{":
            depth += 1
        elif text[position] == "}":
            depth -= 1
            if depth == 0:
                end = position
                break
        elif text[position] == "," and depth == 1:
            cuts.append(position)
    if end < 0:
        raise SpecError(f"grid {text!r} has a '{{' that is never closed")
    alternatives = [text[a + 1 : b] for a, b in zip(cuts, [*cuts[1:], end])]
    rests = expand_braces(text[end + 1 :])
    expanded = []
    for alternative in alternatives:
        for middle in expand_braces(alternative):
            expanded += [text[:start] + middle + rest for rest in rests]
            if len(expanded) > MAX_RUNS:
                raise SpecError(f"grid {text!r} expands to more than {MAX_RUNS} runs")
    return expanded


def grid_sweep(grid: str, base: TrainConfig, name: str | None = None) -> Sweep:
    """The runs of a brace grid, each with ``base``'s settings and its own canonical spec; a SpecError
    naming the alternative that does not resolve, or two that are one run."""
    runs = []
    for spec in expand_braces(grid):
        try:
            written = canonical(without_unused_discriminator(spec))
        except SpecError as error:
            raise SpecError(f"in grid {grid!r}: {first_line(error)}") from None
        runs.append(SweepRun(run_name(written, base.data), dataclasses.replace(base, spec=written)))
    return Sweep(_checked_name(name, "--name") if name is not None else default_sweep_name(grid), _distinct(runs), grid)


def without_unused_discriminator(spec: str) -> str:
    """``spec`` without its discriminator where its objective trains against none (``unet+patch70+l1``
    is ``unet+l1``), else as it is. In a grid the discriminator is for the objectives that use one,
    as in the paper's objective ablation (``unet_256+patch70+{l1,gan,cgan,l1gan,l1cgan}``); a spec
    given alone keeps refusing the unused part."""
    parts = parse(spec)
    if len(parts) != 3:
        return spec
    generator, objective = (
        part.name + (f"({','.join(f'{k}={v}' for k, v in part.options)})" if part.options else "")
        for part in (parts[0], parts[2])
    )
    try:
        return canonical(f"{generator}+{objective}")
    except SpecError:  # the objective needs the discriminator, or the spec has other faults to report whole
        return spec


def file_sweep(path: Path, base: TrainConfig, name: str | None = None,
               overrides: Mapping[str, Any] | None = None) -> Sweep:
    """The runs of a sweep file (see the module's docstring) over ``base``'s settings; ``overrides``
    (the options typed on the command line) over the file's, for every run."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ZooError(f"cannot read the sweep file {path}: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise SpecError(f"{path} is not a valid sweep file: {first_line(error)}") from None
    return text_sweep(text, str(path), path.stem, base, name, overrides)


def read_sweep_text(text: str, where: str) -> dict[str, Any]:
    """A sweep file's TOML, its fields checked (``name``, ``summary``, ``[defaults]``, ``[[run]]``)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"{where} is not a valid sweep file: {first_line(error)}") from None
    unknown = sorted(set(data) - {"name", "summary", "defaults", "run"})
    if unknown:
        raise SpecError(f"{where}: {unknown[0]!r} is not a sweep file field (name, summary, [defaults], [[run]])")
    entries = data.get("run", [])
    if not isinstance(entries, list) or not entries or not all(isinstance(e, Mapping) for e in entries):
        raise SpecError(f"{where}: give the runs as [[run]] tables, each with a spec")
    if not isinstance(data.get("defaults", {}), Mapping):
        raise SpecError(f"{where}: [defaults] must be a table of zoo train settings")
    if not isinstance(data.get("summary", ""), str):
        raise SpecError(f"{where}: summary must be a string")
    return data


def text_sweep(text: str, where: str, default_name: str, base: TrainConfig, name: str | None = None,
               overrides: Mapping[str, Any] | None = None) -> Sweep:
    """The runs of a sweep file's text; ``where`` names it in errors and in the manifest;
    ``default_name`` is the sweep's name unless ``name`` or the file gives one."""
    data = read_sweep_text(text, where)
    typed = dict(overrides or {})
    shared = _with_settings(base, {**data.get("defaults", {}), **typed}, f"[defaults] of {where}")
    runs = []
    for number, entry in enumerate(data["run"], 1):
        run_where = f"run {number} of {where}"
        settings = dict(entry)
        run_folder = settings.pop("name", None)
        if "spec" not in settings:
            raise SpecError(f"{run_where} has no spec")
        config = _with_settings(shared, {**settings, **typed}, run_where)
        try:
            config = dataclasses.replace(config, spec=canonical(config.spec))
        except SpecError as error:
            raise SpecError(f"{run_where}: {first_line(error)}") from None
        if run_folder is not None and not (isinstance(run_folder, str) and NAME.fullmatch(run_folder)):
            raise SpecError(f"{run_where}: name must be a folder name (letters, digits, _+.=-), not {run_folder!r}")
        runs.append(SweepRun(run_folder or run_name(config.spec, config.data), config))
    if name is not None:
        return Sweep(_checked_name(name, "--name"), _distinct(runs), where)
    return Sweep(_checked_name(data.get("name") or default_name, f"{where}: name"), _distinct(runs), where)


def _with_settings(config: TrainConfig, settings: Mapping[str, Any], where: str) -> TrainConfig:
    """``config`` with ``settings`` (config.json keys) over it, every key and value checked."""
    try:
        return TrainConfig.from_dict(config.to_dict() | dict(settings), where)
    except ConfigFileError as error:
        raise SpecError(str(error)) from None


def _distinct(runs: list[SweepRun]) -> tuple[SweepRun, ...]:
    seen: dict[str, SweepRun] = {}
    for run in runs:
        if run.name in seen:
            raise SpecError(
                f"two runs of the sweep are both {run.name!r} ({seen[run.name].config.spec} and {run.config.spec}): "
                "alternatives that canonicalise to one spec, or the same name twice"
            )
        seen[run.name] = run
    return tuple(runs)


def default_sweep_name(grid: str) -> str:
    """A folder name for a grid: its characters that are safe in a file name."""
    return _checked_name(re.sub(r"[^A-Za-z0-9_+.=-]+", "_", grid).strip("_")[:200], "--name")


def _checked_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise SpecError(f"{what} must be a folder name (letters, digits, _+.=-), not {name!r}")
    return name


# -- shards ------------------------------------------------------------------------------------------
def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` -> (K, N), the K-th of N shares (1-based), for a scheduler's array jobs."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise SpecError(f"--shard must be K/N with 1 <= K <= N (e.g. 2/4), not {text!r}")
    return int(match.group(1)), int(match.group(2))


def shard_of(runs: Iterable[SweepRun], shard: tuple[int, int] | None) -> list[SweepRun]:
    """The runs of one share: every N-th run from the K-th, so shares stay even as runs finish."""
    runs = list(runs)
    if shard is None:
        return runs
    k, n = shard
    return runs[k - 1 :: n]


# -- checking and running ----------------------------------------------------------------------------
def check_sweep(sweep: Sweep, runs_dir: Path, devices: list[str] | None = None) -> None:
    """Check every run before anything is written: the devices it will run on, its settings, its
    spec against the crop size, its data (each dataset opened once), its LPIPS weights (each file read
    once), its folder, and a manifest already there (the same sweep or none). A ZooError naming the
    run otherwise."""
    for device in devices or sorted({run.config.device for run in sweep.runs}):
        pick_device(device)
    folder = sweep.folder(runs_dir)
    if runs_dir.exists() and not runs_dir.is_dir():
        raise SpecError(f"--runs {runs_dir} is a file, not a folder of run directories")
    check_run_target(folder)
    opened: set[str] = set()
    weights_read: set[str] = set()
    for run in sweep.runs:
        try:
            run.config.validate()
            spec = resolve(run.config.spec)
            with torch.device("meta"):
                multiple = spec.build_generator(3, 3).size_multiple
            check_crop_size(run.config, spec, multiple)
            data_key = json.dumps([run.config.data, run.config.data_options], sort_keys=True, default=str)
            if data_key not in opened:
                open_dataset(run.config.data, "train", **run.config.data_options)
                opened.add(data_key)
            if run.config.lpips_weights is not None and run.config.lpips_weights not in weights_read:
                load_lpips(Path(run.config.lpips_weights), torch.device("cpu"))
                weights_read.add(run.config.lpips_weights)
            check_run_target(folder / run.name)
            run_status(run, folder / run.name)
        except ZooError as error:
            raise ZooError(f"run {run.name!r} of sweep {sweep.name!r}: {first_line(error)}") from None
    manifest = folder / MANIFEST
    if manifest.exists():
        try:
            existing = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ZooError(f"cannot read {manifest}: {first_line(error)}") from None
        if _comparable(existing) != _comparable(sweep.manifest()):
            raise ZooError(
                f"{folder} holds another sweep (its {MANIFEST} lists other runs or settings); "
                "choose another --name or --runs"
            )


def _comparable(manifest: Any) -> Any:
    """A manifest without the settings that change no result."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("runs"), list):
        return manifest
    runs = [{**run, "config": _result_settings(run["config"])}
            if isinstance(run, dict) and isinstance(run.get("config"), dict) else run for run in manifest["runs"]]
    return {"name": manifest.get("name"), "runs": runs}


def _result_settings(config: dict[str, Any]) -> dict[str, Any]:
    """Saved settings (with those added since, see ``with_added_settings``) less those that change no result."""
    return {k: v for k, v in with_added_settings(config).items() if k not in RESUMABLE_SETTINGS}


def run_status(run: SweepRun, run_dir: Path) -> Status:
    """``finished`` (it has its translator, made at the sweep's ``max_steps``), ``interrupted`` (started
    with the same settings: to be resumed, or extended to another ``max_steps``) or ``new``; a
    ZooError where the folder holds a run of other settings."""
    if not run_dir.exists():
        return "new"
    try:
        saved = run_config(run_dir)
    except ZooError as error:
        raise ZooError(f"{run_dir} cannot be resumed: {first_line(error)}") from None
    theirs, ours = _result_settings(saved["config"]), _result_settings(run.config.to_dict())
    if theirs != ours:
        differing = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
        raise ZooError(
            f"{run_dir} was started with other settings (its {CONFIG} differs in {', '.join(differing)}); "
            "delete it or choose another --name for the sweep"
        )
    translator = run_dir / TRANSLATOR / WEIGHTS_FILE
    if not translator.is_file():
        return "interrupted"
    stopped_at = saved["config"].get("max_steps")  # what the run was started with (a resume keeps it)
    if stopped_at is None:
        return "finished"  # its whole schedule ran: no --max-steps extends it
    step = read_card(translator).provenance.get("step")
    if not isinstance(step, int) or isinstance(step, bool):
        raise ZooError(f"{translator} does not say the step it was made at: delete {run_dir} to train it again")
    if run.config.max_steps is None:  # a resumed run keeps its saved --max-steps unless given one
        raise ZooError(f"{run_dir} was stopped by --max-steps at step {step}; give --max-steps to extend it, "
                       "or delete it")
    reached = step >= run.config.max_steps
    return "finished" if reached else "interrupted"  # to be extended to the sweep's --max-steps


def write_manifest(sweep: Sweep, runs_dir: Path) -> Path:
    """``<runs>/<sweep>/sweep.json``: the sweep's runs and settings (the same content from every
    shard, written atomically, so array jobs may all write it)."""
    folder = sweep.folder(runs_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MANIFEST
    write_json_atomic(path, sweep.manifest())
    return path


@dataclass
class RunOutcome:
    """What became of one run: ``skipped`` (finished before), ``trained``, ``resumed`` or ``failed``."""

    name: str
    spec: str
    outcome: str
    evaluation: dict[str, Any] | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def run_one(run: SweepRun, run_dir: Path, *, device: str | None = None, progress: bool = True,
            echo: Callable[[str], None] | None = None) -> RunOutcome:
    """Train, resume or skip one run of a sweep (on ``device`` if given); a ZooError of the run is
    its outcome, not the sweep's end."""
    from pix2pix_zoo.engine.trainer import Trainer

    try:
        status = run_status(run, run_dir)
        if status == "finished":
            return RunOutcome(run.name, run.config.spec, "skipped", saved_evaluation(run_dir))
        config = dataclasses.replace(run.config, device=device) if device else run.config
        options = {"progress": progress} | ({"echo": echo} if echo else {})
        if status == "interrupted":
            trainer = Trainer(config, run_dir, resume=True, max_steps=config.max_steps, workers=config.workers,
                              **options)
        else:
            trainer = Trainer(config, run_dir, **options)
        result = trainer.fit()
        return RunOutcome(run.name, run.config.spec, "resumed" if status == "interrupted" else "trained",
                          result.evaluation)
    except ZooError as error:
        return RunOutcome(run.name, run.config.spec, "failed", error=first_line(error))


def run_sweep(runs: list[SweepRun], folder: Path, *, devices: list[str] | None = None, progress: bool = True,
              echo: Callable[[str], None] = lambda line: None) -> list[RunOutcome]:
    """Run ``runs`` (each in ``folder/<name>``) one after another, or, given several ``devices``,
    one on each device at once in processes of their own; the outcomes in the runs' order."""
    if not devices or len(devices) == 1:
        outcomes = []
        for number, run in enumerate(runs, 1):
            echo(f"run {number}/{len(runs)} {run.name}")
            outcomes.append(run_one(run, folder / run.name, device=devices[0] if devices else None,
                                    progress=progress, echo=echo))
            echo(_said(outcomes[-1]))
        return outcomes
    context = multiprocessing.get_context("spawn")  # CUDA cannot be forked; spawn is safe everywhere
    free_devices = context.Queue()
    for device in devices:
        free_devices.put(device)
    with ProcessPoolExecutor(len(devices), mp_context=context, initializer=_take_device,
                             initargs=(free_devices,)) as pool:
        futures = [pool.submit(_run_on_own_device, run, folder / run.name) for run in runs]
        outcomes = []
        for future in futures:
            outcomes.append(future.result())
            echo(_said(outcomes[-1]))
        return outcomes


def _said(outcome: RunOutcome) -> str:
    return f"{outcome.name}: {outcome.outcome}" + (f": {outcome.error}" if outcome.error else "")


_own_device: str | None = None  # in a --devices worker process: the device it was given


def _take_device(free_devices: Any) -> None:
    global _own_device
    _own_device = free_devices.get()


def _run_on_own_device(run: SweepRun, run_dir: Path) -> RunOutcome:
    return run_one(run, run_dir, device=_own_device, progress=False, echo=lambda line: None)
