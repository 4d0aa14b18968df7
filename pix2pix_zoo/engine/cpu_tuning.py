"""Training on a CPU: what torch's defaults leave on the table, measured with
``benchmarks/train_step.py`` and profiles of its step (unet_256+patch70+l1cgan, 256x256, batch 1,
2-core Xeon):

* **Convolutions on small feature maps** (the U-Net's inner levels: 512-1024 channels at 16x16 and
  less) run up to 3x faster through ATen's native im2col + GEMM kernels than through oneDNN, which
  reorders their large weights on every call; on large maps oneDNN is as fast or faster. Measured
  forward + backward, oneDNN vs native, by the input map: transposed 1024->512 at 4x4 55 vs 20 ms,
  at 8x8 64 vs 33; 512->512 at 4x4 17 vs 6, at 16x16 22 vs 12; 256->512 at 32x32 15 vs 15;
  128->256 at 64x64 14 vs 17.
  :func:`use_native_small_convolutions` moves the layers whose input map has at most
  :data:`SMALL_MAP` positions to the native kernels; the large ones (the discriminator's) stay.
  Their transposed convolutions take their gradients from one unfold and two GEMMs
  (:func:`_transposed_backward`) instead of ATen's backward, which zero-fills and accumulates.
* **Activation reorders.** oneDNN computes in a channels-last layout; handed NCHW tensors, it
  reorders every input, output and gradient on every call. :func:`use_channels_last_convolutions`
  hands it channels-last activations instead (the weights stay as they are, so the state dict and
  the optimiser states do not change). That pays in the discriminator, a plain chain of large-map
  convolutions, batch norms and LeakyReLUs: per step its forward passes went from 56 to 50 ms
  (D's step) and 28 to 25 ms (G's step), its backward from 111 to 106 ms. It does not pay in the
  U-Net, whose skip concatenations, dropout and native small-map layers would convert back and forth
  (the step got 10-50 ms slower, whichever of its layers went channels-last; dropout would also draw
  its masks in another order), so the trainer leaves the generator alone.
* **Freed memory going back to the kernel.** glibc hands large blocks back with ``munmap`` when they
  are freed, so every step faults in fresh zero-filled pages for the same tensors again.
  :func:`~pix2pix_zoo.cpu_memory.keep_freed_memory` keeps freed memory in the process.
* **Fewer multiplications.** PatchGAN's 256->512 convolution (stride 1, 4x4, on 32x32 maps) is the
  step's largest single cost: nearly two thirds of D's multiplications, run three times forward and
  three times backward per step, already at the machine's GEMM speed. Winograd's F(4x4, 4x4)
  (:mod:`~pix2pix_zoo.engine.winograd`) needs 5.2x fewer multiplications for it; with its transforms
  it took forward + backward from 47 to 21 ms. :func:`use_winograd_convolutions` moves the stride-1
  4x4 convolutions wide enough to gain; the U-Net has none.

At batch 1 our step runs at 1.64 images/s without these and 2.35-2.40 with them (the reference-style
loop: 1.38-1.46), about 420 ms a step. What remains is close to this machine's floor with direct
convolutions: the large ones already run at 220-300 GFLOP/s, against a measured GEMM peak of
300-330; fused Adam over 57M parameters is memory-bound at about 35 ms. Winograd does not pay for
the stride-2 layers: as 2x2 convolutions of their space-to-depth input, F(4x4, 2x2) took the
128->256 layer on 64x64 maps from 13 to 16 ms forward + backward, the transforms costing more than
the products save.

None changes anything but speed: the kernels compute the same sums (results agree to float
rounding; Winograd's rounding error is about 1e-5 of the output's magnitude where a direct
convolution's is 3e-7), the state dict keeps its keys, and which layers move depends only on the
shapes, so a resumed run makes the same choice. The trainer applies them on a CPU in fp32 eager
mode (torch.compile, channels_last and autocast have their own kernels).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pix2pix_zoo.cpu_kernels import SMALL_MAP, change_classes
from pix2pix_zoo.cpu_memory import keep_freed_memory
from pix2pix_zoo.engine import winograd

if TYPE_CHECKING:
    from pix2pix_zoo.spec import Pix2Pix


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
        bias_sizes, stride, padding, dilation, transposed, output_padding, groups = ctx.settings
        wanted = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], bias_sizes is not None and ctx.needs_input_grad[2]]
        grad_output = grad_output.contiguous()
        if transposed and groups == 1:
            grads = _transposed_backward(grad_output, input, weight, stride, padding, dilation, wanted)
        else:
            with _without_onednn():
                grads = torch.ops.aten.convolution_backward(grad_output, input, weight, bias_sizes, stride, padding,
                                                            dilation, transposed, output_padding, groups, wanted)
        return (*grads, None, None, None, None, None, None)


def _transposed_backward(grad_output: Tensor, input: Tensor, weight: Tensor, stride: list[int], padding: list[int],
                         dilation: list[int], wanted: list[bool]) -> tuple[Tensor | None, ...]:
    """Gradients of a transposed convolution from one im2col of ``grad_output`` and two GEMMs.

    ATen's native backward unfolds ``grad_output`` twice and accumulates the weight gradient into a
    zero-filled buffer; for the U-Net's 1024x512x4x4 weights that zero fill alone cost 5 ms per
    layer (cold memory), and the G forward + backward went from 232 to 222 ms without it.
    The unfold is the exact adjoint of the forward's col2im (fold), whatever the output padding.
    """
    batch, in_channels = input.shape[:2]
    columns = F.unfold(grad_output, weight.shape[2:], dilation, padding, stride)  # (N, C_out*k*k, H_in*W_in)
    grad_input = grad_weight = grad_bias = None
    if wanted[0]:
        grad_input = torch.matmul(weight.reshape(in_channels, -1), columns).view_as(input)
    if wanted[1]:
        flat = input.reshape(batch, in_channels, -1)
        if batch == 1:
            grad_weight = flat[0] @ columns[0].t()
        else:
            grad_weight = torch.bmm(flat, columns.transpose(1, 2)).sum(0)
        grad_weight = grad_weight.view_as(weight)
    if wanted[2]:
        grad_bias = grad_output.sum((0, 2, 3))
    return grad_input, grad_weight, grad_bias


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


class ChannelsLastConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` (same parameters and state dict) that hands oneDNN channels-last activations."""

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return super()._conv_forward(input.contiguous(memory_format=torch.channels_last), weight, bias)


