"""Everything a training run is, as one JSON-serialisable record (``runs/<name>/config.json``)."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from pix2pix_zoo.data.augment import PreprocessMode
from pix2pix_zoo.errors import SpecError

Precision = Literal["fp32", "bf16", "fp16"]
OptimizerImpl = Literal["auto", "fused", "foreach", "plain"]


def _literal_choices(annotation: Any) -> list[str]:
    """The strings a ``Literal`` (possibly inside ``Optional``) allows; empty for other types."""
    if typing.get_origin(annotation) is Literal:
        return [c for c in typing.get_args(annotation) if isinstance(c, str)]
    return [c for arg in typing.get_args(annotation) for c in _literal_choices(arg)]


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
    optimizer_impl: OptimizerImpl = "auto"
    ema_decay: float = 0.0  # 0: no EMA of the generator
    workers: int = 2
    device: str = "auto"
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 0  # steps; 0: at the end of every epoch only
    keep_checkpoints: int = 2
    skip_bad: bool = False
    eval_split: str | None = None  # None: "test", else "val", whichever the dataset has

    def validate(self) -> TrainConfig:
        """Raise SpecError on values that cannot work; return self."""
        for name, annotation in typing.get_type_hints(type(self)).items():
            choices = _literal_choices(annotation)
            value = getattr(self, name)
            if choices and value is not None and value not in choices:
                raise SpecError(f"--{name.replace('_', '-')} must be one of {', '.join(choices)}, not {value!r}")
        positive = {"batch_size": self.batch_size, "crop_size": self.crop_size, "load_size": self.load_size,
                    "log_every": self.log_every, "sample_every": self.sample_every,
                    "keep_checkpoints": self.keep_checkpoints}
        for name, value in positive.items():
            if value < 1:
                raise SpecError(f"--{name.replace('_', '-')} must be at least 1, not {value}")
        if self.epochs < 0 or self.epochs_decay < 0 or self.epochs + self.epochs_decay < 1:
            raise SpecError("--epochs and --epochs-decay must be >= 0 and give at least one epoch")
        if self.max_steps is not None and self.max_steps < 1:
            raise SpecError(f"--max-steps must be at least 1, not {self.max_steps}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise SpecError(f"--ema-decay must be in [0, 1), not {self.ema_decay}")
        if self.lr <= 0:
            raise SpecError(f"--lr must be positive, not {self.lr}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def lr_factor(self, epoch: int) -> float:
        """Multiplier of the base learning rate during 1-based ``epoch``."""
        return 1.0 - max(0, epoch - self.epochs) / (self.epochs_decay + 1)

    @property
    def total_epochs(self) -> int:
        return self.epochs + self.epochs_decay

