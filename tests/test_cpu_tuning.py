"""CPU tuning: the native-kernel convolutions compute what oneDNN's do (forward and every gradient),
only small maps move, the state dict is untouched, and the trainer's choice is deterministic."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from pix2pix_zoo.engine.config import TrainConfig
from pix2pix_zoo.engine.cpu_tuning import (
    SMALL_MAP,
    NativeConv2d,
    NativeConvTranspose2d,
    keep_freed_memory,
    use_native_small_convolutions,
)
from pix2pix_zoo.engine.trainer import Trainer
from pix2pix_zoo.spec import resolve


@pytest.mark.parametrize("layer", [
    nn.Conv2d(6, 8, 4, 2, 1),
    nn.Conv2d(6, 8, 4, 2, 1, bias=False),
    nn.Conv2d(6, 8, 3, 1, 1, dilation=1, groups=2),
    nn.ConvTranspose2d(6, 8, 4, 2, 1),
    nn.ConvTranspose2d(6, 8, 4, 2, 1, bias=False),
    nn.ConvTranspose2d(6, 8, 3, 2, 1, output_padding=1),
], ids=lambda layer: repr(layer))
@pytest.mark.parametrize("input_needs_grad", [True, False])
def test_native_convolutions_match_onednn_forward_and_backward(layer, input_needs_grad):
    torch.manual_seed(0)
    native = copy.deepcopy(layer)
    native.__class__ = NativeConvTranspose2d if isinstance(layer, nn.ConvTranspose2d) else NativeConv2d
    x = torch.randn(2, 6, 7, 9, requires_grad=input_needs_grad)
    grad = torch.randn_like(layer(x))
    results = []
    for module in (layer, native):
        inputs = x.detach().clone().requires_grad_(input_needs_grad)
        out = module(inputs)
        out.backward(grad)
        results.append((out.detach(), inputs.grad, [p.grad.clone() for p in module.parameters()]))
        module.zero_grad()
    (out_a, gx_a, gp_a), (out_b, gx_b, gp_b) = results
    assert torch.allclose(out_a, out_b, atol=1e-5)
    assert (gx_a is None) == (gx_b is None) == (not input_needs_grad)
    if input_needs_grad:
        assert torch.allclose(gx_a, gx_b, atol=1e-5)
    assert len(gp_a) == len(gp_b) and all(torch.allclose(a, b, atol=1e-4) for a, b in zip(gp_a, gp_b))


def test_only_small_maps_move_and_the_state_dict_stays():
    generator = resolve("unet_256(ngf=4)+l1").build(3, 3).generator
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    reference = copy.deepcopy(generator)
    moved = use_native_small_convolutions(generator, torch.zeros(1, 3, 256, 256))
    native = [m for m in generator.modules() if isinstance(m, (NativeConv2d, NativeConvTranspose2d))]
    # Down: inputs of 16x16 ... 2x2 (4 layers); up: inputs of 1x1 ... 16x16 (5 layers).
    assert moved == len(native) == 9 and SMALL_MAP == 256
    assert generator.state_dict().keys() == before.keys()
    assert all(torch.equal(v, before[k]) for k, v in generator.state_dict().items())
    assert generator.training  # the probe put it back as it was
    generator.eval(), reference.eval()
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(generator(x), reference(x), atol=1e-5)
    assert sum(isinstance(m, (NativeConv2d, NativeConvTranspose2d)) for m in copy.deepcopy(generator).modules()) == 9


def test_keep_freed_memory_applies_on_glibc():
    assert keep_freed_memory() is True  # Linux with glibc, as the CI machine is


def test_the_trainer_tunes_cpu_runs_and_says_so(tmp_path):
    config = TrainConfig(spec="unet_128(ngf=4)+patch16(ndf=4)+l1cgan", data="synthfacades",
                         data_options={"size": 128, "count": 4}, preprocess="none", flip=False, epochs=1,
                         epochs_decay=0, max_steps=1, workers=0, device="cpu")
    Trainer(config, tmp_path / "run", progress=False).fit()
    tuning = json.loads((tmp_path / "run" / "config.json").read_text())["cpu_tuning"]
    assert tuning == {"native_small_convolutions": {"generator": 9, "discriminator": 0}, "keep_freed_memory": True}
    config.cpu_tuning = False
    Trainer(config, tmp_path / "plain", progress=False).fit()
    assert json.loads((tmp_path / "plain" / "config.json").read_text())["cpu_tuning"] is None
