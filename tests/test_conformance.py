"""The conformance kit (pix2pix_zoo.testing) over every registered component, and on broken ones.

Networks are discovered from the registry at collection time (the built-ins: tests choose their
plugins), so a newly registered generator or discriminator is checked without touching this file;
datasets need files, so each built-in one has an opener.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from loopback import make_cityscapes_tree, side_by_side_jpeg
from PIL import Image
from pix2pix_zoo_datasets import reference
from torch import nn

from pix2pix_zoo import hookimpl
from pix2pix_zoo.interfaces import DatasetInfo, GeneratorLoss, ImageCodec, Objective, PairedDataset, describe_dataset
from pix2pix_zoo.plugins import get_registry
from pix2pix_zoo.testing import (
    check_codec,
    check_component,
    check_dataset,
    check_discriminator,
    check_generator,
    check_objective,
    check_plugin,
    check_training,
    measure_receptive_field,
)

REGISTRY = get_registry()
CHECKED = [name for kind in ("generator", "discriminator", "objective", "codec") for name in REGISTRY.names(kind)]


@pytest.mark.parametrize("name", CHECKED)
def test_every_registered_network_and_objective_conforms(name):
    assert check_component(name) == name


# -- datasets --------------------------------------------------------------------------------------


def save(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def noise(height, width, seed):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def open_reference_layout(name):
    """A reference dataset from ``root/NAME/train/*.jpg``, the layout its archive extracts to."""

    def open_(root):
        for index in (1, 2, 3):
            (root / name / "train").mkdir(parents=True, exist_ok=True)
            (root / name / "train" / f"{index}.jpg").write_bytes(side_by_side_jpeg())
        return REGISTRY.get(name).build(root, "train", download=False)

    return open_


def open_cityscapes(root):
    """Cityscapes as ``zoo data prepare cityscapes`` builds it from official-looking archives."""
    frames = {"train": ["aachen_000000_000019", "bochum_000000_000313"]}
    gtfine, leftimg8bit = make_cityscapes_tree(root / "official", frames)
    reference.prepare_cityscapes(gtfine, leftimg8bit, root / "datasets" / "cityscapes")
    return REGISTRY.get("cityscapes").build(root / "datasets", "train", download=False)


def open_folder(root):
    for index in range(3):
        save(root / "train" / f"{index}.png", noise(6, 8, index))
    return REGISTRY.get("folder").build(root, "train", a_channels=1)


def open_pairs(root):
    for index in range(3):
        save(root / "A" / "train" / f"{index}.png", noise(6, 4, index))
        save(root / "B" / "train" / f"{index}.jpg", noise(6, 4, index + 10))
    return REGISTRY.get("pairs").build(root, "train", b_channels=1)


OPENERS = {
    **{name: open_reference_layout(name) for name in ("facades", "maps", "edges2shoes", "edges2handbags", "night2day")},
    "cityscapes": open_cityscapes,
    "folder": open_folder,
    "pairs": open_pairs,
    "synthfacades": lambda root: REGISTRY.get("synthfacades").build(None, "train", size=32, count=6),
}


@pytest.mark.parametrize("name", REGISTRY.names("dataset"))
def test_every_registered_dataset_conforms(name, tmp_path):
    if name not in OPENERS:
        pytest.fail(f"no opener for dataset {name!r}: add one to OPENERS so that it is checked")
    dataset = OPENERS[name](tmp_path)
    check_dataset(dataset)
    assert dataset.info.name == name


# -- broken components make the checks fail --------------------------------------------------------


class TinyGenerator(nn.Module):
    """A 3x3 conv and tanh; ``fault`` breaks one part of the contract."""

    size_multiple = 4

    def __init__(self, in_channels=3, out_channels=3, fault=None):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1 if fault != "size" else 0)
        self.unused = nn.Linear(2, 2) if fault == "unused" else None
        self.pooled_norm = nn.BatchNorm2d(out_channels) if fault == "batch-of-one" else None
        self.fault = fault

    def forward(self, x):
        out = self.conv(x)
        if self.pooled_norm is not None:  # batch norm over one value per channel when the batch is 1
            out = out + self.pooled_norm(out.mean((2, 3), keepdim=True))
        if self.fault == "range":
            return out * 10
        if self.fault == "random" and not self.training:
            out = out + torch.rand_like(out)
        return torch.tanh(out)


def test_a_good_generator_passes():
    check_generator(TinyGenerator(1, 2), 1, 2, size=8, batch=3)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("size", r"generator 'TinyGenerator': output is \(2, 3, 62, 62\) for a \(2, 3, 64, 64\) input"),
        ("range", r"output spans \[.*\].*not within \[-1, 1\]"),
        ("unused", r"no gradient reaches the trainable parameters unused.weight, unused.bias"),
        ("random", "two eval-mode passes over the same input differ"),
        ("batch-of-one", r"fails for a \(1, 3, 64, 64\) input in train mode: ValueError: Expected more than 1 value"),
    ],
    ids=["size", "range", "unused", "random", "batch-of-one"],
)
def test_a_broken_generator_fails(fault, message):
    with pytest.raises(AssertionError, match=message):
        check_generator(TinyGenerator(fault=fault), 3, 3)


def test_a_generator_needs_a_size_multiple():
    generator = TinyGenerator()
    generator.size_multiple = 0
    with pytest.raises(AssertionError, match="size_multiple must be a positive int, not 0"):
        check_generator(generator, 3, 3, name="mine")


class TinyPatchGAN(nn.Module):
    """Two 4x4 convs (stride 2, then 1): a receptive field of 4 + 3 * 2 = 10 pixels."""

    def __init__(self, in_channels=6, receptive_field=10, out_channels=1, sees_everything=False):
        super().__init__()
        self.receptive_field = receptive_field
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, 4, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(4, out_channels, 4, 1, 1)
        )
        self.sees_everything = sees_everything

    def forward(self, x):
        logits = self.net(x)
        return logits + x.mean((1, 2, 3), keepdim=True) if self.sees_everything else logits


def test_a_good_discriminator_passes_and_its_field_is_measured():
    check_discriminator(TinyPatchGAN(), 6)
    assert measure_receptive_field(TinyPatchGAN(3), 3, size=40) == 10


@pytest.mark.parametrize(
    ("discriminator", "message"),
    [
        (TinyPatchGAN(receptive_field=16), r"declares receptive_field 16, but the measured one is 10"),
        (TinyPatchGAN(receptive_field=4), r"declares receptive_field 4, but the measured one is 10"),
        (TinyPatchGAN(sees_everything=True), r"receptive_field 10, but .* reaches the border of a 74x74 input"),
        (TinyPatchGAN(out_channels=2), r"logits are \(2, 2, .*\) for a batch of 2; expected \(2, 1, h, w\)"),
    ],
    ids=["field-too-large", "field-too-small", "field-far-too-small", "two-channels"],
)
def test_a_broken_discriminator_fails(discriminator, message):
    with pytest.raises(AssertionError, match=message):
        check_discriminator(discriminator, 6)


class TinyObjective(Objective):
    """L1 plus a vanilla cGAN loss; ``fault`` breaks one part of the contract."""

    conditional = True

    def __init__(self, fault=None):
        self.fault = fault

    def discriminator_input(self, x, y):
        return y if self.fault == "unconditional-input" else torch.cat([x, y], 1)

    def discriminator_loss(self, real_logits, fake_logits):
        if self.fault == "inverted":
            real_logits, fake_logits = fake_logits, real_logits
        loss = nn.functional.softplus(-real_logits).mean() + nn.functional.softplus(fake_logits).mean()
        return loss + torch.log(torch.zeros(())) if self.fault == "infinite" else loss

    def generator_loss(self, fake, target, fake_logits):
        terms = {"gan": nn.functional.softplus(-fake_logits).mean(), "l1": (fake - target).abs().mean()}
        if self.fault == "detached":
            terms = {key: value.detach() for key, value in terms.items()}
        return GeneratorLoss(sum(terms.values()), terms)


def test_a_good_objective_passes():
    check_objective(TinyObjective(), channels=1)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("infinite", r"objective 'TinyObjective': the discriminator's loss is not finite \(-inf\)"),
        ("inverted", r"the discriminator's loss is .* when it is right .* right must be lower"),
        ("detached", "the loss gives no gradient w.r.t. the fake"),
        ("unconditional-input",
         r"discriminator_input is \(2, 3, 8, 8\); discriminator_in_channels says \(2, 6, 8, 8\)"),
    ],
    ids=["infinite", "inverted", "detached", "unconditional-input"],
)
def test_a_broken_objective_fails(fault, message):
    with pytest.raises(AssertionError, match=message):
        check_objective(TinyObjective(fault))


class TinyDataset(PairedDataset):
    """Three grey-to-RGB pairs; ``fault`` breaks one part of the contract."""

    info = DatasetInfo("tiny", a_channels=1, b_channels=3)

    def __init__(self, fault=None):
        self.fault = fault

    def __len__(self):
        return 3

    def __getitem__(self, index):
        a = torch.full((1, 4, 6), index, dtype=torch.uint8)
        b = torch.zeros((3, 4, 5 if self.fault == "sizes" else 6), dtype=torch.uint8)
        if self.fault == "channels":
            a = a.expand(3, 4, 6)
        if self.fault == "random":
            b = torch.randint(0, 256, b.shape, dtype=torch.uint8)
        return {"a": a, "b": b, "name": "same" if self.fault == "names" else f"{index}.png"}


def test_a_good_dataset_passes():
    check_dataset(TinyDataset())


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("sizes", r"dataset 'tiny': item 0: A is \(4, 6\) and B \(4, 5\): the pair is not aligned"),
        ("channels", r"item 0: 'a' has 3 channels; info.a_channels is 1"),
        ("random", r"reading item 0 twice gives two different pairs \(not deterministic\)"),
        ("names", "items 0 and 1 share the name 'same'"),
    ],
    ids=["sizes", "channels", "random", "names"],
)
def test_a_broken_dataset_fails(fault, message):
    with pytest.raises(AssertionError, match=message):
        check_dataset(TinyDataset(fault))


# -- check_plugin ----------------------------------------------------------------------------------


def tiny_good(in_channels: int, out_channels: int, *, ngf: int = 64) -> nn.Module:
    assert ngf == 4  # built with the kit's tiny options
    return TinyGenerator(in_channels, out_channels)


def tiny_broken(in_channels: int, out_channels: int, *, ngf: int = 64) -> nn.Module:
    return TinyGenerator(in_channels, out_channels, fault="range")


class TinyPlugin:
    def __init__(self, *factories):
        self.factories = factories

    @hookimpl
    def register_generators(self, register):
        for factory in self.factories:
            register(factory.__name__, factory)


def test_check_plugin_checks_what_a_plugin_registers_and_leaves_the_registry_alone():
    assert check_plugin(TinyPlugin(tiny_good), "tiny") == ["tiny_good"]
    assert "tiny_good" not in get_registry()


def test_check_plugin_fails_on_a_broken_component():
    with pytest.raises(AssertionError, match=r"generator 'tiny_broken': output spans"):
        check_plugin(TinyPlugin(tiny_good, tiny_broken))


# -- codecs ----------------------------------------------------------------------------------------


class GreyCodec(ImageCodec):
    """Grey in, colour out: encode averages, render shows an output as it is (or the input as grey)."""

    def __init__(self, fault: str = "") -> None:
        self.fault = fault

    def encode(self, rgb):
        grey = rgb.mean(1, keepdim=True) * 2 - 1
        return grey * 2 if self.fault == "encode-range" else grey

    def render(self, x, y=None):
        if self.fault == "mutates":
            x.zero_()
        shown = (x.expand(-1, 3, -1, -1) if y is None else y[:, :3]) + 1
        if self.fault == "render-range":
            return shown
        if self.fault == "render-shape":
            return shown[:, :1] / 2
        return shown / 2


def test_a_good_codec_passes():
    check_codec(GreyCodec(), 1, 3)


@pytest.mark.parametrize(("fault", "message"), [
    ("encode-range", "encode left"),
    ("render-range", r"render\(x\) left \[0, 1\]"),
    ("render-shape", r"render\(x\) gave \(2, 1, 24, 32\); expected RGB"),
    ("mutates", r"render\(x\) changed its arguments"),
])
def test_a_broken_codec_fails(fault, message):
    with pytest.raises(AssertionError, match=rf"codec 'GreyCodec': {message}"):
        check_codec(GreyCodec(fault), 1, 3)


def test_check_plugin_checks_a_codec_with_its_datasets_channels():
    @describe_dataset(DatasetInfo(name="greys", a_channels=1, b_channels=3, codec="grey_codec"))
    def greys(root, split: str) -> PairedDataset:
        raise NotImplementedError  # never opened by check_plugin

    class CodecPlugin:
        def __init__(self, fault: str) -> None:
            self.fault = fault

        @hookimpl
        def register_codecs(self, register):
            register("grey_codec", lambda: GreyCodec(self.fault))

        @hookimpl
        def register_datasets(self, register):
            register("greys", greys)

    assert check_plugin(CodecPlugin(""), "codecs") == ["greys", "grey_codec"]
    with pytest.raises(AssertionError, match="codec 'grey_codec': encode left"):
        check_plugin(CodecPlugin("encode-range"), "codecs")


class MixedSizePairs(PairedDataset):
    """Photo-like pairs in three sizes, as a folder of ordinary photos gives them."""

    info = DatasetInfo("mixed_sizes", splits=("train", "test"), reads_your_files=True)

    def __init__(self, root, split: str) -> None:
        self.sizes = [(40, 60), (48, 48), (64, 36)] * (2 if split == "train" else 1)

    def __len__(self) -> int:
        return len(self.sizes)

    def __getitem__(self, index: int) -> dict:
        height, width = self.sizes[index]
        pixels = torch.arange(3 * height * width).reshape(3, height, width).remainder(251).to(torch.uint8)
        return {"a": pixels, "b": 255 - pixels, "name": f"{index}.png"}


def test_check_training_trains_and_evaluates_a_dataset_of_mixed_sizes(tmp_path, register_plugin):
    register_plugin(SimpleNamespace(register_datasets=hookimpl(lambda register: register("mixed_sizes", MixedSizePairs))),
                    "mixed-sizes")
    evaluation = check_training("resnet_6blocks(ngf=4)+patch16(ndf=4)+l1cgan", f"mixed_sizes:{tmp_path}",
                                tmp_path / "run", batch_size=4)
    assert evaluation["split"] == "test" and evaluation["pairs"] == 3
    assert (tmp_path / "run" / "translator" / "model.safetensors").is_file()


def test_check_training_names_what_the_engine_refuses(tmp_path, register_plugin):
    register_plugin(SimpleNamespace(register_datasets=hookimpl(lambda register: register("mixed_sizes", MixedSizePairs))),
                    "mixed-sizes")
    with pytest.raises(AssertionError, match=r"training .* on 'mixed_sizes:.*': with --preprocess none pairs keep "
                                             r"their sizes.*cannot share a batch of 2"):
        check_training("resnet_6blocks(ngf=4)+patch16(ndf=4)+l1cgan", f"mixed_sizes:{tmp_path}", tmp_path / "run",
                       preprocess="none")


def test_check_component_gives_a_codec_the_channels_of_its_dataset(register_plugin, fresh_plugins):
    class GreyToPair(ImageCodec):
        """A 1 -> 2 channel codec, as colourisation's: the kit must not assume 3 channels in."""

        def encode(self, rgb):
            return rgb.mean(1, keepdim=True) * 2 - 1

        def render(self, x, y=None):
            return ((x.expand(-1, 3, -1, -1) + 1) / 2).clamp(0, 1)

    @describe_dataset(DatasetInfo("grey_pairs", a_channels=1, b_channels=2, codec="grey_to_pair",
                                  reads_your_files=True))
    def grey_pairs(root, split: str):
        raise AssertionError("not opened by the codec check")

    class Plugin:
        @hookimpl
        def register_codecs(self, register):
            register("grey_to_pair", GreyToPair)

        @hookimpl
        def register_datasets(self, register):
            register("grey_pairs", grey_pairs)

    register_plugin(Plugin(), "grey")
    assert check_component("grey_to_pair") == "grey_to_pair"
    assert sorted(check_plugin(Plugin(), "grey-again")) == ["grey_pairs", "grey_to_pair"]
