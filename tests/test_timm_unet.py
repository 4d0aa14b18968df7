"""The timm_unet generator: a U-Net decoder on timm features_only encoders of several families.

Everything is tiny (64x64 or smaller, ngf of 4) and offline: tests that touch pretrained weights
point the Hugging Face cache at a temporary folder and set HF_HUB_OFFLINE, and the "pretrained"
weights there are written from a freshly created timm model, never downloaded.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import timm
import torch
from helpers import run_zoo
from huggingface_hub import constants
from pix2pix_zoo_nets import register_generators, timm_unet
from pix2pix_zoo_nets.timm_unet import BackboneWeightsError, backbones
from safetensors.torch import save_file
from torch import nn

from pix2pix_zoo.engine.gan_step import gan_step, make_optimizers
from pix2pix_zoo.errors import SpecError, ZooError
from pix2pix_zoo.layers import NORMS
from pix2pix_zoo.spec import resolve

# Three families: a ResNet (stride-2 stem, reductions 2..32), a ConvNeXt (stride-4 stem, 4..32) and
# a MobileNetV3 (timm's EfficientNet feature class, channels that shrink and grow).
BACKBONES = ["resnet18", "convnext_atto", "mobilenetv3_small_050"]


def tiny(backbone: str, in_channels: int = 3, out_channels: int = 3, **options) -> nn.Module:
    return timm_unet.timm_unet(in_channels, out_channels, backbone=backbone, ngf=4, **options)


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache in tmp_path, offline; returns the hub cache folder.

    huggingface_hub reads its environment once, at import, so its constants are patched as well.
    """
    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return home / "hub"


def timm_state(backbone: str) -> dict[str, torch.Tensor]:
    """A freshly initialised full timm model's state dict: stands in for its published weights."""
    torch.manual_seed(123)
    return {k: v.contiguous() for k, v in timm.create_model(backbone, pretrained=False).state_dict().items()}


# --- registration and signature ------------------------------------------------------------------


def test_registered_with_a_one_line_summary_and_the_agreed_signature():
    registered = {}
    register_generators(lambda name, factory, **kw: registered.setdefault(name, (factory, kw)))
    lazy, options = registered["timm_unet"]
    factory = lazy.load()  # registered by import path (components.LazyFactory)
    assert factory is timm_unet.timm_unet
    assert "\n" not in options["summary"] and "timm.list_models()" in options["summary"]
    parameters = inspect.signature(factory).parameters
    assert list(parameters)[:2] == ["in_channels", "out_channels"]
    defaults = {name: p.default for name, p in parameters.items() if p.kind is p.KEYWORD_ONLY}
    assert defaults == {"backbone": "resnet34", "pretrained": False, "weights": "", "ngf": 64, "norm": "batch"}


def test_backbones_lists_timm_models():
    assert backbones() == sorted(timm.list_models())
    assert "resnet18" in backbones("resnet*") and "convnext_atto" not in backbones("resnet*")
    assert "resnet18.a1_in1k" in backbones("resnet18.*", pretrained=True)


# --- forward passes ------------------------------------------------------------------------------


@pytest.mark.parametrize("backbone", BACKBONES)
def test_shapes_range_size_multiple_and_gradients(backbone):
    torch.manual_seed(0)
    net = tiny(backbone)
    reduction = max(timm.create_model(backbone, features_only=True).feature_info.reduction())
    assert net.size_multiple == reduction == 32
    for height, width in [(64, 64), (32, 64)]:  # square and not
        image = torch.rand(2, 3, height, width) * 2 - 1
        out = net(image)
        assert out.shape == image.shape
        assert out.abs().max() <= 1
    out.square().mean().backward()
    for part in (net.encoder, net.decoder, net.head):
        grads = [p.grad for p in part.parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)
    with pytest.raises(ValueError, match="not a multiple of 32"):
        net(torch.zeros(1, 3, 48, 64))


def test_other_channel_counts():
    net = tiny("resnet18", in_channels=1, out_channels=2)
    assert net.encoder.conv1.in_channels == 1
    assert net(torch.rand(2, 1, 32, 64) * 2 - 1).shape == (2, 2, 32, 64)


@pytest.mark.parametrize("norm", NORMS)
def test_decoder_norms_and_widths(norm):
    net = tiny("mobilenetv3_small_050", norm=norm)
    norms = [block.norm for block in net.decoder]
    expected = {"batch": nn.BatchNorm2d, "syncbatch": nn.BatchNorm2d, "instance": nn.InstanceNorm2d, "none": nn.Identity}
    assert all(type(layer) is expected[norm] for layer in norms)
    assert all((block.conv.bias is not None) == (norm in ("instance", "none")) for block in net.decoder)
    # Reductions 16, 8, 4, 2 with skips, then 1: ngf * min(r, 8) with ngf=4.
    assert [block.conv.out_channels for block in net.decoder] == [32, 32, 16, 8, 4]
    assert torch.isfinite(net(torch.rand(2, 3, 32, 32))).all()


def test_decoder_gets_the_reference_init_and_the_encoder_keeps_timms():
    torch.manual_seed(5)
    encoder = timm.create_model("resnet18", features_only=True, in_chans=3)
    torch.manual_seed(5)
    net = timm_unet.timm_unet(3, 3, backbone="resnet18", ngf=16)
    for key, value in encoder.state_dict().items():
        assert torch.equal(net.encoder.state_dict()[key], value), key
    weights = torch.cat([b.conv.weight.flatten() for b in net.decoder] + [net.head[0].weight.flatten()])
    assert weights.std().item() == pytest.approx(0.02, rel=0.05)
    assert not net.head[0].bias.any()


