"""A U-Net generator whose encoder is any timm model that can run ``features_only``.

The encoder is ``timm.create_model(backbone, features_only=True, in_chans=in_channels)``; its
``feature_info`` (channels and reductions of each stage) shapes the decoder, so one factory covers
ResNets, ConvNeXts, EfficientNets, RegNets, MobileNets and the rest of ``timm.list_models()``.

Choices, briefly:

* The decoder walks the features from the coarsest up: upsample (nearest) to the next feature's
  size, concatenate it, one 3x3 conv-norm-ReLU; then, with no skips left, the same blocks up to the
  input's resolution by factors of 2, and a 3x3 conv to ``out_channels`` with tanh. Nearest
  upsampling plus a conv avoids the checkerboard patterns of transposed convolutions.
* A decoder block at reduction ``r`` (``r`` = input side / feature side) is ``ngf * min(r, 8)``
  wide: ``ngf`` at full resolution, doubling per halving, capped at ``8 * ngf`` as in the U-Net.
* The generator's [-1, 1] input is mapped to the normalisation the backbone's pretrained weights
  expect (its ``pretrained_cfg`` mean and std; their averages for other than 3 channels), always, so
  that a network behaves the same whether its encoder weights came from timm or from a checkpoint.
* Only the decoder gets the reference initialisation (:func:`pix2pix_zoo.layers.init_weights`);
  the encoder keeps timm's own initialisation or its pretrained weights.
* timm is imported on first use, not when the plugin loads, so ``zoo`` starts as fast without it.
* No activation checkpointing (``zoo train --activation-checkpointing`` refuses this generator in one
  line): the encoder's stages are run by timm's ``features_only`` wrappers (stage lists, forward
  hooks, ``forward_intermediates``, by backbone), and timm's own ``set_grad_checkpointing`` recomputes
  them with their batch norms updating the running statistics a second time, so training would
  not be the same as without it; recomputing the decoder alone would leave the encoder's
  activations, most of them at high resolution, in memory.

Backbones with a fixed input size (most vision transformers) only work at that size;
``size_multiple`` is the backbone's largest reduction, which is all a convolutional one needs.
"""

from __future__ import annotations

import fnmatch
import itertools
import os
import warnings
from pathlib import Path
from typing import Annotated

import torch
import torch.nn.functional as F
from torch import nn

from pix2pix_zoo.components import External, Width, did_you_mean
from pix2pix_zoo.errors import SpecError, ZooError
from pix2pix_zoo.layers import Norm, check_size_multiple, check_width, conv_bias, init_weights, norm_layer
from pix2pix_zoo.weights import read_weights


class BackboneWeightsError(ZooError):
    """A backbone's pretrained weights cannot be obtained, or a weights file does not fit it."""


