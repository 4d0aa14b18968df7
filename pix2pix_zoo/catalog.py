"""The translator catalog: pretrained translators by name, and pulling them into the cache.

Entries come from three places, merged by name (a name may appear once in all of them): the
registry shipped with the zoo (package ``pix2pix_zoo.registry_data``, the repository's
``registry/``), the user's ``$ZOO_HOME/registry/*.toml`` and plugins' ``register_translators``
hooks. ``registry/README.md`` documents the fields. ``$ZOO_TRANSLATORS_URL`` names a mirror that
holds the same weight files under the same file names.

:func:`pull` downloads an entry's weights, verifies them and writes the translator to
``$ZOO_HOME/translators/<name>/model.safetensors``; a reference PyTorch ``.pth`` is read with
``weights_only=True`` and converted, so nothing the zoo keeps is a pickle. Where an entry
publishes no sha256, the hash of the first download is recorded beside the translator and every
later download must match it.

:func:`publish` turns a training run into a catalog entry: the translator with its card completed,
a model card and the sample grid in ``$ZOO_HOME/translators/<name>/`` (so it counts as pulled), and
``<name>.toml`` in the user registry, optionally uploaded to the Hugging Face Hub.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import re
import shutil
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pix2pix_zoo.atomic import (
    sigterm_as_interrupt,
    temporary_path,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)
from pix2pix_zoo.data.download import download, mirrored_url, sha256_of
from pix2pix_zoo.errors import CatalogError, PluginError, SpecError, ZooError, first_line
from pix2pix_zoo.home import nearest_existing, translators_dir, user_registry_dir
from pix2pix_zoo.plugins import get_host
from pix2pix_zoo.registry import did_you_mean
from pix2pix_zoo.spec import MAX_CHANNELS, canonical, describe, resolve
from pix2pix_zoo.translator import (
    WEIGHTS_FILE,
    Card,
    check_translator,
    generator_from_state,
    load_generator,
    read_card,
    save_translator,
)
from pix2pix_zoo.weights import read_state_dict_pth

MIRROR_VARIABLE = "ZOO_TRANSLATORS_URL"
SHIPPED_PACKAGE = "pix2pix_zoo.registry_data"
SOURCE_RECORD = "source.json"

# A name becomes a folder under $ZOO_HOME/translators: no separators, no "..", no leading dot.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,99}")
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
WeightsFormat = Literal["safetensors", "reference-pth"]
FORMATS = ("safetensors", "reference-pth")
DIRECTIONS = ("AtoB", "BtoA")
INFERENCE_MODES = ("paper", "eval")
MAX_TRAIN_SIZE = 2**16  # a training crop's side
MAX_SIZE_BYTES = 2**40  # a weights file of a terabyte is already no translator


@dataclass(frozen=True)
class TranslatorEntry:
    """One catalog entry: what the translator is, where its weights come from, and its cache state."""

    name: str
    spec: str
    task: str
    dataset: str
    direction: str
    in_channels: int
    out_channels: int
    train_size: int
    url: str
    format: WeightsFormat
    license: str
    sha256: str | None = None
    size_bytes: int | None = None
    citation: str = ""
    source: str = ""
    notes: str = ""
    inference_mode: str = "paper"
    metrics: dict[str, Any] = field(default_factory=dict)
    origin: str = ""  # "shipped", "user" or the plugin's name
    where: str = ""  # the file or plugin that defined it, for messages

    @property
    def download_url(self) -> str:
        """:attr:`url`, or the same file on ``$ZOO_TRANSLATORS_URL``."""
        return mirrored_url(self.url, MIRROR_VARIABLE)

    @property
    def directory(self) -> Path:
        return translators_dir() / self.name

    @property
    def weights_path(self) -> Path:
        return self.directory / WEIGHTS_FILE

    @property
    def downloaded(self) -> bool:
        return self.weights_path.is_file()

    @property
    def recorded_sha256(self) -> str | None:
        """The sha256 recorded at the first download, for entries that publish none."""
        try:
            recorded = json.loads((self.directory / SOURCE_RECORD).read_text())["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return recorded if isinstance(recorded, str) and SHA256_PATTERN.fullmatch(recorded) else None

    @property
    def verification(self) -> str:
        """``published`` (checked against the entry's sha256), ``recorded`` (against the first
        download's) or ``unverified`` (no published sha256 and never downloaded)."""
        if self.sha256:
            return "published"
        return "recorded" if self.recorded_sha256 else "unverified"

    @property
    def parameters(self) -> int:
        """The generator's parameter count (built on the meta device, without the options that would
        fetch weights: an entry's weights are its file)."""
        spec = resolve(self.spec).self_contained()
        return describe(spec, self.in_channels, self.out_channels)["generator"]["parameters"]

    def record(self) -> dict[str, Any]:
        """The entry as a registry TOML file holds it (``weights`` and ``metrics`` nested)."""
        weights = {"url": self.url, "format": self.format, "sha256": self.sha256, "size_bytes": self.size_bytes}
        skip = {"url", "format", "sha256", "size_bytes", "origin", "where"}
        facts = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip}
        return facts | {"weights": {k: v for k, v in weights.items() if v is not None}}

    def as_dict(self) -> dict[str, Any]:
        """What ``zoo list --json`` shows: the record, then where it came from and its cache state."""
        return self.record() | {
            "origin": self.origin,
            "defined_in": self.where,
            "download_url": self.download_url,
            "parameters": self.parameters,
            "downloaded": self.downloaded,
            "verification": self.verification,
            "path": str(self.weights_path),
        }


