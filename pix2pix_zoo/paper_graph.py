"""Paper mode written with plain operators, so that an ONNX graph computes it in any runtime.

Paper mode normalises each batch by its own statistics and keeps dropout active and random (see
:func:`pix2pix_zoo.translator.inference_mode`). ONNX's ``BatchNormalization`` and ``Dropout`` carry
that only through their ``training_mode`` flags, which inference runtimes may ignore: onnxruntime's
default graph optimisations remove every ``Dropout`` node, whatever the flag says, and converters to
other runtimes drop training mode. So the export replaces them with layers whose traced form is
plain arithmetic (``ReduceMean``, ``Sub``, ``Mul``, ``Sqrt``) and sampling (``RandomUniformLike``),
which no optimiser may remove, and checks that nothing else in the generator depends on training.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from pix2pix_zoo.cpu_kernels import change_classes
from pix2pix_zoo.errors import ZooError


class BatchStatisticsNorm(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` as train mode computes it (the batch's mean and biased variance per
    channel, never the running statistics, which it leaves alone) in training and eval alike."""

    def forward(self, input: Tensor) -> Tensor:
        mean = input.mean((0, 2, 3), keepdim=True)
        centred = input - mean
        variance = (centred * centred).mean((0, 2, 3), keepdim=True)
        output = centred * torch.rsqrt(variance + self.eps)
        if self.affine:
            output = output * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return output


class SampledDropout(nn.Dropout):
    """``nn.Dropout`` as train mode computes it (each element kept with probability ``1 - p`` and
    scaled by ``1 / (1 - p)``) in training and eval alike, drawing its mask with ``torch.rand_like``:
    the same distribution as ``nn.Dropout``, not the same masks for a seed."""

    def forward(self, input: Tensor) -> Tensor:
        if self.p >= 1:
            return input * 0
        kept = torch.rand_like(input) >= self.p
        return input * kept * (1.0 / (1.0 - self.p))


_PLAIN = {nn.BatchNorm2d: BatchStatisticsNorm, nn.Dropout: SampledDropout}


def paper_mode_graph(generator: nn.Module, example: Tensor) -> nn.Module:
    """A copy of ``generator`` (on ``example``'s device and dtype) that computes paper mode whether it
    is in training or eval mode, in layers an ONNX export keeps (see the module's docstring);
    ``generator`` is left as it was.

    Raises :class:`~pix2pix_zoo.errors.ZooError` in one line when the copy still depends on the
    training flag: a batch norm or dropout other than the 2-d ones (named), or a forward that asks
    ``self.training`` itself (found by running ``example`` in both modes with the same seed).
    """
    copied = copy.deepcopy(generator).to(device=example.device, dtype=example.dtype)
    change_classes(copied, lambda layer: _PLAIN.get(type(layer)))
    others = sorted({type(layer).__name__ for layer in copied.modules()
                     if isinstance(layer, (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd))
                     and type(layer) not in _PLAIN.values()})
    if others:
        raise ZooError(f"--mode paper cannot be exported to ONNX: the generator has {', '.join(others)} layers, "
                       "which the zoo writes as plain operators only for BatchNorm2d and Dropout; "
                       "use --format torchscript")
    outputs = []
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        for training in (True, False):
            torch.manual_seed(0)
            outputs.append(copied.train(training)(example))
    if not torch.allclose(outputs[0], outputs[1], rtol=1e-4, atol=1e-5):
        raise ZooError("--mode paper cannot be exported to ONNX: the generator's forward computes something else "
                       "in training mode beyond its BatchNorm2d and Dropout layers; use --format torchscript")
    return copied.eval()
