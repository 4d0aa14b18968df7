"""Spec strings: ``GENERATOR[+DISCRIMINATOR]+OBJECTIVE``, each part with optional keyword options.

Grammar (whitespace around tokens is ignored)::

    spec   := part "+" part [ "+" part ]
    part   := NAME [ "(" [ option { "," option } ] ")" ]
    option := KEY "=" VALUE          VALUE: any characters but = , ( ) and whitespace

Example: ``unet_256(ngf=32,norm=instance)+patch70+l1cgan(lambda_l1=50)``. Resolving a spec checks
every name against the registry (in the right kind), every option against the factory's signature,
coerces values from its annotations, and checks the objective/discriminator pairing. Every resolved
spec has one canonical string: aliases resolved, options in signature order, defaults dropped.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pix2pix_zoo.components import Component, Registry, format_value
from pix2pix_zoo.errors import PluginError, SpecError
from pix2pix_zoo.interfaces import Objective
from pix2pix_zoo.plugins import get_host, get_registry

if TYPE_CHECKING:  # torch is imported where networks are built: resolving a spec (zoo list) needs none
    from torch import nn

_NAME = re.compile(r"[A-Za-z0-9_]+")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_VALUE = re.compile(r"[^=,()\s]+")
_PART = re.compile(r"\s*(?P<name>[^\s()]*)\s*(?:\((?P<options>[^()]*)\))?\s*", re.DOTALL)

# Images have 1 to 4 channels, multispectral ones hundreds; more is a mistake (or a hostile file).
MAX_CHANNELS = 4096
GRAMMAR_HINT = "a spec is GENERATOR[+DISCRIMINATOR]+OBJECTIVE, e.g. unet_256+patch70+l1cgan or unet_256(ngf=32)+l1"


@dataclass(frozen=True)
class ParsedPart:
    """One part as written: a name and raw option strings (nothing checked against the registry)."""

    name: str
    options: tuple[tuple[str, str], ...] = ()


def _split_parts(text: str) -> list[str]:
    parts, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
            if depth > 1:
                raise SpecError(f"spec {text!r}: nested parentheses; {GRAMMAR_HINT}")
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise SpecError(f"spec {text!r}: ')' without '('; {GRAMMAR_HINT}")
        elif char == "+" and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if depth:
        raise SpecError(f"spec {text!r}: '(' without ')'; {GRAMMAR_HINT}")
    parts.append("".join(current))
    return parts


def parse(text: str) -> list[ParsedPart]:
    """Split a spec string into parts and options; syntax only. Raises SpecError."""
    if not isinstance(text, str) or not text.strip():
        raise SpecError(f"empty spec; {GRAMMAR_HINT}")
    parsed = []
    for raw in _split_parts(text):
        match = _PART.fullmatch(raw)
        name = match.group("name") if match else ""
        if not match or not _NAME.fullmatch(name):
            shown = raw.strip() or "(empty)"
            raise SpecError(f"spec {text!r}: part {shown!r} is not NAME or NAME(key=value,...); {GRAMMAR_HINT}")
        options: dict[str, str] = {}
        body = match.group("options")
        if body is not None and body.strip():
            for item in body.split(","):
                key, sep, value = (piece.strip() for piece in item.partition("="))
                if not sep or not _KEY.fullmatch(key) or not _VALUE.fullmatch(value):
                    raise SpecError(f"spec {text!r}: option {item.strip()!r} of {name!r} is not key=value")
                if key in options:
                    raise SpecError(f"spec {text!r}: option {key!r} of {name!r} is given twice")
                options[key] = value
        parsed.append(ParsedPart(name, tuple(options.items())))
    return parsed


@dataclass(frozen=True)
class SpecPart:
    """A resolved part: the component and the options that differ from its defaults."""

    component: Component
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def name(self) -> str:
        return self.component.name

    def kwargs(self) -> dict[str, Any]:
        return dict(self.options)

    def __str__(self) -> str:
        if not self.options:
            return self.name
        return f"{self.name}({','.join(f'{k}={format_value(v)}' for k, v in self.options)})"

    def self_contained(self) -> SpecPart:
        """This part with every :class:`~pix2pix_zoo.components.External` option at its default."""
        return SpecPart(self.component, tuple((k, v) for k, v in self.options if not self.component.option(k).external))


@dataclass(frozen=True)
class Pix2Pix:
    """The networks and objective a spec builds, ready for the engine."""

    spec: Spec
    generator: nn.Module
    discriminator: nn.Module | None
    objective: Objective
    in_channels: int
    out_channels: int


@dataclass(frozen=True)
class Spec:
    """A validated spec; ``str(spec)`` is its canonical form."""

    generator: SpecPart
    discriminator: SpecPart | None
    objective: SpecPart

    @property
    def parts(self) -> tuple[SpecPart, ...]:
        return tuple(p for p in (self.generator, self.discriminator, self.objective) if p is not None)

    def __str__(self) -> str:
        return "+".join(str(p) for p in self.parts)

    def self_contained(self) -> Spec:
        """The spec without the options that load weights from a file or the network: what rebuilds
        a network whose every weight comes from one translator file."""
        return dataclasses.replace(
            self,
            generator=self.generator.self_contained(),
            discriminator=self.discriminator and self.discriminator.self_contained(),
            objective=self.objective.self_contained(),
        )

    def build_objective(self) -> Objective:
        objective = _call(self.objective)
        if not isinstance(objective, Objective):
            raise PluginError(
                f"objective {self.objective.name!r} of plugin {self.objective.component.plugin!r} "
                "did not return a pix2pix_zoo.interfaces.Objective"
            )
        return objective

    def build_generator(self, in_channels: int = 3, out_channels: int = 3) -> nn.Module:
        """Instantiate the generator alone."""
        for name, channels in (("in_channels", in_channels), ("out_channels", out_channels)):
            _check_channels(name, channels)
        generator = _call(self.generator, in_channels, out_channels)
        _check_attribute(generator, "size_multiple", self.generator)
        return generator

    def build(self, in_channels: int = 3, out_channels: int = 3) -> Pix2Pix:
        """Instantiate generator, discriminator (sized by the objective) and objective."""
        generator = self.build_generator(in_channels, out_channels)
        objective = self.build_objective()
        discriminator = None
        if self.discriminator is not None:
            d_channels = objective.discriminator_in_channels(in_channels, out_channels)
            discriminator = _call(self.discriminator, d_channels)
            _check_attribute(discriminator, "receptive_field", self.discriminator)
        return Pix2Pix(self, generator, discriminator, objective, in_channels, out_channels)


def _check_channels(name: str, channels: Any) -> None:
    """Raise a SpecError naming ``name`` unless ``channels`` is an int from 1 to :data:`MAX_CHANNELS`."""
    if not isinstance(channels, int) or isinstance(channels, bool) or not 1 <= channels <= MAX_CHANNELS:
        raise SpecError(f"{name} must be an integer from 1 to {MAX_CHANNELS}, not {channels!r}")


def _call(part: SpecPart, *args: Any) -> Any:
    """Call a part's factory; a ValueError it raises (an option value out of range) is a SpecError."""
    try:
        return part.component.factory(*args, **part.kwargs())
    except ValueError as error:
        raise SpecError(f"{part.component.kind} {str(part)!r}: {error}") from None