# -- the schema --------------------------------------------------------------------------------------
_TOP_FIELDS = {f.name for f in dataclasses.fields(TranslatorEntry)} - {"url", "format", "sha256", "size_bytes", "origin", "where"}
_REQUIRED = ("name", "spec", "task", "dataset", "direction", "in_channels", "out_channels", "train_size", "license")
_WEIGHTS_FIELDS = {"url", "format", "sha256", "size_bytes"}


def _is_count(value: Any, most: int) -> bool:
    """Whether a value read from a file is a whole number from 1 to ``most`` (JSON's true is not)."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= most


def parse_entry(data: Mapping[str, Any], where: str, origin: str) -> TranslatorEntry:
    """Validate one entry (a registry TOML file's content); a CatalogError names ``where`` and the field."""

    def fail(key: str, problem: str) -> CatalogError:
        return CatalogError(f"{where}: field {key!r} {problem}")

    unknown = set(data) - _TOP_FIELDS - {"weights"}
    if unknown:
        key = sorted(unknown)[0]
        raise fail(key, f"is not a catalog field; {did_you_mean(key, _TOP_FIELDS | {'weights'})}")
    weights = data.get("weights")
    if not isinstance(weights, Mapping):
        raise fail("weights", "is missing or not a table (url, format, sha256, size_bytes)")
    unknown = set(weights) - _WEIGHTS_FIELDS
    if unknown:
        key = sorted(unknown)[0]
        raise fail(f"weights.{key}", f"is not a weights field; {did_you_mean(key, _WEIGHTS_FIELDS)}")
    for key in _REQUIRED:
        if key not in data:
            raise fail(key, "is missing")
    for key in ("url", "format"):
        if key not in weights:
            raise fail(f"weights.{key}", "is missing")

    def text(key: str, value: Any, pattern: re.Pattern | None = None, hint: str = "") -> str:
        if not isinstance(value, str) or (pattern is not None and not pattern.fullmatch(value)):
            raise fail(key, f"must be {hint or 'a string'}, not {value!r}")
        return value

    def count(key: str, value: Any, most: int) -> int:
        if not _is_count(value, most):
            raise fail(key, f"must be a positive integer up to {most}, not {value!r}")
        return value

    def choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
        if value not in choices:
            raise fail(key, f"must be one of {', '.join(choices)}, not {value!r}")
        return value

    name = text("name", data["name"], NAME_PATTERN, "lower-case letters, digits, '_', '.', '-' (a safe file name)")
    spec = text("spec", data["spec"])
    try:
        written = canonical(spec)
    except SpecError as error:
        raise fail("spec", f"is invalid: {error}") from None
    if written != spec:
        raise fail("spec", f"must be canonical: {written!r}, not {spec!r}")
    url = text("weights.url", weights["url"], re.compile(r"(https?|file)://\S+"), "an http(s):// or file:// URL")
    sha256 = weights.get("sha256")
    metrics = data.get("metrics", {})
    if not isinstance(metrics, Mapping) or not all(isinstance(v, (int, float, str)) for v in metrics.values()):
        raise fail("metrics", "must be a table of numbers (and strings)")
    if metrics and not isinstance(metrics.get("data"), str):
        raise fail("metrics.data", "must say what the metrics were measured on")
    return TranslatorEntry(
        name=name,
        spec=spec,
        task=text("task", data["task"]),
        dataset=text("dataset", data["dataset"]),
        direction=choice("direction", data["direction"], DIRECTIONS),
        in_channels=count("in_channels", data["in_channels"], MAX_CHANNELS),
        out_channels=count("out_channels", data["out_channels"], MAX_CHANNELS),
        train_size=count("train_size", data["train_size"], MAX_TRAIN_SIZE),
        url=url,
        format=choice("weights.format", weights["format"], FORMATS),  # type: ignore[arg-type]
        license=text("license", data["license"]),
        sha256=None if sha256 is None else text("weights.sha256", sha256.lower() if isinstance(sha256, str) else sha256,
                                                SHA256_PATTERN, "64 hex digits"),
        size_bytes=(None if weights.get("size_bytes") is None
                    else count("weights.size_bytes", weights["size_bytes"], MAX_SIZE_BYTES)),
        citation=text("citation", data.get("citation", "")),
        source=text("source", data.get("source", "")),
        notes=text("notes", data.get("notes", "")),
        inference_mode=choice("inference_mode", data.get("inference_mode", "paper"), INFERENCE_MODES),
        metrics=dict(metrics),
        origin=origin,
        where=where,
    )


# -- loading -----------------------------------------------------------------------------------------
def _read_toml(text: str, where: str, origin: str) -> TranslatorEntry:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise CatalogError(f"{where}: not valid TOML: {error}") from None
    return parse_entry(data, where, origin)


def _shipped_entries() -> list[TranslatorEntry]:
    files = sorted((f for f in resources.files(SHIPPED_PACKAGE).iterdir() if f.name.endswith(".toml")), key=lambda f: f.name)
    return [_read_toml(f.read_text(encoding="utf-8"), f"registry/{f.name}", "shipped") for f in files]


def _user_entries() -> list[TranslatorEntry]:
    entries = []
    for path in sorted(user_registry_dir().glob("*.toml")):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise CatalogError(f"{path}: cannot read it: {error}") from None
        entries.append(_read_toml(text, str(path), "user"))
    return entries


def plugin_entries() -> list[TranslatorEntry]:
    """The entries plugins add through ``register_translators``, validated."""
    entries: list[TranslatorEntry] = []
    host = get_host()

    def registrar(plugin_name: str):
        def register(entry: TranslatorEntry | Mapping[str, Any]) -> None:
            data = entry.record() if isinstance(entry, TranslatorEntry) else entry
            try:
                entries.append(parse_entry(data, f"plugin {plugin_name!r}", plugin_name))
            except CatalogError as error:
                raise PluginError(str(error)) from None  # a plugin's mistake, not the user's
            host.note_added(plugin_name, "translator", entries[-1].name)

        return register

    host.call_each("register_translators", lambda plugin_name: {"register": registrar(plugin_name)})
    return entries


def load_catalog() -> dict[str, TranslatorEntry]:
    """Every entry by name: shipped, then the user's, then plugins'; a name defined twice is an error."""
    catalog: dict[str, TranslatorEntry] = {}
    for entry in [*_shipped_entries(), *_user_entries(), *plugin_entries()]:
        if entry.name in catalog:
            raise CatalogError(f"translator {entry.name!r} is defined twice: in {catalog[entry.name].where} and {entry.where}")
        catalog[entry.name] = entry
    return catalog


def list_translators(pattern: str | None = None) -> list[TranslatorEntry]:
    """The catalog's entries by name, those matching a shell wildcard (``*2photo``) if given."""
    catalog = load_catalog()
    return [catalog[name] for name in sorted(catalog) if pattern is None or fnmatch.fnmatchcase(name, pattern)]


def find_translator(name: str) -> TranslatorEntry:
    """The entry called ``name``; a CatalogError naming close matches otherwise."""
    catalog = load_catalog()
    if name not in catalog:
        raise CatalogError(f"unknown translator {name!r}; {did_you_mean(name, catalog)}")
    return catalog[name]


# -- pulling -----------------------------------------------------------------------------------------
def pull(name: str, *, progress: bool = True) -> Path:
    """The path of translator ``name``'s ``model.safetensors``, downloaded, verified and converted
    into ``$ZOO_HOME/translators/<name>/`` first unless it is there already."""
    entry = find_translator(name)
    if entry.downloaded:
        return entry.weights_path
    url = entry.download_url
    # A name of this call's own: a concurrent pull of the same translator downloads beside it.
    source = temporary_path(entry.directory / "weights", "download")
    with sigterm_as_interrupt():  # stopped while verifying or converting, the download is deleted too
        try:
            download(url, source, sha256=entry.sha256, size_bytes=entry.size_bytes, progress=progress)
            sha256 = entry.sha256 or _check_recorded(entry, source, url)
            if entry.format == "reference-pth":
                _convert_reference(entry, source, sha256)
            else:
                _install_safetensors(entry, source)
            if not entry.sha256 and entry.recorded_sha256 is None:
                record = {"url": entry.url, "sha256": sha256}
                write_json_atomic(entry.directory / SOURCE_RECORD, record, durable=True)
        finally:
            source.unlink(missing_ok=True)
    return entry.weights_path


def _check_recorded(entry: TranslatorEntry, source: Path, url: str) -> str:
    """The download's sha256, which must match the one recorded at the first download if there is one."""
    actual = sha256_of(source)
    recorded = entry.recorded_sha256
    if recorded is not None and actual != recorded:
        raise CatalogError(
            f"sha256 mismatch for {url}: the first download of {entry.name!r} was {recorded}, this one is "
            f"{actual}; the download was deleted (delete {entry.directory / SOURCE_RECORD} to accept it)"
        )
    return actual


def _install_safetensors(entry: TranslatorEntry, source: Path) -> None:
    """Install a downloaded translator once its card, size multiple and weight shapes are checked
    (and match the entry): until then its hash is not recorded as trusted."""
    try:
        card = check_translator(source, entry.download_url)
    except ZooError as error:  # reported as the catalog's error, like every other pull failure
        raise CatalogError(str(error)) from None
    if card.spec != entry.spec:
        raise CatalogError(f"{entry.name}: the downloaded translator is {card.spec!r}, the catalog says {entry.spec!r}")
    if (card.in_channels, card.out_channels) != (entry.in_channels, entry.out_channels):
        raise CatalogError(
            f"{entry.name}: the downloaded translator maps {card.in_channels} to {card.out_channels} channels, "
            f"the catalog says {entry.in_channels} to {entry.out_channels}"
        )
    source.replace(entry.weights_path)


def _convert_reference(entry: TranslatorEntry, source: Path, sha256: str) -> None:
    """Load a reference PyTorch state dict without executing anything, check it against the entry's
    generator on the meta device, and save it as a translator."""
    try:
        state = read_state_dict_pth(source, entry.download_url)
        generator = generator_from_state(entry.spec, entry.in_channels, entry.out_channels, state, entry.download_url)
    except ZooError as error:  # reported as the catalog's error, like every other pull failure
        raise CatalogError(str(error)) from None
    card = Card(
        spec=entry.spec,
        in_channels=entry.in_channels,
        out_channels=entry.out_channels,
        direction=entry.direction,
        size_multiple=generator.size_multiple,
        inference_mode=entry.inference_mode,  # type: ignore[arg-type]
        dataset=entry.dataset,
        task=entry.task,
        metrics=entry.metrics,
        license=entry.license,
        provenance={
            "catalog": entry.name,
            "origin": entry.origin,
            "url": entry.url,
            "sha256": sha256,
            "format": entry.format,
            "train_size": entry.train_size,
            "citation": entry.citation,
            "source": entry.source,
        },
    )
    try:
        save_translator(entry.directory, generator, card)
    except ZooError as error:
        raise CatalogError(str(error)) from None


# -- writing entries ---------------------------------------------------------------------------------
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    escaped = "".join(
        _TOML_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else c) for c in text
    )
    return f'"{escaped}"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):  # before int: bool is an int
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # 0.5, 1e-05, inf, nan: all TOML floats
    if isinstance(value, str):
        return _toml_string(value)
    raise CatalogError(f"cannot write {value!r} ({type(value).__name__}) into a registry entry")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def entry_toml(entry: TranslatorEntry) -> str:
    """The entry as a registry TOML file: scalars, then the ``[weights]`` and ``[metrics]`` tables.

    The schema is flat (one level of tables, scalar values), so a few lines write it; tomllib reads
    it back to the same entry. Empty optional strings and tables are left out.
    """
    record = {k: v for k, v in entry.record().items() if v not in ("", {})}
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in record.items() if not isinstance(v, dict)]
    for table, values in record.items():
        if isinstance(values, dict):
            lines += ["", f"[{_toml_key(table)}]", *(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in values.items())]
    return "\n".join(lines) + "\n"


# -- publishing --------------------------------------------------------------------------------------
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
    if not _is_count(crop_size, MAX_TRAIN_SIZE):
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
        raise CatalogError("uploading to hf:// needs huggingface_hub: pip install huggingface_hub") from None
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
