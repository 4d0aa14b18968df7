"""The component registry: five kinds, names and aliases unique across all of them, validated factories.

Plugins fill it through the ``register`` callbacks of their hooks (see :mod:`pix2pix_zoo.plugins`);
everything else looks components up here. A factory's keyword options are its spec options: they
must have defaults and simple annotations (``int``, ``float``, ``bool``, ``str`` or a ``Literal``),
so that spec strings can be validated and coerced without building anything. An annotation may be
``Annotated`` with :class:`Bounds` (an int or float option's range; ints are otherwise bounded to
64 bits) and :class:`External` (the option makes the factory read a file or the network). A factory
may be registered by its import path, as a :class:`LazyFactory`: its module is imported when the
factory is first used, so that listing what is installed imports neither it nor torch.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import importlib
import inspect
import re
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Literal

from pix2pix_zoo.errors import PluginError, SpecError

Kind = Literal["generator", "discriminator", "objective", "dataset", "codec"]
KINDS: tuple[Kind, ...] = ("generator", "discriminator", "objective", "dataset", "codec")

# Leading arguments every factory of a kind takes positionally; the rest are spec options.
FACTORY_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "generator": ("in_channels", "out_channels"),
    "discriminator": ("in_channels",),
    "objective": (),
    "dataset": ("root", "split"),
    "codec": (),
}

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
IMPORT_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")  # package.module:function
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def parse_kind(text: str) -> Kind:
    """A kind from user text, singular or plural (``generators`` -> ``generator``)."""
    kind = text.strip().lower()
    kind = kind[:-1] if kind.endswith("s") and kind[:-1] in KINDS else kind
    if kind not in KINDS:
        raise SpecError(f"unknown kind {text!r}; {did_you_mean(kind, KINDS)}")
    return kind  # type: ignore[return-value]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def close_matches(word: str, choices: typing.Iterable[str], n: int = 3) -> list[str]:
    """The choices nearest to ``word``, best first (for did-you-mean messages)."""
    return difflib.get_close_matches(word, sorted(set(choices)), n=n, cutoff=0.5)


def did_you_mean(word: str, choices: typing.Iterable[str]) -> str:
    """``"did you mean a, b?"`` or, without a close match, the list of valid choices."""
    choices = sorted(set(choices))
    near = close_matches(word, choices)
    if near:
        return f"did you mean {', '.join(near)}?"
    if not choices:
        return "there are none"
    shown = ", ".join(choices[:12]) + (", ..." if len(choices) > 12 else "")
    return f"valid choices: {shown}"


def format_value(value: Any) -> str:
    """An option value as a canonical spec writes it (``true``, ``50``, ``0.5``, ``instance``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class Bounds:
    """``Annotated[int, Bounds(1, 4096)]``: the smallest and largest value an option accepts."""

    minimum: int | float
    maximum: int | float


@dataclass(frozen=True)
class External:
    """``Annotated[bool, External()]``: the option makes the factory read a file or the network (such
    as pretrained weights). A translator file holds all its weights, so a spec read from one is
    rebuilt with these options at their defaults: a file never makes the zoo open anything."""


# Without Bounds, an int option is refused beyond what torch's 64-bit sizes and seeds can hold.
INT64 = Bounds(-(2**63), 2**63 - 1)
WIDTH_LIMIT = 4096
Width = Annotated[int, Bounds(1, WIDTH_LIMIT)]
"""A channel-width option (``ngf``, ``ndf``): 1 to 4096, 64 times the paper's width."""


def _unannotated(annotation: Any) -> tuple[Any, tuple[Any, ...]]:
    """An annotation without ``Annotated``, and the metadata ``Annotated`` gave it."""
    if typing.get_origin(annotation) is Annotated:
        return typing.get_args(annotation)[0], annotation.__metadata__
    return annotation, ()


@dataclass(frozen=True)
class Option:
    """One keyword option of a factory: its name, annotation and default."""

    name: str
    annotation: Any
    default: Any

    @property
    def type(self) -> Any:
        """The annotation without ``Annotated``: ``int``, ``float``, ``bool``, ``str`` or a ``Literal``."""
        return _unannotated(self.annotation)[0]

    @property
    def bounds(self) -> Bounds | None:
        """The option's range: its :class:`Bounds`, else 64 bits for an int, else None."""
        declared = [m for m in _unannotated(self.annotation)[1] if isinstance(m, Bounds)]
        return declared[0] if declared else INT64 if self.type is int else None

    @property
    def external(self) -> bool:
        """Whether the option makes the factory read a file or the network (see :class:`External`)."""
        return any(isinstance(m, External) for m in _unannotated(self.annotation)[1])

    @property
    def choices(self) -> tuple | None:
        """The allowed values of a ``Literal`` option, else None."""
        return typing.get_args(self.type) if typing.get_origin(self.type) is Literal else None

    @property
    def type_name(self) -> str:
        if self.choices is not None:
            return "|".join(str(c) for c in self.choices)
        return self.type.__name__

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type_name, "default": self.default}

    def coerce(self, value: Any) -> Any:
        """Convert a spec string (or a Python value) to the option's type; raise ValueError if invalid."""
        converted = self._convert(value)
        bounds = self.bounds
        if bounds is not None and not bounds.minimum <= converted <= bounds.maximum:
            raise ValueError(f"must be from {bounds.minimum} to {bounds.maximum}, not {converted}")
        return converted

    def _convert(self, value: Any) -> Any:
        choices = self.choices
        if choices is not None:
            for choice in choices:
                if value == choice or str(value) == str(choice):
                    return choice
            near = close_matches(str(value), map(str, choices))
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            raise ValueError(f"must be one of {', '.join(map(str, choices))}, not {value!r}{hint}")
        if self.type is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(f"must be true or false, not {value!r}")
        if self.type is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(f"must be an integer, not {value!r}")
            try:
                return int(value) if not isinstance(value, str) else int(value.strip(), 10)
            except ValueError:
                raise ValueError(f"must be an integer, not {value!r}") from None
        if self.type is float:
            if isinstance(value, bool):
                raise ValueError(f"must be a number, not {value!r}")
            try:
                number = float(value)
            except ValueError:
                raise ValueError(f"must be a number, not {value!r}") from None
            if number != number or number in (float("inf"), float("-inf")):
                raise ValueError(f"must be a finite number, not {value!r}")
            return number
        return str(value)


