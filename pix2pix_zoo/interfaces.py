"""The contracts between the core and its plugins.

Generators and discriminators are plain ``torch.nn.Module`` objects with one extra attribute each
(checked when a spec is built); objectives and datasets subclass the bases below.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:  # the contracts import without torch: `zoo list` and `zoo data list` read them
    from torch import Tensor

Direction = Literal["AtoB", "BtoA"]


@runtime_checkable
class Generator(Protocol):
    """``(N, in_channels, H, W)`` in [-1, 1] -> ``(N, out_channels, H, W)`` in [-1, 1]."""

    size_multiple: int
    """H and W must be multiples of this (256 for an 8-level U-Net)."""

    def __call__(self, x: Tensor) -> Tensor: ...


@runtime_checkable
class ActivationCheckpointing(Protocol):
    """An optional capability of a generator: ``zoo train --activation-checkpointing`` calls
    ``set_activation_checkpointing(True)`` before training, and refuses a generator without it.

    While enabled, in training mode with gradients on (:func:`pix2pix_zoo.recompute.applies`), the
    generator frees its intermediate activations after the forward pass and recomputes them in the
    backward pass, segment by segment (:func:`pix2pix_zoo.recompute.recompute`). It must change
    nothing else: the same state dict, the same outputs and gradients to rounding (dropout masks
    included), running statistics updated once per forward pass; evaluation and inference as without it.
    """

    def set_activation_checkpointing(self, enabled: bool) -> None: ...


@runtime_checkable
class Discriminator(Protocol):
    """``(N, in_channels, H, W)`` -> ``(N, 1, h, w)`` logits, one per receptive-field patch."""

    receptive_field: int
    """Side in pixels of the input patch that one output logit sees (286 for the ImageGAN)."""

    def __call__(self, x: Tensor) -> Tensor: ...


class GeneratorLoss(NamedTuple):
    """The generator's total loss and its named terms (for logging; already weighted)."""

    total: Tensor
    terms: dict[str, Tensor]


class Objective(abc.ABC):
    """What a run optimises, and therefore whether there is a discriminator and what it sees.

    ``conditional`` objectives show the discriminator the input and the image side by side
    (channels concatenated, x first), unconditional ones the image alone.
    """

    conditional: bool = False
    uses_discriminator: bool = True

    def discriminator_in_channels(self, in_channels: int, out_channels: int) -> int:
        """Channels of the discriminator's input for a generator ``in_channels -> out_channels``."""
        return in_channels + out_channels if self.conditional else out_channels

    def discriminator_input(self, x: Tensor, y: Tensor) -> Tensor:
        """What the discriminator judges for the pair (input ``x``, real or generated ``y``)."""
        import torch  # here, not at the top: resolving a spec builds its objective without torch

        return torch.cat([x, y], dim=1) if self.conditional else y

    @abc.abstractmethod
    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """The discriminator's loss on logits for real and generated pairs."""

    @abc.abstractmethod
    def generator_loss(self, fake: Tensor, target: Tensor, fake_logits: Tensor | None) -> GeneratorLoss:
        """The generator's loss; ``fake_logits`` is None when ``uses_discriminator`` is False."""


@dataclass(frozen=True)
class DatasetInfo:
    """What a paired dataset is: channels of A and B, default direction, where it comes from.

    A dataset factory carries its info as the attribute ``info`` (see :func:`describe_dataset`), so
    that ``zoo data`` can list it without opening anything.
    """

    name: str
    a_channels: int = 3
    b_channels: int = 3
    default_direction: Direction = "AtoB"
    task: str = ""
    """What A and B are, ``"A <-> B"`` (``"photo <-> architectural labels"``)."""
    url: str | None = None
    """A tar archive holding one folder named like the dataset (``facades/train/...``)."""
    sha256: str | None = None
    license: str = ""
    source: str = ""
    """Who made the data and what to cite."""
    splits: tuple[str, ...] = field(default=("train", "val", "test"))
    sizes: Mapping[str, int] = field(default_factory=dict, hash=False)
    """Approximate number of pairs per split."""
    download_size: int | None = None
    """Approximate size of the archive at ``url`` in bytes."""
    manual_download: str = ""
    """For data the zoo may not download: one line saying how to get it."""
    reads_your_files: bool = False
    """It reads files the user names (``--data NAME:PATH``); nothing is downloaded or made."""
    codec: str = ""
    """The registered :class:`ImageCodec` that shows the pairs as pictures when the dataset is used in
    its default direction (``""``: A and B are plain grey or RGB images). Reversed, the pairs are
    shown channel by channel, since a codec describes one direction's input and output."""


DatasetFactory = TypeVar("DatasetFactory", bound=Callable[..., "PairedDataset"])


def describe_dataset(
    info: DatasetInfo, *, prepare: Callable[..., Path] | None = None
) -> Callable[[DatasetFactory], DatasetFactory]:
    """Decorate a dataset factory with its ``info`` and, for data built locally, a ``prepare`` function.

    ``prepare(output=..., **sources)`` builds the dataset in ``output`` from files the user
    obtained (``zoo data prepare NAME --SOURCE DIR ...``) and returns that folder.
    """

    def attach(factory: DatasetFactory) -> DatasetFactory:
        factory.info = info  # type: ignore[attr-defined]
        factory.prepare = prepare  # type: ignore[attr-defined]
        return factory

    return attach


class ImageCodec(abc.ABC):
    """Between pictures and a translator's tensors, for data that are not plain grey or RGB images.

    Colourisation is the example: the generator sees the L channel of a Lab photo and predicts its
    a and b channels, and neither is a picture by itself. A codec says how an RGB picture becomes
    the generator's input (``zoo translate`` on a user's photos) and how an input, with an output or
    a target, looks as RGB (sample grids, ``zoo translate``'s results). Tensors are ``[N, C, H, W]``:
    the generator's side in [-1, 1], pictures in [0, 1].
    """

    @abc.abstractmethod
    def encode(self, rgb: Tensor) -> Tensor:
        """RGB pictures ``[N, 3, H, W]`` in [0, 1] -> the generator's input in [-1, 1]."""

    @abc.abstractmethod
    def render(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """The generator's input ``x`` with an output or target ``y`` for it -> RGB ``[N, 3, H, W]`` in
        [0, 1]; ``y=None`` shows the input alone."""


class PairedDataset(abc.ABC):
    """A map-style dataset of aligned pairs, decoded but not augmented: what torch's ``DataLoader``
    takes (``__len__`` and ``__getitem__``), without subclassing torch's ``Dataset``, so that the
    contracts import without torch.

    Item ``i`` is a dict ``{"a": Tensor[C_a, H, W], "b": Tensor[C_b, H, W], "name": str}`` of
    ``uint8`` pixels (channels as ``info`` says, A and B of the same size). Direction, resizing,
    cropping, flipping and the conversion to [-1, 1] are the engine's, in batches on the training
    device, so a loader worker only reads and decodes. ``name`` identifies the pair (a relative path).
    """

    info: DatasetInfo

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def __getitem__(self, index: int) -> dict: ...

    def pair_size(self, index: int) -> tuple[int, int]:
        """``(H, W)`` of pair ``index``. The engine asks only when the preprocessing keeps sizes
        (``--preprocess none``/``scale_width``) and a batch holds several pairs; this decodes the
        pair, and readers that can read a size from a file's header override it."""
        height, width = self[index]["a"].shape[-2:]
        return int(height), int(width)
