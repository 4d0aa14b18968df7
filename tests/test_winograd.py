"""Winograd F(4x4, 4x4): the transforms are exact, the convolution and all its gradients equal
F.conv2d's (to float64 rounding; within the documented bound in float32), and only the layers it
pays for move."""

from __future__ import annotations

import copy
import json
import random
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from pix2pix_zoo.engine.checkpoint import latest_checkpoint
from pix2pix_zoo.engine.config import TrainConfig
from pix2pix_zoo.engine.cpu_tuning import tune_for_cpu, use_winograd_convolutions
from pix2pix_zoo.engine.trainer import Trainer
from pix2pix_zoo.engine.winograd import KERNEL, POINTS, TILE, WinogradConv2d, eligible, toom_cook, winograd_conv2d
from pix2pix_zoo.spec import resolve


@pytest.mark.parametrize("m, r, points", [(2, 3, (0, 1, -1)), (TILE, KERNEL, POINTS)], ids=["F(2,3)", "F(4,4)"])
def test_the_transforms_compute_the_correlation_exactly(m, r, points):
    a_t, g, b_t = toom_cook(m, r, tuple(Fraction(p) for p in points))
    n = m + r - 1
    assert (len(a_t), len(a_t[0]), len(g), len(g[0]), len(b_t), len(b_t[0])) == (m, n, n, r, n, n)
    rng = random.Random(0)
    for _ in range(5):
        d = [Fraction(rng.randint(-50, 50), rng.randint(1, 9)) for _ in range(n)]
        w = [Fraction(rng.randint(-50, 50), rng.randint(1, 9)) for _ in range(r)]
        transformed_w = [sum(row[k] * w[k] for k in range(r)) for row in g]
        transformed_d = [sum(row[k] * d[k] for k in range(n)) for row in b_t]
        y = [sum(a_t[i][j] * transformed_w[j] * transformed_d[j] for j in range(n)) for i in range(m)]
        assert y == [sum(w[k] * d[i + k] for k in range(r)) for i in range(m)]


def test_too_few_points_is_an_error():
    with pytest.raises(ValueError, match="F\\(4, 4\\) needs 6 finite points, got 5"):
        toom_cook(4, 4, POINTS[:-1])


@pytest.mark.parametrize("batch, channels, out_channels, height, width, padding", [
    (1, 3, 5, 9, 13, 1),     # tiles cut at both edges
    (2, 4, 6, 8, 8, 0),      # no padding
    (3, 2, 3, 4, 4, 2),      # wider padding, batch > 1
    (1, 5, 2, 16, 7, 1),     # non-square
], ids=str)
@pytest.mark.parametrize("bias", [True, False])
def test_forward_and_every_gradient_equal_conv2d_in_float64(batch, channels, out_channels, height, width, padding,
                                                            bias):
    torch.manual_seed(0)
    x = torch.randn(batch, channels, height, width, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(out_channels, channels, KERNEL, KERNEL, dtype=torch.float64, requires_grad=True)
    b = torch.randn(out_channels, dtype=torch.float64, requires_grad=True) if bias else None
    ours = winograd_conv2d(x, weight, b, (padding, padding))
    theirs = F.conv2d(x, weight, b, stride=1, padding=padding)
    assert ours.shape == theirs.shape
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-10)
    grad = torch.randn_like(theirs)
    inputs = [x, weight] + ([b] if bias else [])
    ours_grads, theirs_grads = torch.autograd.grad(ours, inputs, grad), torch.autograd.grad(theirs, inputs, grad)
    for ours_grad, theirs_grad in zip(ours_grads, theirs_grads):
        assert torch.allclose(ours_grad, theirs_grad, rtol=0, atol=1e-9)