_SIMPLE_TYPES = (int, float, bool, str)


def _is_supported(annotation: Any) -> bool:
    annotation, metadata = _unannotated(annotation)
    for marker in metadata:
        if isinstance(marker, Bounds) and annotation not in (int, float):
            return False
        if not isinstance(marker, (Bounds, External)):
            return False
    if annotation in _SIMPLE_TYPES:
        return True
    if typing.get_origin(annotation) is Literal:
        return all(isinstance(c, (str, int, bool)) for c in typing.get_args(annotation))
    return False


def _option_annotation(factory: Callable, param: inspect.Parameter, where: str) -> Any:
    """An option's annotation, evaluated if it is a string (``from __future__ import annotations``).

    Only option annotations are evaluated: a return annotation imported under TYPE_CHECKING must
    not stop a plugin from registering.
    """
    annotation = param.annotation
    if not isinstance(annotation, str):
        return annotation
    # A class is its own factory (a dataset class, say): its __init__'s module holds the names.
    function = factory.__init__ if inspect.isclass(factory) else inspect.unwrap(factory)
    namespace = getattr(function, "__globals__", {})
    try:
        return eval(annotation, dict(namespace))  # noqa: S307 - the plugin's own annotation text
    except Exception as error:
        raise PluginError(f"{where}: option {param.name!r}: cannot evaluate annotation {annotation!r} ({error})") from None


