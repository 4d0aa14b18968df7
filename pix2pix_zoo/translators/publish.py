"""Publishing: a training run's translator made a catalog entry.

:func:`publish` writes the translator with its card completed, a model card and the sample grid to
``$ZOO_HOME/translators/<name>/`` (so it counts as pulled) and ``<name>.toml`` to the user
registry, optionally uploading the folder to the Hugging Face Hub.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pix2pix_zoo.atomic import (
    sigterm_as_interrupt,
    temporary_path,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)
from pix2pix_zoo.download import sha256_of
from pix2pix_zoo.errors import CatalogError, first_line
from pix2pix_zoo.home import nearest_existing, translators_dir, user_registry_dir
from pix2pix_zoo.translator_file import WEIGHTS_FILE, load_generator, read_card, save_translator
from pix2pix_zoo.translators.entries import (
    MAX_TRAIN_SIZE,
    NAME_PATTERN,
    TranslatorEntry,
    entry_toml,
    is_count,
    load_catalog,
    parse_entry,
)

PAPER_CITATION = (
    "Phillip Isola, Jun-Yan Zhu, Tinghui Zhou, Alexei A. Efros. Image-to-Image Translation with "
    "Conditional Adversarial Networks. CVPR 2017. arXiv:1611.07004"
)
MODEL_CARD = "README.md"
SAMPLE_FILE = "samples.png"
# Beside published weights: the registry file whose entry points at them (not uploaded).
PUBLISH_RECORD = "published.json"
HUB_TARGET = re.compile(r"hf://([A-Za-z0-9][A-Za-z0-9_.-]*)/([A-Za-z0-9][A-Za-z0-9_.-]*)")
# The settings a reader needs to reproduce the training; the rest of config.json is machinery.
_CARD_SETTINGS = ("data", "data_options", "direction", "epochs", "epochs_decay", "max_steps", "batch_size", "lr",
                  "beta1", "beta2", "preprocess", "load_size", "crop_size", "flip", "seed", "precision", "ema_decay")


@dataclass(frozen=True)
class Published:
    """What :func:`publish` wrote: the entry, the folder holding its files and its registry file."""

    entry: TranslatorEntry
    folder: Path
    registry_file: Path
    hub_repo: str | None = None


def hub_repo(target: str) -> str:
    """``ORG/NAME`` from ``hf://ORG/NAME``; a CatalogError for anything else."""
    match = HUB_TARGET.fullmatch(target)
    if match is None:
        raise CatalogError(f"--to must be hf://ORG/NAME (a Hugging Face Hub model repository), not {target!r}")
    return f"{match.group(1)}/{match.group(2)}"


def default_publish_name(run_dir: Path) -> str:
    """The run folder's name made a catalog name: lower case, other characters as ``-``."""
    return re.sub(r"[^a-z0-9_.-]+", "-", run_dir.resolve().name.lower()).strip("-_.")[:100]


