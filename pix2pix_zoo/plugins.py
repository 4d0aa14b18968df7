"""The plugin manager: entry points of group ``pix2pix_zoo``, loaded lazily and once.

Built-in plugins (those of the ``pix2pix-zoo`` distribution) are loaded through the same entry-point
group as third-party ones. A plugin that fails to import, or whose hook raises, is reported by name
with its error and skipped; everything else still loads. So is the later of two plugins that
register the same name (built-ins load first, then third parties by entry-point name): one warning
names both, and ``ZOO_LOAD_PLUGINS`` chooses. Mistakes in a plugin's shape (a misspelled hook, a
bad name or factory signature) raise :class:`~pix2pix_zoo.errors.PluginError`.

``ZOO_LOAD_PLUGINS`` is an allow-list of third-party plugins, comma separated, matched against the
entry-point name or the distribution name; the empty string loads the built-ins only.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable

import pluggy

from pix2pix_zoo import hookspecs
from pix2pix_zoo.components import Kind, NameTaken, Registry
from pix2pix_zoo.errors import PluginError

ENTRY_POINT_GROUP = "pix2pix_zoo"
BUILTIN_DISTRIBUTION = "pix2pix-zoo"
ALLOW_LIST_VARIABLE = "ZOO_LOAD_PLUGINS"
NAME_OF_DISTRIBUTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # what pip accepts, and nothing to a shell

# Registration hooks and the component kind each one fills.
REGISTRATION_HOOKS: dict[str, Kind] = {
    "register_generators": "generator",
    "register_discriminators": "discriminator",
    "register_objectives": "objective",
    "register_datasets": "dataset",
    "register_codecs": "codec",
}

logger = logging.getLogger("pix2pix_zoo")


@dataclass
class PluginRecord:
    """One plugin as ``zoo plugins`` shows it."""

    name: str
    distribution: str | None = None
    version: str | None = None
    builtin: bool = False
    registered: list[tuple[str, str]] = field(default_factory=list)
    """(kind, name) of each component in the registry."""
    added: list[tuple[str, str]] = field(default_factory=list)
    """What it adds outside the registry: ("translator", name) catalog entries, ("command", name)."""
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "builtin": self.builtin,
            "registered": [{"kind": kind, "name": name} for kind, name in [*self.registered, *self.added]],
            "error": self.error,
        }


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _origin(record: PluginRecord) -> str:
    """``'name' (distribution version)``: a plugin as warnings name it."""
    where = f"{record.distribution} {record.version}" if record.distribution else "registered at run time"
    return f"{record.name!r} ({where})"


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _allow_list() -> set[str] | None:
    value = os.environ.get(ALLOW_LIST_VARIABLE)
    if value is None:
        return None
    return {_normalise(part.strip()) for part in value.split(",") if part.strip()}


class PluginHost:
    """A pluggy manager plus what each plugin loaded, failed or registered, and the registry it built."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.manager.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        self._registry: Registry | None = None

    # -- loading -------------------------------------------------------------------------------
    def load_entry_points(self) -> None:
        """Import every allowed entry point of the group; built-ins first, then by name."""
        allowed = _allow_list()
        points = metadata.entry_points(group=ENTRY_POINT_GROUP)

        def builtin(point: metadata.EntryPoint) -> bool:
            return point.dist is not None and _normalise(point.dist.name) == BUILTIN_DISTRIBUTION

        for point in sorted(points, key=lambda p: (not builtin(p), p.name)):
            dist_name = point.dist.name if point.dist is not None else None
            is_builtin = builtin(point)
            if not is_builtin and allowed is not None:
                if _normalise(point.name) not in allowed and _normalise(dist_name or "") not in allowed:
                    continue
            if point.name in self.records:
                continue  # the same distribution seen twice on sys.path
            record = PluginRecord(point.name, dist_name, point.dist.version if point.dist else None, is_builtin)
            self.records[point.name] = record
            try:
                plugin = point.load()
            except Exception as error:  # a broken plugin must not take the others down
                self._fail(record, error, "failed to import")
                continue
            self._add(plugin, point.name)

    def register(self, plugin: object, name: str | None = None) -> str:
        """Add a plugin object at run time (tests, notebooks); the registry is rebuilt on next use."""
        name = name or getattr(plugin, "__name__", None) or f"plugin-{id(plugin)}"
        if name in self.records:
            raise PluginError(f"a plugin named {name!r} is already registered")
        self.records[name] = PluginRecord(name)
        try:
            self._add(plugin, name)
        except PluginError:
            del self.records[name]
            raise
        self._registry = None
        return name

    def unregister(self, name: str) -> None:
        """Remove a plugin by name; its components disappear from the registry."""
        if self.manager.get_plugin(name) is not None:
            self.manager.unregister(name=name)
        self.records.pop(name, None)
        self._registry = None

    def _add(self, plugin: object, name: str) -> None:
        try:
            self.manager.register(plugin, name=name)
            self.manager.check_pending()
        except (pluggy.PluginValidationError, ValueError) as error:  # ValueError: registered twice
            if self.manager.get_plugin(name) is not None:
                self.manager.unregister(name=name)
            raise PluginError(f"plugin {name!r}: {error}") from None

    def _fail(self, record: PluginRecord, error: BaseException, what: str) -> None:
        record.error = _describe(error)
        dist = f" ({record.distribution} {record.version})" if record.distribution else ""
        logger.warning("plugin %r%s %s and was skipped: %s", record.name, dist, what, record.error)

    def _disable_for_clash(self, clash: NameTaken) -> None:
        """The later of two plugins that register one name is disabled, with one warning naming both
        (plugins load built-ins first, then by entry-point name, so the earlier one keeps the name)."""
        record = self.records.setdefault(clash.plugin, PluginRecord(clash.plugin))
        owner = self.records.get(clash.taken.plugin, PluginRecord(clash.taken.plugin))
        record.error = (
            f"registers {clash.kind} {clash.label!r}, which plugin {_origin(owner)} registered first; "
            f"set {ALLOW_LIST_VARIABLE} to choose which plugins load"
        )
        logger.warning("plugin %s was disabled: it %s", _origin(record), record.error)

    # -- calling -------------------------------------------------------------------------------
    def call_each(self, hook_name: str, make_kwargs: Callable[[str], dict[str, Any]]) -> None:
        """Call one hook plugin by plugin, isolating failures; ``make_kwargs(plugin_name)`` gives its arguments."""
        hook = getattr(self.manager.hook, hook_name)
        for impl in hook.get_hookimpls():
            record = self.records.get(impl.plugin_name)
            if record is not None and record.error is not None:
                continue
            try:
                impl.function(**make_kwargs(impl.plugin_name))
            except NameTaken as clash:
                self._disable_for_clash(clash)
            except PluginError:
                raise
            except Exception as error:  # the plugin's own bug: report it, keep the others
                record = record or self.records.setdefault(impl.plugin_name, PluginRecord(impl.plugin_name))
                self._fail(record, error, f"raised in {hook_name}")

    def note_added(self, plugin_name: str, kind: str, name: str) -> None:
        """Record a catalog entry or command a plugin added (shown by ``zoo plugins``)."""
        record = self.records.setdefault(plugin_name, PluginRecord(plugin_name))
        if (kind, name) not in record.added:
            record.added.append((kind, name))

    @property
    def registry(self) -> Registry:
        """The registry of every loaded plugin's components, built on first use."""
        if self._registry is None:
            self._registry = self._build_registry()
        return self._registry

    def _build_registry(self) -> Registry:
        # A plugin that fails part-way must not leave half of its components behind: when a build
        # marks a new failure, build again without it (call_each skips failed plugins).
        while True:
            failures = sum(record.error is not None for record in self.records.values())
            registry = Registry()
            for record in self.records.values():
                record.registered.clear()
            for hook_name, kind in REGISTRATION_HOOKS.items():
                self.call_each(hook_name, lambda plugin_name, kind=kind: {"register": self._registrar(registry, kind, plugin_name)})
            if sum(record.error is not None for record in self.records.values()) == failures:
                return registry

    def _registrar(self, registry: Registry, kind: Kind, plugin_name: str) -> Callable[..., None]:
        """The ``register`` callback handed to one plugin's hook for one kind."""

        def register(name: str, factory: Callable, *, aliases=(), summary: str = "") -> None:
            registry.register(kind, name, factory, aliases=aliases, summary=summary, plugin=plugin_name)
            self.records[plugin_name].registered.append((kind, name))

        return register