def factory_options(kind: str, name: str, factory: Callable) -> tuple[Option, ...]:
    """Read and check a factory's signature; return its keyword options in signature order."""
    where = f"{kind} {name!r}"
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError) as error:
        raise PluginError(f"{where}: cannot read the factory's signature ({error})") from None
    params = list(signature.parameters.values())
    leading = FACTORY_ARGUMENTS[kind]
    positional = [p.name for p in params[: len(leading)]]
    if tuple(positional) != leading:
        raise PluginError(f"{where}: the factory must take ({', '.join(leading)}) first, not ({', '.join(positional)})")
    options = []
    for param in params[len(leading):]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise PluginError(f"{where}: option {param.name!r}: *args/**kwargs cannot be validated; name every option")
        if param.default is param.empty:
            raise PluginError(f"{where}: option {param.name!r} needs a default value")
        annotation = _option_annotation(factory, param, where)
        if not _is_supported(annotation):
            raise PluginError(
                f"{where}: option {param.name!r} must be annotated int, float, bool, str or Literal[...], "
                "optionally Annotated with Bounds (int, float) or External"
            )
        option = Option(param.name, annotation, param.default)
        try:
            option.coerce(param.default)
        except ValueError as error:
            raise PluginError(f"{where}: the default of option {param.name!r} {error}") from None
        options.append(option)
    return tuple(options)


