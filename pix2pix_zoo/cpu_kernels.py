"""Convolutions on a CPU: where ATen's native kernels beat oneDNN, and moving a network's layers to
classes that use them. The translator uses these at inference; the trainer's CPU tuning
(:mod:`pix2pix_zoo.engine.cpu_tuning`, which measured them) builds on them for training.

oneDNN reorders a convolution's weights on every call, which on the small maps of a U-Net's inner
levels (512-1024 channels at 16x16 and less) costs more than the convolution; ATen's native im2col +
GEMM kernels do not. Moving a layer changes its class only: parameters, state-dict keys and
results (to float rounding) stay.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

SMALL_MAP = 256
"""Feature maps of at most this many positions (16x16) go to the native kernels."""


FEW_CHANNELS = 4
"""At inference, transposed convolutions with at most this many output channels (a U-Net's output
layer) go to the native kernels whatever their map: 128 -> 1-3 channels on a 128x128 map took
oneDNN 6.6-7.1 ms and the native kernel 1.0-2.6 ms at batch 1 (44 vs 5-10 ms at batch 4); at 16
channels oneDNN was faster."""


class InferenceConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` (same parameters and state dict) that picks, on each call, ATen's native
    kernel where it is faster than oneDNN (see :func:`use_native_kernels_where_faster`)."""

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        if _native_is_faster(input, False, self.out_channels):
            return torch.ops.aten._slow_conv2d_forward(input, weight, self.kernel_size, bias, self.stride, self.padding)
        return super()._conv_forward(input, weight, bias)


class InferenceConvTranspose2d(nn.ConvTranspose2d):
    """An ``nn.ConvTranspose2d`` (same parameters and state dict) that picks, on each call, ATen's
    native kernel where it is faster than oneDNN (see :func:`use_native_kernels_where_faster`)."""

    def forward(self, input: Tensor, output_size: Sequence[int] | None = None) -> Tensor:
        if not _native_is_faster(input, True, self.out_channels):
            return super().forward(input, output_size)
        output_padding = self._output_padding(input, output_size, list(self.stride), list(self.padding),
                                              list(self.kernel_size), 2, list(self.dilation))
        return torch.ops.aten.slow_conv_transpose2d(input, self.weight, self.kernel_size, self.bias, self.stride,
                                                    self.padding, output_padding, self.dilation)


def _native_is_faster(input: Tensor, transposed: bool, out_channels: int) -> bool:
    """Whether this call goes to the native kernel: a batch of CPU fp32 maps of at most
    :data:`SMALL_MAP` positions in all, or a transposed convolution to at most :data:`FEW_CHANNELS`
    channels; never while autocast, tracing or compiling, which want the usual operator."""
    if input.ndim != 4 or input.device.type != "cpu" or input.dtype != torch.float32:
        return False
    # Tracing covers torch.onnx.export's TorchScript path too; compiling covers torch.export's.
    if torch.is_autocast_enabled("cpu") or torch.jit.is_tracing() or torch.compiler.is_compiling():
        return False
    positions = input.shape[0] * input.shape[2] * input.shape[3]
    return positions <= SMALL_MAP or (transposed and out_channels <= FEW_CHANNELS)


_INFERENCE = {nn.Conv2d: InferenceConv2d, nn.ConvTranspose2d: InferenceConvTranspose2d}


def use_native_kernels_where_faster(module: nn.Module) -> int:
    """For inference on a CPU: move ``module``'s plain 2-d convolutions to classes that choose, on
    each call, ATen's native kernels where they beat oneDNN (in place); return how many moved.

    Unlike :func:`~pix2pix_zoo.engine.cpu_tuning.use_native_small_convolutions`, which the trainer
    applies for one input shape, the choice is made per call from the batch's shape, since a
    translator sees any size and batch: the native kernels work image by image, so at batch 8 only
    maps of 2x2 and less still gain. unet_256 at 256x256, batch 1: 194 -> 114 ms eval, 206 -> 133 ms
    in paper mode's train mode. Only layers the native kernels implement move (zero padding given as
    numbers, no dilation or groups). Parameters, state-dict keys and results (to float rounding)
    stay the same.
    """

    def inference_class(layer: nn.Module) -> type | None:
        chosen = _INFERENCE.get(type(layer))
        plain = (layer.padding_mode == "zeros" and isinstance(layer.padding, tuple) and layer.groups == 1
                 and all(d == 1 for d in layer.dilation)) if chosen else False
        return chosen if plain else None

    return change_classes(module, inference_class)


def change_classes(module: nn.Module, new_class: Callable[[nn.Module], type | None]) -> int:
    """Give each of ``module``'s layers the class ``new_class`` names for it (None: leave it); return
    how many changed. Parameters and state-dict keys stay; copies of the module keep the classes."""
    layers = [(layer, new_class(layer)) for layer in module.modules()]
    for layer, chosen in layers:
        if chosen is not None:
            layer.__class__ = chosen
    return sum(chosen is not None for _, chosen in layers)
