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
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from pix2pix_zoo.atomic import write_json_atomic
from pix2pix_zoo.data.download import download, mirrored_url, sha256_of
from pix2pix_zoo.errors import CatalogError, PluginError, SpecError
from pix2pix_zoo.home import translators_dir, user_registry_dir
from pix2pix_zoo.plugins import get_host
from pix2pix_zoo.registry import did_you_mean
from pix2pix_zoo.spec import canonical, describe, resolve
from pix2pix_zoo.translator import WEIGHTS_FILE, Card, read_card, save_translator

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
            return json.loads((self.directory / SOURCE_RECORD).read_text())["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @property
    def verification(self) -> str:
        """``published`` (checked against the entry's sha256), ``recorded`` (against the first
        download's) or ``unverified`` (no published sha256 and never downloaded)."""
        if self.sha256:
            return "published"
        return "recorded" if self.recorded_sha256 else "unverified"

    @property
    def parameters(self) -> int:
        """The generator's parameter count (built on the meta device)."""
        return describe(self.spec, self.in_channels, self.out_channels)["generator"]["parameters"]

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

    def count(key: str, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise fail(key, f"must be a positive integer, not {value!r}")
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
        in_channels=count("in_channels", data["in_channels"]),
        out_channels=count("out_channels", data["out_channels"]),
        train_size=count("train_size", data["train_size"]),
        url=url,
        format=choice("weights.format", weights["format"], FORMATS),  # type: ignore[arg-type]
        license=text("license", data["license"]),
        sha256=None if sha256 is None else text("weights.sha256", sha256.lower() if isinstance(sha256, str) else sha256,
                                                SHA256_PATTERN, "64 hex digits"),
        size_bytes=None if weights.get("size_bytes") is None else count("weights.size_bytes", weights["size_bytes"]),
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


def _plugin_entries() -> list[TranslatorEntry]:
    entries: list[TranslatorEntry] = []

    def registrar(plugin_name: str):
        def register(entry: TranslatorEntry | Mapping[str, Any]) -> None:
            data = entry.record() if isinstance(entry, TranslatorEntry) else entry
            try:
                entries.append(parse_entry(data, f"plugin {plugin_name!r}", plugin_name))
            except CatalogError as error:
                raise PluginError(str(error)) from None  # a plugin's mistake, not the user's

        return register

    get_host().call_each("register_translators", lambda plugin_name: {"register": registrar(plugin_name)})
    return entries


def load_catalog() -> dict[str, TranslatorEntry]:
    """Every entry by name: shipped, then the user's, then plugins'; a name defined twice is an error."""
    catalog: dict[str, TranslatorEntry] = {}
    for entry in [*_shipped_entries(), *_user_entries(), *_plugin_entries()]:
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
    source = entry.directory / ".download"
    source.unlink(missing_ok=True)  # a leftover must not pass for this download (download() caches)
    download(url, source, sha256=entry.sha256, progress=progress)
    try:
        sha256 = entry.sha256 or _check_recorded(entry, source, url)
        if entry.format == "reference-pth":
            _convert_reference(entry, source, sha256)
        else:
            _install_safetensors(entry, source)
        if not entry.sha256 and entry.recorded_sha256 is None:
            write_json_atomic(entry.directory / SOURCE_RECORD, {"url": entry.url, "sha256": sha256})
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
    card = read_card(source)
    if card.spec != entry.spec:
        raise CatalogError(f"{entry.name}: the downloaded translator is {card.spec!r}, the catalog says {entry.spec!r}")
    source.replace(entry.weights_path)


def _convert_reference(entry: TranslatorEntry, source: Path, sha256: str) -> None:
    """Load a reference PyTorch state dict without executing anything and save it as a translator."""
    state = load_reference_state_dict(source, entry.download_url)
    generator = resolve(entry.spec).build(entry.in_channels, entry.out_channels).generator
    # Files from PyTorch before 0.4 have no num_batches_tracked; batch norm fills it in (a plain
    # dict carries no per-module version saying it should be there).
    keys = set(generator.state_dict())
    missing = sorted(k for k in keys - set(state) if not k.endswith("num_batches_tracked"))
    unexpected = sorted(set(state) - keys)
    if missing or unexpected:
        raise CatalogError(
            f"{entry.download_url} does not fit {entry.spec!r}: {_some(missing)} missing, {_some(unexpected)} unexpected"
        )
    try:
        generator.load_state_dict(state, strict=True)
    except RuntimeError as error:  # shapes; the first line only names the module
        first = str(error).splitlines()[1:2] or [str(error)]
        raise CatalogError(f"{entry.download_url} does not fit {entry.spec!r}: {first[0].strip()}") from None
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
    save_translator(entry.directory, generator, card)


def _some(keys: list[str], shown: int = 3) -> str:
    """``"2 keys (a, b)"``, with at most ``shown`` keys named."""
    if not keys:
        return "no keys"
    more = ", ..." if len(keys) > shown else ""
    return f"{len(keys)} key{'s' if len(keys) > 1 else ''} ({', '.join(keys[:shown])}{more})"


def load_reference_state_dict(path: Path, url: str) -> dict[str, Tensor]:
    """A ``.pth`` holding a flat dict of names to tensors, read with ``weights_only=True``.

    The reference saves ``net.state_dict()`` as it is: no ``module.`` prefix is stripped, so a file
    in another layout fails the strict load with the keys that differ.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # the weights-only unpickler refuses any other Python object
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        why = f"it holds a Python object ({found.group(1)})" if found else f"{type(error).__name__}"
        raise CatalogError(f"{url} is not a weights-only PyTorch checkpoint: {why}; it was not loaded") from None
    if not isinstance(state, dict):
        raise CatalogError(f"{url} holds a {type(state).__name__}, not a state dict of tensors")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            raise CatalogError(f"{url}: entry {key!r} is a {type(value).__name__}, not a tensor; only a flat state dict is accepted")
    return dict(state)  # a plain dict: drops the per-module versions of an OrderedDict's _metadata