# --- specs and training --------------------------------------------------------------------------


def test_spec_builds_canonically_and_trains_one_step():
    spec = resolve("timm_unet(backbone=resnet18,ngf=16)+patch70+l1cgan")
    assert isinstance(spec.build(3, 3).generator, timm_unet.TimmUNet)
    verbose = "timm_unet(backbone=resnet18,pretrained=false,ngf=64,norm=batch)+patch70+l1cgan"
    assert str(resolve(verbose)) == "timm_unet(backbone=resnet18)+patch70+l1cgan"
    assert str(resolve("timm_unet+patch70+l1cgan")) == "timm_unet+patch70+l1cgan"

    torch.manual_seed(0)
    models = resolve("timm_unet(backbone=mobilenetv3_small_050,ngf=4)+patch70(ndf=4)+l1cgan").build(1, 2)
    before = {k: v.clone() for k, v in models.generator.state_dict().items()}
    optimizer_g, optimizer_d = make_optimizers(models)
    x, y = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 2, 32, 32) * 2 - 1
    losses = gan_step(models, optimizer_g, optimizer_d, x, y)
    assert all(torch.isfinite(v) for v in losses.values())
    after = models.generator.state_dict()
    assert not torch.equal(before["encoder.conv_stem.weight"], after["encoder.conv_stem.weight"])
    assert not torch.equal(before["head.0.weight"], after["head.0.weight"])


# --- backbone names ------------------------------------------------------------------------------


def test_unknown_backbone_suggests_close_timm_names():
    with pytest.raises(SpecError, match="unknown timm backbone 'resnet35'; did you mean .*resnet34"):
        timm_unet.timm_unet(3, 3, backbone="resnet35")
    with pytest.raises(SpecError, match="no weights tagged 'resnet18.nope'"):
        timm_unet.timm_unet(3, 3, backbone="resnet18.nope")


def test_unknown_backbone_through_the_cli():
    result = run_zoo("info", "timm_unet(backbone=resnet35)+l1")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "resnet34" in lines[0] and "Traceback" not in result.stderr + result.stdout


# --- pretrained weights --------------------------------------------------------------------------


def test_pretrained_without_cache_or_network_is_one_clear_line(offline_hub):
    with pytest.raises(BackboneWeightsError) as caught:
        tiny("resnet18", pretrained=True)
    message = str(caught.value)
    assert "\n" not in message and caught.value.__cause__ is None and caught.value.__suppress_context__
    assert "'resnet18'" in message and "HF_HUB_OFFLINE" in message and "weights=PATH" in message

    result = run_zoo(
        "info", "timm_unet(backbone=resnet18,pretrained=true)+l1",
        HF_HOME=str(offline_hub.parent), HF_HUB_CACHE=str(offline_hub), HF_HUB_OFFLINE="1",
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "weights=PATH" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def write_hub_cache(hub: Path, repo_id: str, tensors: dict[str, torch.Tensor]) -> None:
    """The layout huggingface_hub leaves after downloading ``model.safetensors`` of ``repo_id``."""
    repo = hub / f"models--{repo_id.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    save_file(tensors, str(snapshot / "model.safetensors"))


def test_pretrained_loads_from_the_hugging_face_cache(offline_hub):
    state = timm_state("resnet18")
    write_hub_cache(offline_hub, timm.models.get_pretrained_cfg("resnet18").hf_hub_id, state)
    net = tiny("resnet18", pretrained=True)
    loaded = net.encoder.state_dict()
    assert loaded.keys() == {k for k in state if not k.startswith("fc.")}
    for key, value in loaded.items():
        assert torch.equal(value, state[key]), key
    # One input channel: timm folds the RGB filters of the stem into one.
    grey = tiny("resnet18", in_channels=1, pretrained=True)
    torch.testing.assert_close(grey.encoder.conv1.weight, state["conv1.weight"].sum(1, keepdim=True))


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_weights_file_loads_into_the_encoder(tmp_path, offline_hub, suffix):
    state = timm_state("resnet18")
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)  # a flat state dict: readable with weights_only=True
    models = resolve(f"timm_unet(backbone=resnet18,weights={path},ngf=4)+l1").build(3, 3)
    for key, value in models.generator.encoder.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_a_weights_file_of_another_network_is_one_clear_line(tmp_path, offline_hub):
    path = tmp_path / "convnext.safetensors"
    save_file(timm_state("convnext_atto"), str(path))
    with pytest.raises(BackboneWeightsError, match=r"does not hold timm weights for backbone 'resnet18': \d+ of its"):
        tiny("resnet18", weights=str(path))
    resnet18 = tmp_path / "resnet18.safetensors"
    save_file(timm_state("resnet18"), str(resnet18))  # resnet34's names, but fewer blocks
    with pytest.raises(ZooError, match="'resnet34': .* missing .*'layer1.2") as caught:
        tiny("resnet34", weights=str(resnet18))
    assert "\n" not in str(caught.value)
    with pytest.raises(ZooError, match="does not exist"):
        tiny("resnet18", weights=str(tmp_path / "absent.safetensors"))