def test_float32_error_stays_within_the_documented_bound():
    """PatchGAN's 256->512 layer on 32x32 maps: about 1e-5 of the largest output (direct: 3e-7)."""
    torch.manual_seed(0)
    x = torch.randn(1, 256, 32, 32, dtype=torch.float64)
    weight = torch.randn(512, 256, KERNEL, KERNEL, dtype=torch.float64) * 0.02
    exact = F.conv2d(x, weight, None, 1, 1)
    ours = winograd_conv2d(x.float().contiguous(memory_format=torch.channels_last), weight.float(), None, (1, 1))
    error = ((ours.double() - exact).abs().max() / exact.abs().max()).item()
    direct = ((F.conv2d(x.float(), weight.float(), None, 1, 1).double() - exact).abs().max()
              / exact.abs().max()).item()
    assert error < 5e-5 and direct < error  # the cost is real and bounded
    assert ours.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("layer, expected", [
    (nn.Conv2d(256, 512, 4, 1, 1, bias=False), True),
    (nn.Conv2d(128, 128, 4, 1, 2), True),
    (nn.Conv2d(64, 512, 4, 1, 1), False),        # too narrow to gain
    (nn.Conv2d(512, 1, 4, 1, 1), False),         # PatchGAN's last layer: one output channel
    (nn.Conv2d(256, 512, 4, 2, 1), False),       # stride 2
    (nn.Conv2d(256, 512, 3, 1, 1), False),       # 3x3
    (nn.Conv2d(256, 512, 4, 1, 1, dilation=2), False),
    (nn.Conv2d(256, 512, 4, 1, 1, groups=2), False),
    (nn.Conv2d(256, 512, 4, 1, 1, padding_mode="reflect"), False),
    (nn.Conv2d(256, 512, 4, 1, "same"), False),
    (nn.ConvTranspose2d(256, 512, 4, 1, 1), False),
], ids=repr)
def test_only_the_layers_it_pays_for_are_eligible(layer, expected):
    assert eligible(layer) is expected


def test_patchgan_moves_its_wide_stride_1_layer_and_keeps_its_state_dict():
    torch.manual_seed(0)
    models = resolve("unet_256(ngf=4)+patch70+l1cgan").build(3, 3)
    discriminator = models.discriminator
    reference = copy.deepcopy(discriminator)
    before = {k: v.clone() for k, v in discriminator.state_dict().items()}
    x, y = torch.rand(1, 3, 256, 256) * 2 - 1, torch.rand(1, 3, 256, 256) * 2 - 1
    tuning = tune_for_cpu(models, x, y)
    assert tuning["winograd_convolutions"] == {"generator": 0, "discriminator": 1}
    moved = [m for m in discriminator.modules() if isinstance(m, WinogradConv2d)]
    assert [(m.in_channels, m.out_channels) for m in moved] == [(256, 512)]
    assert use_winograd_convolutions(discriminator) == 0  # nothing left to move
    assert discriminator.state_dict().keys() == before.keys()
    assert all(torch.equal(v, before[k]) for k, v in discriminator.state_dict().items())
    pair = models.objective.discriminator_input(x, y)
    ours, theirs = discriminator(pair), reference(pair)
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-4 * theirs.abs().max().item())
    ours.square().mean().backward(), theirs.square().mean().backward()
    # Whole-network gradients are compared in norm: a rounding difference can flip the slope of a
    # LeakyReLU at an input within rounding of zero, which moves single elements by a lot (the
    # layer-by-layer comparisons above are the exact ones). Measured worst: 5e-3 over eight seeds.
    for (name, p), q in zip(discriminator.named_parameters(), reference.parameters()):
        assert ((p.grad - q.grad).norm() / q.grad.norm()).item() < 1e-2, name


def test_a_tuned_run_with_a_winograd_layer_says_so_and_resumes_exactly(tmp_path):
    # 256x256 pairs, so PatchGAN's fourth layer (128->256 at ndf=32) sees 32x32 maps, too large for
    # the native kernels and wide enough for Winograd.
    def config(max_steps: int) -> TrainConfig:
        return TrainConfig(spec="unet_256(ngf=2)+patch70(ndf=32)+l1cgan", data="synthfacades",
                           data_options={"size": 256, "count": 4}, preprocess="none", flip=False, epochs=1,
                           epochs_decay=1, batch_size=1, max_steps=max_steps, workers=0, device="cpu")

    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    Trainer(config(4), straight, progress=False).fit()
    tuning = json.loads((straight / "config.json").read_text())["cpu_tuning"]
    assert tuning["winograd_convolutions"] == {"generator": 0, "discriminator": 1}
    Trainer(config(2), stopped, progress=False).fit()
    Trainer(TrainConfig(), stopped, resume=True, max_steps=4, progress=False).fit()
    for name in ("discriminator", "generator"):
        ours = load_file(latest_checkpoint(stopped / "checkpoints") / f"{name}.safetensors")
        reference = load_file(latest_checkpoint(straight / "checkpoints") / f"{name}.safetensors")
        assert ours.keys() == reference.keys()
        assert all(torch.equal(ours[key], reference[key]) for key in ours), name
