"""The deployable unit: a generator's weights in safetensors with its card in the file's metadata.

The card's essentials (canonical spec, channels, direction, normalisation, size multiple) live in
the safetensors ``__metadata__``, so ``model.safetensors`` alone rebuilds and runs the generator.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from pix2pix_zoo.errors import ZooError

InferenceMode = Literal["eval", "paper"]
WEIGHTS_FILE = "model.safetensors"
CARD_KEY = "pix2pix_zoo.card"


@dataclass
class Card:
    """What a translator is; serialised as JSON into the weights file's metadata."""

    spec: str
    in_channels: int
    out_channels: int
    direction: str = "AtoB"
    size_multiple: int = 1
    normalisation: str = "[-1, 1]"
    inference_mode: InferenceMode = "paper"
    dataset: str = ""
    task: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    license: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Card:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


def save_translator(directory: Path, generator: nn.Module, card: Card) -> Path:
    """Write ``directory/model.safetensors`` (weights + card); atomically; return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / WEIGHTS_FILE
    temporary = directory / f".{WEIGHTS_FILE}.tmp"
    tensors = {k: v.detach().contiguous().cpu() for k, v in generator.state_dict().items()}
    save_file(tensors, temporary, metadata={CARD_KEY: json.dumps(asdict(card), sort_keys=True)})
    temporary.replace(path)
    return path


def read_card(path: Path) -> Card:
    """The card stored in a translator's weights file."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        return Card.from_dict(json.loads(metadata[CARD_KEY]))
    except Exception as error:  # safetensors raises its own error types for corrupt files
        raise ZooError(f"{path} is not a pix2pix-zoo translator: {error}") from None


@contextlib.contextmanager
def inference_mode(generator: nn.Module, mode: InferenceMode) -> Iterator[nn.Module]:
    """Run a generator as ``eval`` (running statistics, no dropout) or as the ``paper`` does at test
    time (batch statistics and dropout, the reference test script's default) without changing it:
    in paper mode batch-norm running statistics are frozen (momentum 0) and restored afterwards.
    """
    was_training = generator.training
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone()) for m in norms]
    try:
        if mode == "eval":
            generator.eval()
        else:
            generator.train()
            for m in norms:
                m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch: unchanged
        with torch.no_grad():
            yield generator
    finally:
        for m, (momentum, tracked) in zip(norms, saved):
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)
        generator.train(was_training)
