"""Generators and discriminators of the pix2pix_zoo_nets plugin: sizes, shapes, options, init.

Full-size networks are built on the meta device (no memory, no init cost); anything that runs a
forward pass uses a tiny width (ngf/ndf of 2 to 4) so the whole file stays fast on a laptop CPU.
"""

import inspect
import typing

import pytest
import torch
from pix2pix_zoo_nets import patchgan, register_discriminators, register_generators, resnet, timm_unet, unet
from torch import nn

from pix2pix_zoo.layers import NORMS
from pix2pix_zoo.testing import measure_receptive_field

GENERATORS = {
    "unet_256": unet.unet_256,
    "unet_128": unet.unet_128,
    "encdec_256": unet.encdec_256,
    "encdec_128": unet.encdec_128,
    "resnet_9blocks": resnet.resnet_9blocks,
    "resnet_6blocks": resnet.resnet_6blocks,
}
DISCRIMINATORS = {
    "pixel": patchgan.pixel,
    "patch16": patchgan.patch16,
    "patch34": patchgan.patch34,
    "patch70": patchgan.patch70,
    "patch142": patchgan.patch142,
    "image": patchgan.image,
}
SIZE_MULTIPLE = {
    "unet_256": 256,
    "unet_128": 128,
    "encdec_256": 256,
    "encdec_128": 128,
    "resnet_9blocks": 4,
    "resnet_6blocks": 4,
}
RECEPTIVE_FIELD = {"pixel": 1, "patch16": 16, "patch34": 34, "patch70": 70, "patch142": 142, "image": 286}


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def layers_of(net: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, kind)]


# --- registration --------------------------------------------------------------------------------


def registrations(hook) -> dict[str, tuple]:
    registered = {}

    def register(name, factory, *, aliases=(), summary=""):
        registered[name] = (factory, aliases, summary)

    hook(register)
    return registered


def test_hooks_register_every_network_with_a_one_line_summary():
    generators = registrations(register_generators)
    discriminators = registrations(register_discriminators)
    # timm_unet (the timm-backbone family, tests/test_timm_unet.py) has no dropout and its own sizes.
    # The built-ins register by import path (components.LazyFactory), so that listings import no torch.
    assert {name: entry[0].load() for name, entry in generators.items()} == {**GENERATORS, "timm_unet": timm_unet.timm_unet}
    assert {name: entry[0].load() for name, entry in discriminators.items()} == DISCRIMINATORS
    assert generators["unet_256"][1] == ("unet",)
    assert generators["encdec_256"][1] == ("encdec",)
    assert discriminators["patch70"][1] == ("patch",)
    for _, _, summary in [*generators.values(), *discriminators.values()]:
        assert summary and "\n" not in summary


@pytest.mark.parametrize(
    ("factory", "positional", "required_options"),
    [(f, ["in_channels", "out_channels"], {"ngf", "norm", "dropout"}) for f in GENERATORS.values()]
    + [(f, ["in_channels"], {"ndf", "norm"}) for f in DISCRIMINATORS.values()],
)
def test_factory_signatures_follow_the_plugin_contract(factory, positional, required_options):
    parameters = inspect.signature(factory).parameters.values()
    assert [p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD] == positional
    options = [p for p in parameters if p.kind is p.KEYWORD_ONLY]
    assert len(options) + len(positional) == len(parameters)
    assert required_options <= {p.name for p in options}
    hints = typing.get_type_hints(factory)
    for option in options:
        assert option.default is not option.empty, option.name
        hint = hints[option.name]
        assert hint in (int, float, bool, str) or typing.get_origin(hint) is typing.Literal
        if typing.get_origin(hint) is typing.Literal:
            assert option.default in typing.get_args(hint)
    assert typing.get_args(hints["norm"]) == NORMS


