"""Activation checkpointing (``zoo train --activation-checkpointing``, pix2pix_zoo.recompute): the
same step to rounding, dropout masks and running statistics included; less kept for the backward
pass; inference as before; exact resume; refusals in one line."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_one_line, run_main
from PIL import Image
from safetensors.torch import load_file
from test_trainer import tiny_config, weights

from pix2pix_zoo import hookimpl, recompute
from pix2pix_zoo.engine import cpu_tuning
from pix2pix_zoo.engine.checkpoint import latest_checkpoint
from pix2pix_zoo.engine.config import TrainConfig
from pix2pix_zoo.engine.distributed import Ranks
from pix2pix_zoo.engine.gan_step import gan_step, make_optimizers
from pix2pix_zoo.engine.setup import enable_activation_checkpointing
from pix2pix_zoo.engine.trainer import Trainer
from pix2pix_zoo.errors import SpecError
from pix2pix_zoo.interfaces import ActivationCheckpointing
from pix2pix_zoo.spec import resolve

# (spec, image side, U-Net levels that recompute): dropout on in each, and recomputed where a level
# count is given (unet_128's dropout is in its levels 4 and 5), so the recomputation must draw the first
# pass's masks; batch norm in most, whose running statistics must count each step once. encdec has no
# skips; resnet with zero padding opens its blocks with a conv instead of a pad.
NETWORKS = [
    ("unet_128(ngf=8)+patch70(ndf=8)+l1cgan", 128, 7),
    ("unet_128(ngf=8)+patch70(ndf=8)+l1cgan", 128, None),  # the default: the outermost levels
    ("encdec_128(ngf=8,norm=instance)+patch16(ndf=8)+l1cgan", 128, 7),
    ("encdec_128(ngf=8)+patch16(ndf=8)+l1cgan", 128, None),
    ("resnet_6blocks(ngf=8,norm=batch,dropout=true)+patch70(ndf=8)+l1cgan", 32, None),
    ("resnet_9blocks(ngf=8,dropout=true,padding_type=zero)+patch16(ndf=8)+l1cgan", 32, None),
]


def twins(spec: str, levels: int | None = None):
    """The networks of ``spec`` twice, with the same weights; the second recomputes (a U-Net's
    ``levels`` outermost levels, if given)."""
    torch.manual_seed(0)
    plain = resolve(spec).build(3, 3)
    recomputing = copy.deepcopy(plain)
    recomputing.generator.set_activation_checkpointing(True)
    if levels is not None:
        recomputing.generator.recomputed_levels = levels
    return plain, recomputing


def pairs(side: int, count: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return tuple(torch.rand(count, 3, side, side, generator=generator) * 2 - 1 for _ in "xy")


@pytest.mark.parametrize(("spec", "side", "levels"), NETWORKS,
                         ids=[f"{spec.split('(')[0]}-{side}-{levels or 'default'}" for spec, side, levels in NETWORKS])
def test_the_gan_step_is_the_same_to_rounding(spec, side, levels):
    plain, recomputing = twins(spec, levels)
    x, y = pairs(side)
    results = []
    for models in (plain, recomputing):
        optimizers = make_optimizers(models)
        losses = []
        for step in range(2):  # the second step starts from updated weights and running statistics
            torch.manual_seed(10 + step)  # as the trainer reseeds each step: the dropout masks' source
            losses.append(gan_step(models, *optimizers, x, y))
        results.append((losses, models))
    (plain_losses, _), (recomputed_losses, _) = results
    for ours, theirs in zip(recomputed_losses, plain_losses):
        assert ours.keys() == theirs.keys() == {"d", "g", "g_gan", "g_l1"}
        for key in ours:
            torch.testing.assert_close(ours[key], theirs[key], rtol=1e-6, atol=0, msg=key)
    for part in ("generator", "discriminator"):
        ours, theirs = getattr(recomputing, part), getattr(plain, part)
        for (name, value), (_, reference) in zip(ours.named_parameters(), theirs.named_parameters()):
            torch.testing.assert_close(value.grad, reference.grad, rtol=1e-5, atol=1e-7, msg=f"{part} grad {name}")
        ours_state, reference_state = ours.state_dict(), theirs.state_dict()  # weights, running statistics
        assert ours_state.keys() == reference_state.keys()
        for name, value in ours_state.items():
            torch.testing.assert_close(value, reference_state[name], rtol=1e-5, atol=1e-7, msg=f"{part} {name}")


def test_dropout_is_live_in_the_compared_networks():
    # The masks differ from seed to seed, so equal gradients above mean equal masks.
    plain, _ = twins(NETWORKS[0][0])
    x, _ = pairs(128)
    outputs = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        outputs.append(plain.generator(x))
    assert not torch.equal(*outputs)


# (spec, at least how many times less): the U-Net keeps its segments' inputs (each recomputed level's
# downsampled map and output) and its deeper levels' activations; the ResNet its blocks' inputs.
KEPT = [("unet_256(ngf=8)+l1", 1.7), ("resnet_9blocks(ngf=8)+l1", 7)]


@pytest.mark.parametrize(("spec", "ratio"), KEPT, ids=[spec.split("(")[0] for spec, _ in KEPT])
def test_less_is_kept_for_the_backward_pass(spec, ratio):
    plain, recomputing = twins(spec)
    x, _ = pairs(256, count=1)
    kept = [recompute.kept_for_backward(lambda models=models: models.generator(x), models.generator.parameters())
            for models in (plain, recomputing)]
    assert kept[0] > ratio * kept[1], kept


@pytest.mark.parametrize("spec", ["unet_256(ngf=8)+l1", "resnet_6blocks(ngf=8,norm=batch,dropout=true)+l1"])
def test_inference_and_the_state_dict_do_not_change(spec, monkeypatch):
    plain, recomputing = twins(spec)
    assert isinstance(recomputing.generator, ActivationCheckpointing)
    assert recomputing.generator.state_dict().keys() == plain.generator.state_dict().keys()
    calls = []
    monkeypatch.setattr(recompute, "checkpoint", lambda *args, **kwargs: calls.append(1) or args[0](*args[1:]))
    x, _ = pairs(256)
    for mode in ("eval", "train"):  # train under no_grad: a translator's paper mode
        for models in (plain, recomputing):
            getattr(models.generator, mode)()
        torch.manual_seed(3)
        with torch.no_grad():
            expected = plain.generator(x)
        torch.manual_seed(3)
        with torch.no_grad():
            assert torch.equal(recomputing.generator(x), expected), mode
    assert not calls
    recomputing.generator(x)  # training with gradients: now it recomputes
    assert calls


def training_pairs(root: Path, count: int = 12) -> Path:
    """A folder of noise AB pairs with a train split only: the runs below skip the held-out evaluation."""
    (root / "train").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)).save(root / "train" / f"{index}.png")
    return root


def test_a_resumed_run_continues_exactly_and_the_setting_is_saved(tmp_path):
    # Dropout and batch norm in G, random crops and flips; the trainer's CPU tuning is on (the default here).
    data = f"folder:{training_pairs(tmp_path / 'pairs')}"
    spec = "resnet_6blocks(ngf=4,norm=batch,dropout=true)+patch16(ndf=4)+l1cgan"
    settings = dict(spec=spec, data=data, data_options={}, sample_every=100)
    straight, stopped, plain = tmp_path / "straight", tmp_path / "stopped", tmp_path / "plain"
    Trainer(tiny_config(**settings, max_steps=6, activation_checkpointing=True), straight, progress=False).fit()
    Trainer(tiny_config(**settings, max_steps=3, activation_checkpointing=True), stopped, progress=False).fit()
    Trainer(TrainConfig(), stopped, resume=True, max_steps=6, progress=False).fit()
    Trainer(tiny_config(**settings, max_steps=6), plain, progress=False).fit()
    assert json.loads((stopped / "config.json").read_text())["config"]["activation_checkpointing"] is True
    ours, reference, without = weights(stopped), weights(straight), weights(plain)
    assert ours.keys() == reference.keys() == without.keys()
    for key in ours:
        assert torch.equal(ours[key], reference[key]), key
        torch.testing.assert_close(ours[key], without[key], rtol=1e-4, atol=1e-6, msg=key)  # the same training
    optimizer = [load_file(latest_checkpoint(run / "checkpoints") / "optimizer_g.safetensors")
                 for run in (stopped, straight)]
    assert all(torch.equal(optimizer[0][key], optimizer[1][key]) for key in optimizer[0])


def test_cpu_tuning_can_hand_freed_memory_back(monkeypatch):
    # What the trainer asks for with --activation-checkpointing: a heap that keeps every freed block
    # grows to the plain step's size anyway (see cpu_tuning.tune_for_cpu).
    monkeypatch.setattr(cpu_tuning, "keep_freed_memory", lambda: pytest.fail("freed memory kept"))
    models = resolve(NETWORKS[0][0]).build(3, 3)
    x, y = pairs(128, count=1)
    tuning = cpu_tuning.tune_for_cpu(models, x, y, keep_memory=False)
    assert tuning["keep_freed_memory"] is False and tuning["native_small_convolutions"]["generator"] > 0


def test_a_sweep_passes_the_setting_to_its_runs(capsys, tmp_path):
    code, out, err = run_main(capsys, "sweep", "unet_128(ngf=8)+{l1,patch16+l1cgan}", "--activation-checkpointing",
                              "--dry-run", "--json", "--runs", str(tmp_path))
    assert code == 0, err
    runs = json.loads(out)["runs"]
    assert len(runs) == 2 and all(run["config"]["activation_checkpointing"] is True for run in runs)


def test_an_old_config_without_the_setting_loads():
    saved = TrainConfig().to_dict()
    del saved["activation_checkpointing"]
    assert TrainConfig.from_dict(saved, "config.json").activation_checkpointing is False


def plain_conv(in_channels: int, out_channels: int) -> torch.nn.Module:
    net = torch.nn.Conv2d(in_channels, out_channels, 1)
    net.size_multiple = 1
    return net


class PlainConvPlugin:
    @hookimpl
    def register_generators(self, register):
        register("plain_conv", plain_conv, summary="a generator without set_activation_checkpointing")


def test_a_generator_without_it_is_refused_in_one_line(capsys, tmp_path, register_plugin):
    register_plugin(PlainConvPlugin(), "plain_conv_plugin")
    code, _, err = run_main(capsys, "train", "plain_conv+l1", "--data", "synthfacades", "--data-opt", "size=32",
                            "--data-opt", "count=4", "--load-size", "32", "--crop-size", "32", "--workers", "0",
                            "--max-steps", "1", "--no-progress", "--runs", str(tmp_path), "--activation-checkpointing")
    assert_one_line(code, err, "generator plain_conv does not support activation checkpointing",
                    "--activation-checkpointing")
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_syncbatch_across_gpus_is_refused_in_one_line():
    spec = resolve("unet_128(ngf=8,norm=syncbatch)+l1")
    models = spec.build(3, 3)
    config = TrainConfig(activation_checkpointing=True)
    with pytest.raises(SpecError, match="cannot recompute .*norm=syncbatch") as refused:
        enable_activation_checkpointing(models, spec, config, Ranks(world_size=2), torch.device("cuda", 0))
    assert "\n" not in str(refused.value)
    enable_activation_checkpointing(models, spec, config, Ranks(world_size=2), torch.device("cpu"))  # plain batch norm
    assert models.generator.activation_checkpointing