def publish(
    run_dir: str | Path,
    name: str | None = None,
    *,
    registry: str | Path | None = None,
    overwrite: bool = False,
    to: str | None = None,
) -> Published:
    """Publish a training run's translator as catalog entry ``name`` (default: the run's name).

    Writes ``$ZOO_HOME/translators/<name>/`` (``model.safetensors`` with the card completed by the
    run's evaluation, the training crop size and the paper's citation; ``README.md``, a model card;
    ``samples.png``, the newest sample grid) and ``<registry>/<name>.toml`` (default: the user
    registry) with the weights' sha256 and size. The entry's URL is the file's ``file://`` URL, or
    its Hub URL when ``to`` (``hf://ORG/NAME``) uploads the folder with huggingface_hub.

    Nothing is replaced without ``overwrite``, and weights that another registry file's entry
    points at (recorded in ``published.json`` beside them) not even with it. Everything is checked
    before anything is written; a failure, a failed upload included, leaves the files as they were.
    """
    run_dir = Path(run_dir)
    weights = run_dir / "translator" / WEIGHTS_FILE
    if not weights.is_file():
        raise CatalogError(f"{run_dir} has no translator/{WEIGHTS_FILE}: publish a finished training run")
    repo = hub_repo(to) if to is not None else None
    name = name if name is not None else default_publish_name(run_dir)
    if not NAME_PATTERN.fullmatch(name):
        raise CatalogError(f"cannot publish as {name!r}: a name is lower-case letters, digits, '_', '.', '-' (--name)")
    registry_file = Path(registry or user_registry_dir()).expanduser() / f"{name}.toml"
    existing = load_catalog().get(name)
    if existing is not None and Path(existing.where).resolve() != registry_file.resolve():
        raise CatalogError(f"translator {name!r} is already in the catalog ({existing.where}); choose another --name")
    if registry_file.exists() and not overwrite:
        raise CatalogError(f"{registry_file} exists: {name!r} is already published (--overwrite replaces it)")
    blocking = nearest_existing(registry_file.parent)
    if not blocking.is_dir():
        raise CatalogError(f"cannot write {registry_file}: {blocking} is not a folder (--registry)")
    folder = translators_dir() / name
    _check_weights_free(folder, registry_file, overwrite)

    settings = _run_settings(run_dir / "config.json")
    evaluation = _run_evaluation(run_dir / "eval.json")
    card = read_card(weights)
    generator = load_generator(weights, card)  # also proves the file rebuilds its generator
    metrics = {}
    if evaluation is not None:
        size = settings.get("crop_size", "?")
        metrics = {"data": f"{card.dataset} {evaluation['split']} split, {evaluation['pairs']} pairs, {size}x{size}",
                   **evaluation["translator"]}
    card = dataclasses.replace(card, metrics=metrics, provenance={
        **card.provenance, "catalog": name, "train_size": settings.get("crop_size"), "citation": PAPER_CITATION,
        "run": str(run_dir.resolve()),
    })
    if repo:
        check_hub_ready(repo)

    # Everything is written into a folder of this call's own, uploaded from there, and only then
    # moved into place: a failure leaves what was published before as it was.
    staging = temporary_path(folder, "publish")
    with sigterm_as_interrupt():
        try:
            staging.mkdir(parents=True)
            path = save_translator(staging, generator, card)
            samples = sorted((run_dir / "samples").glob("step-*.png"))  # zero-padded steps: the last is the newest
            if samples:
                write_bytes_atomic(staging / SAMPLE_FILE, samples[-1].read_bytes())
            local_url = (folder / WEIGHTS_FILE).resolve().as_uri()
            url = f"https://huggingface.co/{repo}/resolve/main/{WEIGHTS_FILE}" if repo else local_url
            step = card.provenance.get("step", "?")
            entry = parse_entry({
                "name": name, "spec": card.spec, "task": _directed_task(card.task, card.direction) or card.dataset,
                "dataset": card.dataset, "direction": card.direction, "in_channels": card.in_channels,
                "out_channels": card.out_channels, "train_size": settings.get("crop_size", 256),
                "license": card.license or "unknown", "citation": PAPER_CITATION, "inference_mode": card.inference_mode,
                "source": f"trained with pix2pix-zoo ({run_dir.resolve().name}, step {step})",
                "weights": {"url": url, "format": "safetensors", "sha256": sha256_of(path),
                            "size_bytes": path.stat().st_size},
                "metrics": metrics,
            }, str(registry_file), "user")
            write_text_atomic(staging / MODEL_CARD, model_card(entry, settings, evaluation, samples=bool(samples)))
            write_json_atomic(staging / PUBLISH_RECORD, {"registry_file": str(registry_file.resolve())})
            if repo:  # before anything is moved into place, so that nothing points at a failed upload
                upload_to_hub(staging, repo)
            registry_file.parent.mkdir(parents=True, exist_ok=True)
            folder.mkdir(exist_ok=True)
            if not samples:
                (folder / SAMPLE_FILE).unlink(missing_ok=True)  # an older publish's, of other weights
            for file in sorted(staging.iterdir()):
                os.replace(file, folder / file.name)
            write_text_atomic(registry_file, entry_toml(entry))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return Published(entry, folder, registry_file, repo)


def _check_weights_free(folder: Path, registry_file: Path, overwrite: bool) -> None:
    """Refuse to replace the weights in ``folder`` where another registry entry (named in the
    record beside them) points at them, or, without ``overwrite``, at all."""
    weights = folder / WEIGHTS_FILE
    if not weights.exists():
        return
    try:
        owner = Path(json.loads((folder / PUBLISH_RECORD).read_text(encoding="utf-8"))["registry_file"])
    except (OSError, ValueError, KeyError, TypeError):
        owner = None  # no entry is known to point at them: --overwrite may replace them
    if owner is not None and owner.is_file() and owner.resolve() != registry_file.resolve():
        raise CatalogError(
            f"{weights} holds the weights that {owner} points at; publishing over them would break that entry: "
            "choose another --name (or publish to that registry with --overwrite)"
        )
    if not overwrite:
        raise CatalogError(f"{weights} exists: {folder.name!r} holds a translator already (--overwrite replaces it)")


def _read_run_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CatalogError(f"cannot read {path}: {error}") from None
    if not isinstance(data, dict):
        raise CatalogError(f"{path} holds no JSON object")
    return data


def _run_settings(path: Path) -> dict[str, Any]:
    """The training settings in a run's ``config.json``, the fields publish uses checked."""
    settings = _read_run_json(path).get("config", {})
    if not isinstance(settings, dict):
        raise CatalogError(f"{path}: 'config' must be a JSON object, not {type(settings).__name__}")
    crop_size = settings.get("crop_size", 256)
    if not is_count(crop_size, MAX_TRAIN_SIZE):
        raise CatalogError(
            f"{path}: 'config.crop_size' must be a positive integer up to {MAX_TRAIN_SIZE}, not {crop_size!r}"
        )
    return settings