# --- sizes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "options", "parameters"),
    [
        ("unet_256", {}, 54_413_955),
        ("unet_256", {"norm": "instance"}, 54_409_603),
        ("unet_128", {}, 41_828_995),
        # The U-Net less the 15,338,496 (unet_256) or 11,144,192 (unet_128) weights reading skips.
        ("encdec_256", {}, 39_075_459),
        ("encdec_128", {}, 30_684_803),
        ("resnet_9blocks", {}, 11_378_179),
        ("resnet_6blocks", {}, 7_837_699),
    ],
)
def test_generator_parameter_counts(name, options, parameters):
    with torch.device("meta"):
        net = GENERATORS[name](3, 3, **options)
    assert parameter_count(net) == parameters
    assert net.size_multiple == SIZE_MULTIPLE[name]


@pytest.mark.parametrize(
    ("name", "parameters"),
    [
        ("pixel", 9_024),
        ("patch16", 139_585),
        ("patch34", 666_433),
        ("patch70", 2_768_705),
        ("patch142", 6_964_033),
        ("image", 11_159_361),
    ],
)
def test_discriminator_parameter_counts(name, parameters):
    with torch.device("meta"):
        net = DISCRIMINATORS[name](6, norm="batch")
    assert parameter_count(net) == parameters
    assert net.receptive_field == RECEPTIVE_FIELD[name]


# --- forward passes ------------------------------------------------------------------------------


def tiny_generator(name: str, **options) -> nn.Module:
    return GENERATORS[name](1, 2, ngf=4, **options)


@pytest.mark.parametrize("name", GENERATORS)
@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (2, 1)], ids=["square", "wide", "tall"])
def test_generator_output_shape_and_range(name, shape):
    multiple = SIZE_MULTIPLE[name]
    height, width = (side * max(multiple, 8) for side in shape)
    torch.manual_seed(0)
    image = torch.rand(2, 1, height, width) * 2 - 1
    out = tiny_generator(name)(image)
    assert out.shape == (2, 2, height, width)
    assert out.abs().max() <= 1


