"""Training on a CPU: two things torch's defaults leave on the table, both measured by
``benchmarks/train_step.py`` (unet_256+patch70+l1cgan, 256x256, batch 1, 2-core Xeon):

* **Convolutions on small feature maps** (the U-Net's inner levels: 512-1024 channels at 16x16 and
  less) run up to 3x faster through ATen's native im2col + GEMM kernels than through oneDNN, which
  reorders their large weights on every call; on large maps oneDNN is as fast or faster. Measured
  forward + backward, oneDNN vs native, by the input map: transposed 1024->512 at 4x4 55 vs 20 ms,
  at 8x8 64 vs 33; 512->512 at 4x4 17 vs 6, at 16x16 22 vs 12; 256->512 at 32x32 15 vs 15;
  128->256 at 64x64 14 vs 17.
  :func:`use_native_small_convolutions` moves the layers whose input map has at most
  :data:`SMALL_MAP` positions to the native kernels; the large ones (the discriminator's) stay.
* **Freed memory going back to the kernel.** glibc hands large blocks back with ``munmap`` when they
  are freed, so every step faults in fresh zero-filled pages for the same tensors again.
  :func:`keep_freed_memory` keeps freed memory in the process.

Together, at batch 1: 1.84 -> 2.10 images/s for our step (the reference-style loop: 1.42); each
lever alone gave about 7% in a profile of the step.

Both change nothing but speed: the native kernels compute the same sums (results agree to float
rounding), the state dict keeps its keys, and which layers move depends only on the shapes, so a
resumed run makes the same choice. The trainer applies them on a CPU in fp32 eager mode (torch.compile,
channels_last and autocast have their own kernels).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

SMALL_MAP = 256
"""Feature maps of at most this many positions (16x16) go to the native kernels."""

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


@contextlib.contextmanager
def _without_onednn() -> Iterator[None]:
    previous = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = previous


class _NativeConvolution(torch.autograd.Function):
    """``aten.convolution`` forward and backward with oneDNN switched off, so ATen's own kernels run."""

    @staticmethod
    def forward(ctx, input, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
        ctx.save_for_backward(input, weight)
        ctx.settings = (None if bias is None else list(bias.shape), stride, padding, dilation, transposed,
                        output_padding, groups)
        with _without_onednn():
            return torch.ops.aten.convolution(input, weight, bias, stride, padding, dilation, transposed,
                                              output_padding, groups)

    @staticmethod
    def backward(ctx, grad_output):
        input, weight = ctx.saved_tensors
        bias_sizes, *settings = ctx.settings
        wanted = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], bias_sizes is not None and ctx.needs_input_grad[2]]
        with _without_onednn():
            grads = torch.ops.aten.convolution_backward(grad_output.contiguous(), input, weight, bias_sizes, *settings,
                                                        wanted)
        return (*grads, None, None, None, None, None, None)


class NativeConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` (same parameters and state dict) that runs on ATen's native CPU kernels."""

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return _NativeConvolution.apply(input, weight, bias, list(self.stride), list(self.padding),
                                        list(self.dilation), False, [0, 0], self.groups)


class NativeConvTranspose2d(nn.ConvTranspose2d):
    """An ``nn.ConvTranspose2d`` (same parameters and state dict) on ATen's native CPU kernels."""

    def forward(self, input: Tensor, output_size: Sequence[int] | None = None) -> Tensor:
        output_padding = self._output_padding(input, output_size, list(self.stride), list(self.padding),
                                              list(self.kernel_size), 2, list(self.dilation))
        return _NativeConvolution.apply(input, self.weight, self.bias, list(self.stride), list(self.padding),
                                        list(self.dilation), True, list(output_padding), self.groups)


_NATIVE = {nn.Conv2d: NativeConv2d, nn.ConvTranspose2d: NativeConvTranspose2d}


def use_native_small_convolutions(module: nn.Module, example: Tensor) -> int:
    """Move ``module``'s 2-d convolutions whose input map has at most :data:`SMALL_MAP` positions, for
    inputs shaped like ``example``, to the native kernels (in place); return how many moved.

    The layers keep their parameters and state-dict keys; only their class changes (to the
    subclasses above), so copies of the module (an EMA) move too.
    """
    positions: dict[nn.Module, int] = {}

    def record(layer: nn.Module, inputs: tuple, output: Tensor) -> None:
        positions[layer] = inputs[0].shape[-2] * inputs[0].shape[-1]

    layers = [m for m in module.modules() if type(m) in _NATIVE]
    hooks = [layer.register_forward_hook(record) for layer in layers]
    was_training = module.training
    try:
        module.eval()  # no batch-norm statistics or dropout draws spent on a shape probe
        with torch.no_grad():
            module(example)
    finally:
        module.train(was_training)
        for hook in hooks:
            hook.remove()
    moved = 0
    for layer, size in positions.items():
        # Zero padding given as numbers, which is all the native path implements here.
        if size <= SMALL_MAP and layer.padding_mode == "zeros" and isinstance(layer.padding, tuple):
            layer.__class__ = _NATIVE[type(layer)]
            moved += 1
    return moved


def keep_freed_memory() -> bool:
    """Tell glibc to keep freed memory in the process instead of returning large blocks to the
    kernel; return whether it could (False off glibc). Affects the whole process, for its lifetime."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**30))