def _run_evaluation(path: Path) -> dict[str, Any] | None:
    """A run's ``eval.json`` (None if it has none), the fields publish uses checked."""
    if not path.exists():
        return None
    evaluation = _read_run_json(path)
    figures = evaluation.get("translator")
    if not isinstance(evaluation.get("split"), str):
        raise CatalogError(f"{path}: 'split' must be a string, not {evaluation.get('split')!r}")
    if not isinstance(evaluation.get("pairs"), int) or isinstance(evaluation.get("pairs"), bool):
        raise CatalogError(f"{path}: 'pairs' must be an integer, not {evaluation.get('pairs')!r}")
    if not isinstance(figures, dict) or not all(
        isinstance(value, (int, float)) and not isinstance(value, bool) for value in figures.values()
    ):
        raise CatalogError(f"{path}: 'translator' must be a JSON object of numbers (the translator's metrics)")
    return evaluation


def _directed_task(task: str, direction: str) -> str:
    """A dataset's ``"A <-> B"`` as this translator's ``"A -> B"`` (or ``"B -> A"``)."""
    sides = task.split(" <-> ")
    if len(sides) != 2:
        return task
    return " -> ".join(sides if direction == "AtoB" else sides[::-1])


def model_card(entry: TranslatorEntry, settings: Mapping[str, Any], evaluation: Mapping[str, Any] | None,
               samples: bool) -> str:
    """A Markdown model card: what the translator is, how it was trained and how well it does."""
    lines = [
        "---", "library_name: pix2pix-zoo", "pipeline_tag: image-to-image", "tags: [pix2pix, image-to-image, gan]", "---",
        "", f"# {entry.name}", "",
        f"A pix2pix translator: {entry.task}, trained on `{entry.dataset}` ({entry.direction}).", "",
        "| | |", "|---|---|",
        f"| spec | `{entry.spec}` |",
        f"| channels | {entry.in_channels} in, {entry.out_channels} out |",
        f"| direction | {entry.direction} |",
        f"| training crops | {entry.train_size}x{entry.train_size} |",
        f"| parameters | {entry.parameters:,} |",
        f"| inference mode | {entry.inference_mode} |",
        f"| license | {entry.license} |",
        f"| sha256 | `{entry.sha256}` |", "",
        "## Usage", "", "```",
        f"zoo translate {entry.name} inputs/ -o outputs/", "```", "",
        "`model.safetensors` carries its card in its metadata: the file alone rebuilds the generator "
        "(`Translator.from_pretrained(\"model.safetensors\")`).", "",
        "## Training", "", "| setting | value |", "|---|---|",
        *(f"| {key} | `{json.dumps(settings[key])}` |" for key in _CARD_SETTINGS if key in settings), "",
    ]
    if evaluation:
        figures = {k: v for k, v in evaluation.items() if isinstance(v, dict)}
        metric_names = sorted({m for values in figures.values() for m in values})
        lines += [
            "## Evaluation", "",
            f"On the `{evaluation.get('split')}` split ({evaluation.get('pairs')} pairs); the baselines are the "
            "input returned unchanged and the mean training target.", "",
            f"| | {' | '.join(metric_names)} |", f"|---|{'---|' * len(metric_names)}",
            *(f"| {who} | {' | '.join(str(values.get(m, '')) for m in metric_names)} |" for who, values in figures.items()),
            "",
        ]
    if samples:
        lines += ["## Samples", "", "Input | output | target, on held-out pairs:", "", f"![samples]({SAMPLE_FILE})", ""]
    lines += ["## Citation", "", entry.citation, ""]
    return "\n".join(lines)


def check_hub_ready(repo: str) -> None:
    """Refuse an upload that cannot work, before anything is written: no huggingface_hub, offline
    mode or no login."""
    try:
        from huggingface_hub import constants, get_token  # optional: only uploads need it
    except ImportError:
        raise CatalogError('uploading to hf:// needs huggingface_hub: pip install "pix2pix-zoo[hub]"') from None
    if constants.HF_HUB_OFFLINE:
        raise CatalogError(f"cannot upload to hf://{repo}: HF_HUB_OFFLINE is set")
    if get_token() is None:
        raise CatalogError(f"uploading to hf://{repo} needs a Hugging Face login: hf auth login (or set HF_TOKEN)")


def upload_to_hub(folder: Path, repo: str) -> None:
    """Upload the published files in ``folder`` to the Hub model repository ``repo`` (created if needed)."""
    check_hub_ready(repo)
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HTTPError

    api = HfApi()
    try:
        api.create_repo(repo, repo_type="model", exist_ok=True)
        api.upload_folder(repo_id=repo, repo_type="model", folder_path=str(folder),
                          allow_patterns=[WEIGHTS_FILE, MODEL_CARD, SAMPLE_FILE])
    except (OSError, HTTPError) as error:  # the Hub's HTTP errors, refused connections, offline mode
        raise CatalogError(f"upload to hf://{repo} failed: {first_line(error)}") from None
