"""Everything a training run is, as one JSON-serialisable record (``runs/<name>/config.json``)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from pix2pix_zoo.data import PreprocessMode
from pix2pix_zoo.errors import SpecError, ZooError

Precision = Literal["fp32", "bf16", "fp16"]
OptimizerImpl = Literal["auto", "fused", "foreach", "plain"]
SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # a dataset's splits name folders: no paths
MAX_SEED = 2**63 - 1  # torch seeds are 64-bit; the data order's seed + epoch must fit too
# Settings whose `zoo train` option is not --<name with dashes>.
OPTION_FLAGS = {"data_options": "--data-opt", "flip": "--no-flip", "optimizer_impl": "--optimizer"}
# Settings added after runs were first saved: a config.json without one predates it and gets its default.
ADDED_SETTINGS = ("lpips_weights", "activation_checkpointing")


class ConfigFileError(ZooError):
    """Saved settings (a run's config.json) are malformed: a key is missing, unknown or of the wrong type."""


def option_flag(name: str) -> str:
    """The ``zoo train`` option that sets the config field ``name``."""
    return OPTION_FLAGS.get(name, f"--{name.replace('_', '-')}")


def _matches(value: Any, annotation: Any) -> bool:
    """Whether JSON ``value`` fits the field type ``annotation`` (a Literal's choices are checked later)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(annotation))
    if origin is Literal:
        return True
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, origin or annotation)


def _describe(annotation: Any) -> str:
    """``annotation`` in words, for an error message."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in typing.get_args(annotation))
    words = {int: "an integer", float: "a number", bool: "true or false", str: "a string", dict: "an object",
             type(None): "null"}
    return words.get(typing.get_origin(annotation) or annotation, "a choice")


def _literal_choices(annotation: Any) -> list[str]:
    """The strings a ``Literal`` (possibly inside ``Optional``) allows; empty for other types."""
    if typing.get_origin(annotation) is Literal:
        return [c for c in typing.get_args(annotation) if isinstance(c, str)]
    return [c for arg in typing.get_args(annotation) for c in _literal_choices(arg)]


def _fits_beside_choices(value: Any, annotation: Any) -> bool:
    """Whether ``value`` fits a type that a union allows beside its Literal (``int | Literal["auto"]``)."""
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return False
    return any(_matches(value, arg) for arg in typing.get_args(annotation) if typing.get_origin(arg) is not Literal)


@dataclass
class TrainConfig:
    """A run's settings. Defaults are the paper's (and the reference's ``train.py`` for pix2pix).

    Epochs follow the reference: epochs are numbered from 1; epoch ``e`` trains at
    ``lr * (1 - max(0, e - epochs) / (epochs_decay + 1))``, so the rate is constant for ``epochs``
    epochs and then falls linearly, reaching zero just after the last of the ``epochs_decay`` epochs.
    """

    spec: str = "unet_256+patch70+l1cgan"
    data: str = "synthfacades"
    data_options: dict[str, Any] = field(default_factory=dict)
    direction: Literal["AtoB", "BtoA"] | None = None  # None: the dataset's default
    epochs: int = 100
    epochs_decay: int = 100
    max_steps: int | None = None  # stop early after this many steps (smoke tests, benchmarks)
    batch_size: int = 1
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    preprocess: PreprocessMode = "resize_and_crop"
    load_size: int = 286
    crop_size: int = 256
    flip: bool = True
    seed: int = 0
    precision: Precision = "fp32"
    channels_last: bool = False
    compile: bool = False
    cpu_tuning: bool = True  # on a CPU in fp32 eager mode: see pix2pix_zoo.engine.cpu_tuning
    activation_checkpointing: bool = False  # recompute G's activations in the backward pass (pix2pix_zoo.recompute)
    optimizer_impl: OptimizerImpl = "auto"
    ema_decay: float = 0.0  # 0: no EMA of the generator
    workers: int | Literal["auto"] = "auto"  # loader processes; auto: engine.loading.loader_workers
    device: str = "auto"
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 0  # steps; 0: at the end of every epoch only
    keep_checkpoints: int = 2
    skip_bad: bool = False
    eval_split: str | None = None  # None: "test", else "val", whichever the dataset has
    lpips_weights: str | None = None  # a file of LPIPS weights: LPIPS in the held-out figures (pix2pix_zoo.perceptual)

    def validate(self, label: Callable[[str], str] | None = None) -> TrainConfig:
        """Raise SpecError on values that cannot work; return self.

        ``label`` names a setting in the message (default: its command-line option, e.g. ``--lr``).
        """
        name_of = label or option_flag
        for name, annotation in typing.get_type_hints(type(self)).items():
            choices = _literal_choices(annotation)
            value = getattr(self, name)
            if choices and value is not None and value not in choices and not _fits_beside_choices(value, annotation):
                raise SpecError(f"{name_of(name)} must be one of {', '.join(choices)}, not {value!r}")
            if isinstance(value, float) and not math.isfinite(value):
                raise SpecError(f"{name_of(name)} must be a finite number, not {value}")
        positive = ("batch_size", "crop_size", "load_size", "log_every", "sample_every", "keep_checkpoints")
        for name in positive:
            if getattr(self, name) < 1:
                raise SpecError(f"{name_of(name)} must be at least 1, not {getattr(self, name)}")
        for name in ("workers", "checkpoint_every", "epochs", "epochs_decay"):
            if isinstance(getattr(self, name), int) and getattr(self, name) < 0:
                raise SpecError(f"{name_of(name)} must be 0 or more, not {getattr(self, name)}")
        if self.epochs + self.epochs_decay < 1:
            raise SpecError(f"{name_of('epochs')} and {name_of('epochs_decay')} must give at least one epoch")
        if self.max_steps is not None and self.max_steps < 1:
            raise SpecError(f"{name_of('max_steps')} must be at least 1, not {self.max_steps}")
        if not 0 <= self.seed <= MAX_SEED:
            raise SpecError(f"{name_of('seed')} must be from 0 to {MAX_SEED}, not {self.seed}")
        for name in ("ema_decay", "beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise SpecError(f"{name_of(name)} must be in [0, 1), not {getattr(self, name)}")
        if self.lr <= 0:
            raise SpecError(f"{name_of('lr')} must be positive, not {self.lr}")
        if self.eval_split is not None and not SPLIT_NAME.fullmatch(str(self.eval_split)):
            raise SpecError(f"{name_of('eval_split')} must be a split name such as test or val, not {self.eval_split!r}")
        if self.lpips_weights is not None and not str(self.lpips_weights).strip():
            raise SpecError(f"{name_of('lpips_weights')} must name a file, not {self.lpips_weights!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "the config") -> TrainConfig:
        """A validated config from saved settings (e.g. a run's config.json); a ConfigFileError naming
        the first key that is missing, unknown or of the wrong type. A setting of ``ADDED_SETTINGS``
        that is missing takes its default (see :func:`with_added_settings`)."""
        if not isinstance(data, dict):
            raise ConfigFileError(f"{where} must hold an object of settings, not {type(data).__name__}")
        data = with_added_settings(data)
        hints = typing.get_type_hints(cls)
        for key in data:
            if key not in hints:
                raise ConfigFileError(f"{where} has an unknown setting {key!r}")
        values = {}
        for key, annotation in hints.items():
            if key not in data:
                raise ConfigFileError(f"{where} has no setting {key!r}")
            value = data[key]
            if not _matches(value, annotation):
                raise ConfigFileError(f"{key!r} in {where} must be {_describe(annotation)}, not {json.dumps(value)}")
            values[key] = float(value) if annotation is float else value
        config = cls(**values)
        try:
            return config.validate(lambda key: f"{key!r} in {where}")
        except SpecError as error:
            raise ConfigFileError(str(error)) from None

    def lr_factor(self, epoch: int) -> float:
        """Multiplier of the base learning rate during 1-based ``epoch``."""
        return 1.0 - max(0, epoch - self.epochs) / (self.epochs_decay + 1)

    @property
    def total_epochs(self) -> int:
        return self.epochs + self.epochs_decay


def with_added_settings(saved: dict[str, Any]) -> dict[str, Any]:
    """Saved settings (a config.json's) with the default of each setting added since they were
    written (``ADDED_SETTINGS``) that they lack: what the run had, as it predates them."""
    defaults = TrainConfig()
    return {**{name: getattr(defaults, name) for name in ADDED_SETTINGS if name not in saved}, **saved}