def backbones(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """The backbone names timm knows (``timm.list_models(pattern)``), sorted.

    ``pretrained=True`` lists the tagged names that have pretrained weights
    (``timm.list_pretrained``), such as ``resnet18.a1_in1k``; an untagged name means its default tag.
    """
    import timm

    if pretrained:
        return sorted(name for name in timm.list_pretrained() if fnmatch.fnmatchcase(name, pattern))
    return sorted(timm.list_models(pattern))


def _check_backbone(name: str) -> None:
    """Raise SpecError unless timm knows ``name`` (a model, or a model with a pretrained tag)."""
    base, _, tag = name.partition(".")
    known = backbones()
    if base not in known:
        raise SpecError(f"unknown timm backbone {name!r}; {did_you_mean(base, known)} (see timm.list_models())")
    if tag and name not in backbones(f"{base}.*", pretrained=True):
        tags = backbones(f"{base}.*", pretrained=True) or ["none"]
        raise SpecError(f"timm has no weights tagged {name!r}; {did_you_mean(name, tags)}")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _read_backbone_weights(backbone: str, path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, checked against the full timm model they must belong to.

    timm loads a ``features_only`` encoder non-strictly (the classifier is dropped), so a file of
    another network would load nothing without a word; hence this check. It compares names and
    shapes with the model built on the meta device (no memory, no init), ignoring the classifier,
    the input conv (timm adapts it to ``in_chans`` itself) and batch-norm step counters. The file
    must be in timm's own layout, as timm saves it and the Hugging Face hub serves it.
    """
    import timm

    if not path.is_file():
        raise BackboneWeightsError(f"weights file {str(path)!r} for backbone {backbone!r} does not exist")
    tensors = read_weights(path)
    with torch.device("meta"):
        reference = timm.create_model(backbone, pretrained=False)
    config = reference.pretrained_cfg
    ignored = tuple(f"{name}." for key in ("classifier", "first_conv") for name in _names(config.get(key)))
    expected = {
        key: value.shape
        for key, value in reference.state_dict().items()
        if not key.startswith(ignored) and not key.endswith("num_batches_tracked")
    }
    missing = [key for key in expected if key not in tensors]
    reshaped = [key for key in expected if key in tensors and tensors[key].shape != expected[key]]
    if missing or reshaped:
        problems = [f"{len(missing)} of its {len(expected)} tensors missing (e.g. {missing[0]!r})"] if missing else []
        if reshaped:
            key = reshaped[0]
            problems.append(
                f"{len(reshaped)} of another shape (e.g. {key!r}: {tuple(tensors[key].shape)}, not {tuple(expected[key])})"
            )
        raise BackboneWeightsError(
            f"{path} does not hold timm weights for backbone {backbone!r}: {'; '.join(problems)}"
        )
    return tensors


def _names(value: str | tuple[str, ...] | None) -> tuple[str, ...]:
    return () if value is None else (value,) if isinstance(value, str) else tuple(value)


def _unavailable(backbone: str, error: BaseException) -> BackboneWeightsError:
    from huggingface_hub import constants
    from huggingface_hub.errors import LocalEntryNotFoundError
    from timm.models import get_pretrained_cfg

    config = get_pretrained_cfg(backbone)
    source = (config.hf_hub_id or config.url) if config is not None else None
    where = f" ({source})" if source else ""
    if isinstance(error, LocalEntryNotFoundError):
        offline = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "the hub cannot be reached"
        reason = f"they are not in the Hugging Face cache and {offline}"
    else:
        reason = _first_line(error)
    return BackboneWeightsError(
        f"cannot get the pretrained weights of timm backbone {backbone!r}{where}: {reason}; run once with "
        "network access to cache them (under HF_HOME), or pass weights=PATH to a local file of them"
    )


def _create_encoder(backbone: str, in_channels: int, pretrained: bool, weights: str) -> nn.Module:
    import timm
    from timm.models import get_pretrained_cfg

    options: dict = {"features_only": True, "in_chans": in_channels}
    if weights:
        # timm's state-dict override: it still filters the checkpoint and adapts the input conv.
        state = _read_backbone_weights(backbone, Path(os.path.expanduser(weights)))
        options.update(pretrained=True, pretrained_cfg_overlay={"state_dict": state})
    elif pretrained:
        config = get_pretrained_cfg(backbone)
        if config is None or not (config.hf_hub_id or config.url or config.file):
            raise BackboneWeightsError(
                f"timm has no pretrained weights for backbone {backbone!r}; use pretrained=false or weights=PATH"
            )
        options["pretrained"] = True
    try:
        with warnings.catch_warnings():
            # On the meta device (``zoo info``) loading is a no-op that torch warns about per tensor;
            # the weights are still fetched and checked, which is the point there.
            warnings.filterwarnings("ignore", message=".*copying from a non-meta parameter")
            return timm.create_model(backbone, **options)
    except OSError as error:  # the hub's errors (offline, not cached, HTTP) are all OSErrors
        if not options.get("pretrained"):
            raise
        raise _unavailable(backbone, error) from None
    except RuntimeError as error:
        if weights and "state_dict" in str(error):
            raise BackboneWeightsError(f"{weights} does not load into backbone {backbone!r}: {_first_line(error)}") from None
        raise SpecError(f"timm backbone {backbone!r} cannot be a features_only encoder: {_first_line(error)}") from None
    except (AssertionError, TypeError, ValueError, NotImplementedError) as error:
        raise SpecError(f"timm backbone {backbone!r} cannot be a features_only encoder: {_first_line(error)}") from None


class DecoderBlock(nn.Module):
    """Upsample to ``size``, concatenate the skip feature if any, then 3x3 conv-norm-ReLU."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, norm: Norm):
        super().__init__()
        self.conv = nn.Conv2d(in_channels + skip_channels, out_channels, 3, padding=1, bias=conv_bias(norm))
        self.norm = norm_layer(norm)(out_channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, size: tuple[int, int], skip: torch.Tensor | None = None) -> torch.Tensor:
        if tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x, size=size, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], 1)
        return self.act(self.norm(self.conv(x)))


