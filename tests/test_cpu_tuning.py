"""CPU tuning: the native-kernel and channels-last convolutions compute what the default ones do
(forward and every gradient), only small maps move, the state dict is untouched, and the trainer's
choice is deterministic; the inference layers of :mod:`pix2pix_zoo.cpu_kernels` choose per call."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from pix2pix_zoo.engine.config import TrainConfig
from pix2pix_zoo.cpu_kernels import (
    FEW_CHANNELS,
    InferenceConv2d,
    InferenceConvTranspose2d,
    use_native_kernels_where_faster,
)
from pix2pix_zoo.engine.cpu_tuning import (
    SMALL_MAP,
    ChannelsLastConv2d,
    ChannelsLastConvTranspose2d,
    NativeConv2d,
    NativeConvTranspose2d,
    use_channels_last_convolutions,
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
    nn.ConvTranspose2d(6, 8, 3, 1, 2, dilation=2),
    nn.ConvTranspose2d(6, 8, 4, 2, 1, groups=2),
], ids=lambda layer: repr(layer))
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("input_needs_grad", [True, False])
@pytest.mark.parametrize("tuned_classes", [(NativeConv2d, NativeConvTranspose2d),
                                           (ChannelsLastConv2d, ChannelsLastConvTranspose2d)],
                         ids=["native", "channels_last"])
def test_tuned_convolutions_match_the_default_forward_and_backward(layer, batch, input_needs_grad, tuned_classes):
    torch.manual_seed(0)
    tuned = copy.deepcopy(layer)
    tuned.__class__ = tuned_classes[isinstance(layer, nn.ConvTranspose2d)]
    x = torch.randn(batch, 6, 7, 9, requires_grad=input_needs_grad)
    grad = torch.randn_like(layer(x))
    results = []
    for module in (layer, tuned):
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


def _kernels(module, x):
    """The convolution kernels ATen ran for ``module(x)``, by profiler name."""
    from torch.profiler import profile

    with torch.no_grad(), profile() as trace:
        module(x)
    return {event.key for event in trace.key_averages() if "conv" in event.key}


def test_inference_layers_choose_the_native_kernels_per_call_by_the_batch_shape():
    generator = resolve("unet_256(ngf=4)+l1").build(3, 3).generator.eval()
    reference = copy.deepcopy(generator)
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    layers = [m for m in generator.modules() if type(m) in (nn.Conv2d, nn.ConvTranspose2d)]
    assert use_native_kernels_where_faster(generator) == len(layers) == 16
    assert all(type(m) in (InferenceConv2d, InferenceConvTranspose2d) for m in layers)
    assert generator.state_dict().keys() == before.keys()
    assert all(torch.equal(v, before[k]) for k, v in generator.state_dict().items())
    for batch in (1, 3):
        x = torch.rand(batch, 3, 256, 256) * 2 - 1
        with torch.no_grad():
            assert torch.allclose(generator(x), reference(x), atol=1e-5)
    # One 16x16 map (256 positions) runs natively; the same layer on two of them, or on one 32x32,
    # runs as torch would (oneDNN, where this torch has it).
    onednn = torch.backends.mkldnn.is_available()
    down = nn.Conv2d(8, 8, 4, 2, 1)
    use_native_kernels_where_faster(down)
    assert "aten::_slow_conv2d_forward" in _kernels(down, torch.rand(1, 8, 16, 16))
    if onednn:
        assert "aten::_slow_conv2d_forward" not in _kernels(down, torch.rand(2, 8, 16, 16))
        assert "aten::_slow_conv2d_forward" not in _kernels(down, torch.rand(1, 8, 32, 32))
    # A transposed convolution to a few channels (a U-Net's output layer) runs natively on any map.
    output_layer, wider = nn.ConvTranspose2d(8, FEW_CHANNELS, 4, 2, 1), nn.ConvTranspose2d(8, FEW_CHANNELS + 1, 4, 2, 1)
    use_native_kernels_where_faster(output_layer), use_native_kernels_where_faster(wider)
    assert "aten::slow_conv_transpose2d" in _kernels(output_layer, torch.rand(2, 8, 64, 64))
    if onednn:
        assert "aten::slow_conv_transpose2d" not in _kernels(wider, torch.rand(2, 8, 64, 64))


def test_inference_layers_leave_autocast_tracing_and_unsupported_layers_to_the_usual_operator():
    kept = [nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"), nn.Conv2d(4, 4, 3, padding="same"),
            nn.Conv2d(4, 4, 3, dilation=2), nn.Conv2d(4, 4, 3, groups=2), nn.ConvTranspose2d(4, 4, 4, 2, 1, groups=2)]
    assert use_native_kernels_where_faster(nn.Sequential(*kept)) == 0
    assert all(type(m) in (nn.Conv2d, nn.ConvTranspose2d) for m in kept)
    generator = resolve("unet_128(ngf=2)+l1").build(3, 3).generator.eval()
    use_native_kernels_where_faster(generator)
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert generator(x).dtype == torch.bfloat16
    with torch.no_grad():
        graph = str(torch.jit.trace(generator, x).inlined_graph)
    assert "aten::_convolution" in graph and "slow_conv" not in graph  # exportable as usual


def test_channels_last_convolutions_keep_parameters_and_pass_channels_last_on():
    discriminator = resolve("unet_128(ngf=4)+patch70(ndf=4)+l1cgan").build(3, 3).discriminator
    reference = copy.deepcopy(discriminator)
    # Input maps 64x64, 32x32, 16x16, 8x8, 7x7: the last three go native, the first two channels-last.
    assert use_native_small_convolutions(discriminator, torch.zeros(1, 6, 64, 64)) == 3
    changed = use_channels_last_convolutions(discriminator)
    convolutions = [m for m in discriminator.modules() if isinstance(m, nn.Conv2d)]
    assert changed == 2 and [type(m) for m in convolutions[:2]] == [ChannelsLastConv2d] * 2
    assert all(p.is_contiguous() for p in discriminator.parameters())  # weights untouched: same Adam states
    first = convolutions[0]
    out = first(torch.rand(1, 6, 64, 64))
    assert out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()
    pair = torch.rand(2, 6, 64, 64)
    ours, theirs = discriminator(pair), reference(pair)
    assert torch.allclose(ours, theirs, atol=1e-5)
    ours.square().mean().backward(), theirs.square().mean().backward()
    for (name, p), q in zip(discriminator.named_parameters(), reference.parameters()):
        assert p.grad.is_contiguous() and torch.allclose(p.grad, q.grad, atol=1e-5), name


def test_the_trainer_tunes_cpu_runs_and_says_so(tmp_path):
    config = TrainConfig(spec="unet_128(ngf=4)+patch16(ndf=4)+l1cgan", data="synthfacades",
                         data_options={"size": 128, "count": 4}, preprocess="none", flip=False, epochs=1,
                         epochs_decay=0, max_steps=1, workers=0, device="cpu")
    Trainer(config, tmp_path / "run", progress=False).fit()
    tuning = json.loads((tmp_path / "run" / "config.json").read_text())["cpu_tuning"]
    assert tuning == {"native_small_convolutions": {"generator": 9, "discriminator": 0},
                      "winograd_convolutions": {"generator": 0, "discriminator": 0},
                      "channels_last_convolutions": {"discriminator": 3}, "keep_freed_memory": True}
    config.cpu_tuning = False
    Trainer(config, tmp_path / "plain", progress=False).fit()
    assert json.loads((tmp_path / "plain" / "config.json").read_text())["cpu_tuning"] is None