def _check_attribute(module: Any, attribute: str, part: SpecPart) -> None:
    from torch import nn

    value = getattr(module, attribute, None)
    if not isinstance(module, nn.Module) or not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise PluginError(
            f"{part.component.kind} {part.name!r} of plugin {part.component.plugin!r} must return an "
            f"nn.Module with a positive int attribute {attribute!r}"
        )


def _resolve_part(text: str, part: ParsedPart, kind: str, registry: Registry) -> SpecPart:
    try:
        component = registry.get(part.name, kind)  # type: ignore[arg-type]
        values = component.coerce_options(dict(part.options))
    except SpecError as error:
        raise SpecError(f"spec {text!r}: {error}") from None
    return SpecPart(component, tuple(component.non_default(values).items()))


def resolve(text: str | Spec, registry: Registry | None = None) -> Spec:
    """Parse and validate a spec string against the registry (the installed plugins by default)."""
    if isinstance(text, Spec):
        return text
    if registry is None:
        registry = get_registry()
    parts = parse(text)
    if len(parts) not in (2, 3):
        raise SpecError(f"spec {text!r} has {len(parts)} part(s); {GRAMMAR_HINT}")
    generator = _resolve_part(text, parts[0], "generator", registry)
    discriminator = _resolve_part(text, parts[1], "discriminator", registry) if len(parts) == 3 else None
    objective_part = _resolve_part(text, parts[-1], "objective", registry)
    spec = Spec(generator, discriminator, objective_part)
    try:
        objective = spec.build_objective()
    except SpecError as error:
        raise SpecError(f"spec {text!r}: {error}") from None
    if objective.uses_discriminator and discriminator is None:
        choices = ", ".join(registry.names("discriminator")) or "none installed"
        raise SpecError(
            f"spec {text!r}: objective {objective_part.name!r} trains against a discriminator but the spec "
            f"names none; put one between {generator} and {objective_part} ({choices})"
        )
    if not objective.uses_discriminator and discriminator is not None:
        raise SpecError(
            f"spec {text!r}: objective {objective_part.name!r} uses no discriminator; drop "
            f"{discriminator.name!r} ({generator}+{objective_part})"
        )
    return spec


def canonical(text: str, registry: Registry | None = None) -> str:
    """The canonical form of a spec string."""
    return str(resolve(text, registry))


def _parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def describe(text: str | Spec, in_channels: int = 3, out_channels: int = 3) -> dict[str, Any]:
    """Facts about what a spec builds (``zoo info``); networks are built on the meta device, so no
    weights are allocated or initialised."""
    import torch

    spec = resolve(text)
    with torch.device("meta"):
        models = spec.build(in_channels, out_channels)

    def part(p: SpecPart) -> dict[str, Any]:
        return {"name": p.name, "options": dict(p.options), "plugin": p.component.plugin}

    discriminator = None
    if spec.discriminator is not None and models.discriminator is not None:
        discriminator = part(spec.discriminator) | {
            "parameters": _parameters(models.discriminator),
            "receptive_field": models.discriminator.receptive_field,
            "in_channels": models.objective.discriminator_in_channels(in_channels, out_channels),
        }
    return {
        "spec": str(spec),
        "in_channels": in_channels,
        "out_channels": out_channels,
        "generator": part(spec.generator)
        | {"parameters": _parameters(models.generator), "size_multiple": models.generator.size_multiple},
        "discriminator": discriminator,
        "objective": part(spec.objective) | {"conditional": models.objective.conditional},
    }


def spec_distributions(spec: Spec) -> dict[str, str]:
    """``{distribution: version}`` of the third-party plugins whose components ``spec`` uses: what a
    card and a run's config.json record, so that a machine without them can say what to install."""
    host = get_host()
    found = {}
    for part in spec.parts:
        record = host.records.get(part.component.plugin)
        if record is not None and record.distribution and not record.builtin:
            found[record.distribution] = record.version or ""
    return found