class LazyFactory:
    """A factory named by its import path, ``"package.module:function"``, and imported when it is first
    called or its options are read. Registered in place of the function, it keeps a plugin's modules,
    and torch with them, out of what only lists components: every ``--help``, ``zoo list``, ``zoo data
    list``. Its signature is checked when it is imported, not when it is registered.

    Keyword ``attributes`` are attributes of the factory that listings read, given here so that reading
    them imports nothing (a dataset's ``info``); any other attribute is the imported factory's own.
    """

    def __init__(self, path: str, **attributes: Any) -> None:
        if not isinstance(path, str) or not IMPORT_PATH.fullmatch(path):
            raise PluginError(f"a LazyFactory takes an import path 'package.module:function', not {path!r}")
        self.path = path
        self.attributes = attributes
        self._factory: Callable | None = None

    def load(self) -> Callable:
        """The factory itself, its module imported on the first call."""
        if self._factory is None:
            module, _, name = self.path.partition(":")
            try:
                factory = getattr(importlib.import_module(module), name)
            except Exception as error:  # the plugin's module fails to import, or lacks the name
                raise PluginError(f"cannot import the factory {self.path!r}: {type(error).__name__}: {error}") from None
            if not callable(factory):
                raise PluginError(f"the factory {self.path!r} is not callable")
            self._factory = factory
        return self._factory

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.load()(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        # Asked only for what the instance itself lacks: a declared attribute, else the factory's.
        declared = self.__dict__.get("attributes", {})
        if name in declared:
            return declared[name]
        if name.startswith("__"):  # copy and pickle probe for dunders: never import for those
            raise AttributeError(name)
        return getattr(self.load(), name)

    def __repr__(self) -> str:
        return f"LazyFactory({self.path!r})"


@dataclass(frozen=True)
class Component:
    """A registered factory with its kind, names, options and the plugin that registered it."""

    kind: Kind
    name: str
    factory: Callable
    aliases: tuple[str, ...]
    summary: str
    plugin: str

    @functools.cached_property
    def options(self) -> tuple[Option, ...]:
        """The factory's keyword options in signature order (reading them imports a :class:`LazyFactory`)."""
        factory = self.factory.load() if isinstance(self.factory, LazyFactory) else self.factory
        return factory_options(self.kind, self.name, factory)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "aliases": list(self.aliases),
            "summary": self.summary,
            "plugin": self.plugin,
            "options": [option.as_dict() for option in self.options],
        }

    def option(self, key: str) -> Option:
        """The option named ``key``; a SpecError naming the close matches otherwise."""
        for option in self.options:
            if option.name == key:
                return option
        valid = [o.name for o in self.options]
        hint = did_you_mean(key, valid) if valid else f"{self.name} takes no options"
        raise SpecError(f"{self.kind} {self.name!r} has no option {key!r}; {hint}")

    def coerce_options(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Validate and convert option values; keys in signature order."""
        values = {}
        for key, value in raw.items():
            option = self.option(key)
            try:
                values[key] = option.coerce(value)
            except ValueError as error:
                raise SpecError(f"{self.kind} {self.name!r}: option {key!r} {error}") from None
        # The order is read only where there are values: a part without options imports no LazyFactory.
        return dict(sorted(values.items(), key=lambda item: [o.name for o in self.options].index(item[0])))

    def non_default(self, values: dict[str, Any]) -> dict[str, Any]:
        """The options whose value differs from the factory default (what a canonical spec keeps)."""
        return {k: v for k, v in values.items() if v != self.option(k).coerce(self.option(k).default)}

    def build(self, *args: Any, **options: Any) -> Any:
        """Call the factory with validated options."""
        return self.factory(*args, **self.coerce_options(options))


class NameTaken(PluginError):
    """A plugin registers a name (or alias) that another plugin's component already has."""

    def __init__(self, kind: str, label: str, plugin: str, taken: Component) -> None:
        super().__init__(
            f"{kind} name {label!r} from plugin {plugin!r} is already registered as a {taken.kind} by plugin {taken.plugin!r}"
        )
        self.kind, self.label, self.plugin, self.taken = kind, label, plugin, taken


class Registry:
    """Components by name and alias, unique across kinds."""

    def __init__(self) -> None:
        self._components: dict[str, Component] = {}
        self._lookup: dict[str, Component] = {}

    def register(
        self,
        kind: Kind,
        name: str,
        factory: Callable,
        *,
        aliases: typing.Iterable[str] = (),
        summary: str = "",
        plugin: str = "<runtime>",
    ) -> Component:
        """Validate and add one component; raise PluginError on a bad name, duplicate or signature
        (a :class:`LazyFactory`'s signature is checked when it is first imported)."""
        if kind not in KINDS:
            raise PluginError(f"plugin {plugin!r}: unknown kind {kind!r}; kinds are {', '.join(KINDS)}")
        aliases = tuple(aliases)
        for label in (name, *aliases):
            if not isinstance(label, str) or not NAME_PATTERN.fullmatch(label):
                raise PluginError(
                    f"plugin {plugin!r}: {kind} name {label!r} is invalid; names are lower case letters, "
                    "digits and underscores, starting with a letter"
                )
            taken = self._lookup.get(label)
            if taken is not None:
                raise NameTaken(kind, label, plugin, taken)
        if len(set(aliases) | {name}) != len(aliases) + 1:
            raise PluginError(f"plugin {plugin!r}: {kind} {name!r} repeats a name among its aliases")
        if not callable(factory):
            raise PluginError(f"plugin {plugin!r}: the factory of {kind} {name!r} is not callable")
        summary = " ".join(str(summary).split())
        component = Component(kind, name, factory, aliases, summary, plugin)
        if not isinstance(factory, LazyFactory):
            component.options  # noqa: B018 - a function's signature is checked at once, a LazyFactory's on import
        self._components[name] = component
        for label in (name, *aliases):
            self._lookup[label] = component
        return component

    def get(self, name: str, kind: Kind | None = None) -> Component:
        """The component called ``name`` (or an alias of it); a SpecError with close matches otherwise."""
        component = self._lookup.get(name)
        if component is not None and (kind is None or component.kind == kind):
            return component
        if component is not None:
            raise SpecError(
                f"{name!r} is {_article(component.kind)} {component.kind}, not {_article(kind)} {kind}; "
                f"{kind}s: {', '.join(self.names(kind)) or 'none installed'}"
            )
        labels = [label for label, c in self._lookup.items() if kind is None or c.kind == kind]
        raise SpecError(f"unknown {kind or 'component'} {name!r}; {did_you_mean(name, labels)}")

    def names(self, kind: Kind | None = None) -> list[str]:
        """Sorted primary names, optionally of one kind."""
        return sorted(c.name for c in self._components.values() if kind is None or c.kind == kind)

    def components(self, kind: Kind | None = None, pattern: str | None = None) -> list[Component]:
        """Components sorted by kind then name; ``pattern`` is a shell wildcard on names and aliases."""
        found = [
            c
            for c in self._components.values()
            if (kind is None or c.kind == kind)
            and (pattern is None or any(fnmatch.fnmatchcase(label, pattern) for label in (c.name, *c.aliases)))
        ]
        return sorted(found, key=lambda c: (KINDS.index(c.kind), c.name))

    def __contains__(self, name: object) -> bool:
        return name in self._lookup

    def __len__(self) -> int:
        return len(self._components)