class ChannelsLastConvTranspose2d(nn.ConvTranspose2d):
    """An ``nn.ConvTranspose2d`` (same parameters and state dict) on channels-last activations."""

    def forward(self, input: Tensor, output_size: Sequence[int] | None = None) -> Tensor:
        return super().forward(input.contiguous(memory_format=torch.channels_last), output_size)


_CHANNELS_LAST = {nn.Conv2d: ChannelsLastConv2d, nn.ConvTranspose2d: ChannelsLastConvTranspose2d}


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


def use_winograd_convolutions(module: nn.Module) -> int:
    """Move ``module``'s stride-1 4x4 convolutions wide enough to gain (:func:`winograd.eligible`) to
    :class:`~pix2pix_zoo.engine.winograd.WinogradConv2d` (in place); return how many moved."""
    return change_classes(module, lambda layer: winograd.WinogradConv2d if winograd.eligible(layer) else None)


def use_channels_last_convolutions(module: nn.Module) -> int:
    """Make ``module``'s plain 2-d convolutions (not those moved to the native kernels or Winograd) take
    channels-last activations (in place); return how many changed. Their outputs come out
    channels-last too, so in a chain of them only the first converts anything."""
    return change_classes(module, lambda layer: _CHANNELS_LAST.get(type(layer)))


def tune_for_cpu(models: Pix2Pix, x: Tensor, y: Tensor, *, keep_memory: bool = True) -> dict[str, Any]:
    """All of the above, as the trainer applies them, for batches shaped like ``x`` -> ``y``: native
    kernels for small maps in G and D, then Winograd for the wide stride-1 4x4 convolutions left,
    channels-last activations in D's remaining convolutions, freed memory kept unless
    ``keep_memory`` is False. Returns what was done, for the run's config.

    With activation checkpointing the trainer passes ``keep_memory=False``: a heap that never hands
    memory back grows to the largest it ever was, fragments included, and measured, it ate what
    recomputing saves (unet_256+patch70 at 1024x1024, batch 1: a peak RSS of 3880 MiB without
    recomputation and 3900 with it; without kept memory 3430 and 3020)."""
    native = {"generator": use_native_small_convolutions(models.generator, x)}
    fast = {"generator": use_winograd_convolutions(models.generator)}
    tuning: dict[str, Any] = {"native_small_convolutions": native, "winograd_convolutions": fast}
    if models.discriminator is not None:
        native["discriminator"] = use_native_small_convolutions(
            models.discriminator, models.objective.discriminator_input(x, y))
        fast["discriminator"] = use_winograd_convolutions(models.discriminator)
        tuning["channels_last_convolutions"] = {"discriminator": use_channels_last_convolutions(models.discriminator)}
    tuning["keep_freed_memory"] = keep_freed_memory() if keep_memory else False
    return tuning