def _width(ngf: int, reduction: int) -> int:
    return ngf * min(reduction, 8)


def _upsampling_factors(reduction: int) -> list[int]:
    """From a reduction to 1: factors of 2 while they divide it, then whatever odd factor is left."""
    factors = []
    while reduction > 1:
        factor = 2 if reduction % 2 == 0 else reduction
        factors.append(factor)
        reduction //= factor
    return factors


class TimmUNet(nn.Module):
    """A timm ``features_only`` encoder (``self.encoder``), a U-Net decoder, and a size check."""

    def __init__(self, encoder: nn.Module, in_channels: int, out_channels: int, *, backbone: str, ngf: int, norm: Norm):
        super().__init__()
        from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
        from timm.layers import Format

        self.encoder = encoder
        channels = [int(c) for c in encoder.feature_info.channels()]
        reductions = [int(r) for r in encoder.feature_info.reduction()]
        for finer, coarser in itertools.pairwise(reductions):
            if coarser % finer:
                raise SpecError(
                    f"timm backbone {backbone!r} has feature reductions {reductions}; each must divide the next"
                )
        self.size_multiple = max(reductions)
        self.channels_last = getattr(encoder, "output_fmt", Format.NCHW) == Format.NHWC

        config = getattr(encoder, "pretrained_cfg", {}) or {}
        mean = torch.tensor(config.get("mean", IMAGENET_DEFAULT_MEAN), dtype=torch.float32)
        std = torch.tensor(config.get("std", IMAGENET_DEFAULT_STD), dtype=torch.float32)
        if len(mean) != in_channels:
            mean, std = mean.mean().repeat(in_channels), std.mean().repeat(in_channels)
        # Derived from the backbone, so not part of the state dict (checkpoints stay encoder + decoder).
        self.register_buffer("mean", mean.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, -1, 1, 1), persistent=False)

        blocks, width = [], channels[-1]
        for skip_channels, reduction in zip(reversed(channels[:-1]), reversed(reductions[:-1])):
            blocks.append(DecoderBlock(width, skip_channels, _width(ngf, reduction), norm))
            width = _width(ngf, reduction)
        self.num_skips = len(blocks)
        self.factors = _upsampling_factors(reductions[0])
        reduction = reductions[0]
        for factor in self.factors:
            reduction //= factor
            blocks.append(DecoderBlock(width, 0, _width(ngf, reduction), norm))
            width = _width(ngf, reduction)
        self.decoder = init_weights(nn.ModuleList(blocks))
        self.head = init_weights(nn.Sequential(nn.Conv2d(width, out_channels, 3, padding=1), nn.Tanh()))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        check_size_multiple(image, self.size_multiple)
        features = self.encoder(((image + 1) / 2 - self.mean) / self.std)
        if self.channels_last:
            features = [f.permute(0, 3, 1, 2) for f in features]
        x = features[-1]
        skips = list(reversed(features[:-1]))
        for block, skip in zip(self.decoder[: self.num_skips], skips):
            x = block(x, skip.shape[-2:], skip)
        for block, factor in zip(self.decoder[self.num_skips:], self.factors):
            x = block(x, (x.shape[-2] * factor, x.shape[-1] * factor))
        return self.head(x)


def timm_unet(
    in_channels: int,
    out_channels: int,
    *,
    backbone: str = "resnet34",
    pretrained: Annotated[bool, External()] = False,
    weights: Annotated[str, External()] = "",
    ngf: Width = 64,
    norm: Norm = "batch",
) -> TimmUNet:
    """A U-Net decoder on the timm encoder ``backbone`` (any name from ``timm.list_models()``).

    ``pretrained`` loads timm's pretrained encoder weights through the Hugging Face hub cache
    (nothing is downloaded when HF_HUB_OFFLINE is set); ``weights`` loads a local file of timm
    weights for that backbone instead (safetensors or a weights-only ``.pth``), pretrained or not.
    Both are :class:`~pix2pix_zoo.components.External`: a translator file rebuilds the network
    without them, since its own weights replace the encoder's. ``ngf`` is the decoder's width at
    full resolution; ``norm`` the decoder's normalisation (the encoder keeps its own).
    """
    check_width("ngf", ngf)
    _check_backbone(backbone)
    encoder = _create_encoder(backbone, in_channels, pretrained, weights)
    return TimmUNet(encoder, in_channels, out_channels, backbone=backbone, ngf=ngf, norm=norm)
