"""Building blocks shared by network plugins: normalisation choice and the reference initialisation.

These are generic helpers, not components: the core registers no network itself.
"""

from __future__ import annotations

import functools
from typing import Callable, Literal

import torch
from torch import nn

Norm = Literal["batch", "instance", "none", "syncbatch"]
NORMS: tuple[str, ...] = ("batch", "instance", "none", "syncbatch")


def norm_layer(norm: Norm) -> Callable[[int], nn.Module]:
    """Return a constructor ``channels -> module`` for the named normalisation.

    As in the reference implementation, batch norm is affine with running statistics and instance
    norm has neither (``affine=False, track_running_stats=False``), so instance-norm networks carry
    no normalisation parameters at all. ``syncbatch`` builds plain batch norm layers that the
    distributed trainer converts to ``SyncBatchNorm``.
    """
    if norm in ("batch", "syncbatch"):
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if norm == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if norm == "none":
        return lambda channels: nn.Identity()
    raise ValueError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")


def conv_bias(norm: Norm) -> bool:
    """Whether a convolution followed by this norm needs its own bias.

    Batch norm has an affine shift, so the conv bias is redundant (the reference omits it).
    Instance norm without affine parameters keeps the bias, as the reference does. With no norm at
    all the reference omits the bias too, which leaves those layers without any shift; we keep it
    (a deliberate difference: no published weights use ``norm=none``).
    """
    return norm not in ("batch", "syncbatch")


@torch.no_grad()
def init_weights(module: nn.Module, std: float = 0.02) -> nn.Module:
    """The reference's ``normal`` initialisation, which the paper also prescribes.

    Convolution (and transposed convolution, and linear) weights ~ N(0, std); batch-norm weights
    ~ N(1, std); all their biases 0. Other modules are left as they are. A module on the meta
    device holds no values to initialise, and is left alone (``normal_`` there would import
    ``torch._dynamo``, 1.7 s, into a process that only loads weights).
    """
    if any(parameter.is_meta for parameter in module.parameters()):
        return module
    for m in module.modules():
        if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return module


def check_size_multiple(image: torch.Tensor, multiple: int) -> None:
    """Raise ValueError unless the image's height and width are multiples of ``multiple``.

    Generators call this first: otherwise a U-Net fails deep inside on a skip concatenation, or
    returns an image of another size than its input without a word.
    """
    height, width = image.shape[-2:]
    if height % multiple or width % multiple:
        raise ValueError(f"input size {height}x{width} is not a multiple of {multiple}")


def check_width(name: str, value: int) -> int:
    """Return a channel width option after checking it is at least 1 (ValueError names the option)."""
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {value}")
    return value
