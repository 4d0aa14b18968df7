"""The translator catalog's entries: the schema of a registry TOML file, where entries come from,
and writing an entry back as TOML.

Entries come from three places, merged by name (a name may appear once in all of them): the
registry shipped with the zoo (package ``pix2pix_zoo.registry_data``, the repository's
``registry/``), the user's ``$ZOO_HOME/registry/*.toml`` and plugins' ``register_translators``
hooks, which the catalog calls through the plugin host. ``registry/README.md`` documents the fields.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pix2pix_zoo.components import did_you_mean
from pix2pix_zoo.download import mirrored_url, sha256_of
from pix2pix_zoo.errors import CatalogError, PluginError, SpecError
from pix2pix_zoo.home import translators_dir, user_registry_dir
from pix2pix_zoo.plugins import get_host
from pix2pix_zoo.spec import MAX_CHANNELS, canonical, describe, resolve
from pix2pix_zoo.translator_file import WEIGHTS_FILE

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
MAX_PARAMETERS = 2**40  # nor a generator of a trillion parameters


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
    parameters: int | None = None
    """The generator's parameter count: recorded in the entry (``zoo publish`` writes it) so that ``zoo
    list`` shows it without building the network; :func:`parse_entry` counts it when it is not."""
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
        return recorded_sha256(self.directory)

    @property
    def verification(self) -> str:
        """``published`` (checked against the entry's sha256), ``recorded`` (against the first
        download's) or ``unverified`` (no published sha256 and never downloaded)."""
        if self.sha256:
            return "published"
        return "recorded" if self.recorded_sha256 else "unverified"

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
            "downloaded": self.downloaded,
            "verification": self.verification,
            "path": str(self.weights_path),
        }


def recorded_sha256(directory: Path) -> str | None:
    """The sha256 that ``directory/source.json`` recorded at a first download; None if there is none."""
    try:
        recorded = json.loads((directory / SOURCE_RECORD).read_text())["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return recorded if isinstance(recorded, str) and SHA256_PATTERN.fullmatch(recorded) else None


def check_recorded(path: Path, directory: Path, refusal: Callable[[str, str], str]) -> str:
    """``path``'s sha256, which must be the one recorded in ``directory`` at the first download if
    there is one; else a CatalogError saying ``refusal(recorded, actual)``."""
    actual = sha256_of(path)
    recorded = recorded_sha256(directory)
    if recorded is not None and actual != recorded:
        raise CatalogError(refusal(recorded, actual))
    return actual


# -- the schema --------------------------------------------------------------------------------------
_TOP_FIELDS = {f.name for f in dataclasses.fields(TranslatorEntry)} - {"url", "format", "sha256", "size_bytes", "origin", "where"}
_REQUIRED = ("name", "spec", "task", "dataset", "direction", "in_channels", "out_channels", "train_size", "license")
_WEIGHTS_FIELDS = {"url", "format", "sha256", "size_bytes"}


def is_count(value: Any, most: int) -> bool:
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
        if not is_count(value, most):
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
    parameters = data.get("parameters")
    if parameters is not None and not is_count(parameters, MAX_PARAMETERS):
        raise fail("parameters", f"must be a positive integer up to {MAX_PARAMETERS}, not {parameters!r}")
    entry = TranslatorEntry(
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
        parameters=parameters,
        citation=text("citation", data.get("citation", "")),
        source=text("source", data.get("source", "")),
        notes=text("notes", data.get("notes", "")),
        inference_mode=choice("inference_mode", data.get("inference_mode", "paper"), INFERENCE_MODES),
        metrics=dict(metrics),
        origin=origin,
        where=where,
    )
    if entry.parameters is not None:
        return entry
    # Counted on the meta device (which imports torch) without the options that would fetch weights:
    # an entry's weights are its file.
    try:
        counted = describe(resolve(spec).self_contained(), entry.in_channels, entry.out_channels)
    except SpecError as error:
        raise fail("spec", f"does not build a generator for these channels: {error}") from None
    return dataclasses.replace(entry, parameters=counted["generator"]["parameters"])


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
    it back to the same entry. Empty optional strings and tables, and a count not yet known, are left out.
    """
    record = {k: v for k, v in entry.record().items() if v not in ("", {}, None)}
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in record.items() if not isinstance(v, dict)]
    for table, values in record.items():
        if isinstance(values, dict):
            lines += ["", f"[{_toml_key(table)}]", *(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in values.items())]
    return "\n".join(lines) + "\n"