@pytest.mark.parametrize("name", GENERATORS)
def test_generator_rejects_sizes_that_are_not_multiples(name):
    # Without the check a U-Net fails on a concatenation deep inside, or for some odd sizes (and a
    # ResNet always) returns an image of another size than its input.
    multiple = SIZE_MULTIPLE[name]
    net = tiny_generator(name)
    for height, width in [(multiple + 2, multiple), (multiple, multiple * 3 // 2 + 1)]:
        with pytest.raises(ValueError, match="not a multiple of"):
            net(torch.zeros(1, 1, height, width))


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", GENERATORS)
def test_generator_norms(name, norm):
    net = tiny_generator(name, norm=norm)
    size = SIZE_MULTIPLE[name] if SIZE_MULTIPLE[name] > 4 else 16
    image = torch.rand(2, 1, size, size)
    net.train()(image).mean().backward()  # the in-place activations leave autograd intact
    with torch.no_grad():
        assert torch.isfinite(net.eval()(image)).all()
    assert_norm_layers(net, norm)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", DISCRIMINATORS)
def test_discriminator_norms_and_output_shape(name, norm):
    net = DISCRIMINATORS[name](6, ndf=4, norm=norm)
    pair = torch.rand(2, 6, 128, 96)
    net.train()(pair).mean().backward()
    with torch.no_grad():
        logits = net.eval()(pair)
    assert logits.shape[:2] == (2, 1) and torch.isfinite(logits).all()
    assert_norm_layers(net, norm)


def assert_norm_layers(net: nn.Module, norm: str) -> None:
    """Batch norm (syncbatch is converted later by the trainer), instance norm, or none at all."""
    batch_norms = layers_of(net, nn.BatchNorm2d)
    instance_norms = layers_of(net, nn.InstanceNorm2d)
    assert bool(batch_norms) == (norm in ("batch", "syncbatch"))
    assert bool(instance_norms) == (norm == "instance")
    if norm == "none":  # convs keep their bias when nothing follows them to shift the output
        assert all(conv.bias is not None for conv in layers_of(net, nn.modules.conv._ConvNd))


@pytest.mark.parametrize("padding_type", ["reflect", "replicate", "zero"])
def test_resnet_padding_types(padding_type):
    net = resnet.resnet_6blocks(1, 2, ngf=4, padding_type=padding_type)
    assert net(torch.rand(1, 1, 12, 20)).shape == (1, 2, 12, 20)


def test_patch70_logit_map_size():
    # 256 -> 128 -> 64 -> 32 by the stride-2 convs, then 31 and 30 by the two stride-1 convs.
    assert patchgan.patch70(6, ndf=4)(torch.zeros(1, 6, 256, 256)).shape == (1, 1, 30, 30)


# --- dropout -------------------------------------------------------------------------------------


def dropout_by_level(net: unet.UNetGenerator) -> list[bool]:
    """For each U-Net level, outermost first: whether its decoder layer has dropout."""
    return [
        any(isinstance(layer, nn.Dropout) for layer in block.model.children())
        for block in layers_of(net, unet.UNetBlock)
    ]


def test_dropout_placement():
    # Reference U-Net: the three (two) decoder layers next to the innermost one.
    assert dropout_by_level(unet.unet_256(1, 1, ngf=2)) == [False] * 4 + [True] * 3 + [False]
    assert dropout_by_level(unet.unet_128(1, 1, ngf=2)) == [False] * 4 + [True] * 2 + [False]
    # The encoder-decoder is the U-Net without skips: dropout in the same places.
    assert dropout_by_level(unet.encdec_256(1, 1, ngf=2)) == [False] * 4 + [True] * 3 + [False]
    assert dropout_by_level(unet.encdec_128(1, 1, ngf=2)) == [False] * 4 + [True] * 2 + [False]
    assert len(layers_of(resnet.resnet_6blocks(1, 1, ngf=2, dropout=True), nn.Dropout)) == 6


@pytest.mark.parametrize("name", GENERATORS)
def test_dropout_makes_training_mode_random(name):
    size = SIZE_MULTIPLE[name] if SIZE_MULTIPLE[name] > 4 else 16
    image = torch.rand(2, 1, size, size)
    with_dropout = tiny_generator(name, dropout=True)
    assert not torch.equal(with_dropout(image), with_dropout(image))
    with_dropout.eval()
    assert torch.equal(with_dropout(image), with_dropout(image))

    without_dropout = tiny_generator(name, dropout=False)
    assert not layers_of(without_dropout, nn.Dropout)
    assert torch.equal(without_dropout(image), without_dropout(image))  # batch statistics
    without_dropout.eval()
    assert torch.equal(without_dropout(image), without_dropout(image))


# --- initialisation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: unet.unet_256(3, 3),
        lambda: resnet.resnet_9blocks(3, 3),
        lambda: patchgan.patch70(6),
    ],
    ids=["unet_256", "resnet_9blocks", "patch70"],
)
def test_initialisation_statistics(build):
    torch.manual_seed(0)
    net = build()  # full size, on the CPU: about 1 s for the U-Net
    for conv in layers_of(net, nn.modules.conv._ConvNd):
        weight = conv.weight.detach()
        tolerance = 4 * 0.02 / weight.numel() ** 0.5  # four standard errors of the mean
        assert abs(weight.mean().item()) < tolerance
        assert weight.std().item() == pytest.approx(0.02, rel=0.05)
        assert conv.bias is None or not conv.bias.any()
    batch_norms = layers_of(net, nn.BatchNorm2d)
    if batch_norms:
        scales = torch.cat([bn.weight.detach() for bn in batch_norms])
        assert scales.mean().item() == pytest.approx(1, abs=4 * 0.02 / scales.numel() ** 0.5)
        assert scales.std().item() == pytest.approx(0.02, rel=0.1)
        assert not any(bn.bias.any() for bn in batch_norms)


# --- receptive fields ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", DISCRIMINATORS)
def test_receptive_field_measured_from_gradients(name):
    net = DISCRIMINATORS[name](6, ndf=2)
    assert measure_receptive_field(net, 6, size=320) == RECEPTIVE_FIELD[name] == net.receptive_field