_host: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide plugin host, with entry points loaded on first use."""
    global _host
    if _host is None:
        host = PluginHost()
        host.load_entry_points()
        _host = host
    return _host


def reset() -> None:
    """Forget loaded plugins so the next use reloads entry points (e.g. after ``ZOO_LOAD_PLUGINS`` changed)."""
    global _host
    _host = None


def get_registry() -> Registry:
    """The registry of every installed, allowed plugin's components."""
    return get_host().registry


def register(plugin: object, name: str | None = None) -> str:
    """Register a plugin object (a module or any object with ``@hookimpl`` functions) at run time."""
    return get_host().register(plugin, name)


def unregister(name: str) -> None:
    """Remove a plugin registered with :func:`register` (or loaded from an entry point)."""
    get_host().unregister(name)


def plugin_records() -> list[PluginRecord]:
    """Every plugin that was loaded or failed to load, with what it registered: its components,
    and what it added elsewhere once that was read (translator catalog entries once the catalog
    asked for them, commands once the command line was built)."""
    host = get_host()
    host.registry  # noqa: B018 - building the registry fills in what each plugin registered
    return list(host.records.values())


def missing_distributions_hint(distributions: Any) -> str:
    """``"; it was made with X 0.1, which is not installed here: pip install X"`` for those of
    ``distributions`` (from :func:`pix2pix_zoo.spec.spec_distributions`, read back from a file: anything else is
    ignored) that this environment lacks, else ``""``."""
    missing = {}
    entries = distributions.items() if isinstance(distributions, dict) else ()
    for name, version in entries:
        if not isinstance(name, str) or not isinstance(version, str) or not NAME_OF_DISTRIBUTION.fullmatch(name):
            continue
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            missing[name] = version
    if not missing:
        return ""
    made_with = ", ".join(f"{name} {version}".strip() for name, version in missing.items())
    return f"; it was made with {made_with}, which is not installed here: pip install {' '.join(missing)}"
