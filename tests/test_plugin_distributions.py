"""Cards and run configs record the plugin distributions a spec uses, so that a machine without them
says which package to install instead of 'unknown generator'."""

from __future__ import annotations

import json

import pytest
from helpers import run_zoo
from PIL import Image

from pix2pix_zoo.engine.config import TrainConfig
from pix2pix_zoo.engine.trainer import Trainer
from pix2pix_zoo.translator import read_card

RESUNET_PLUGIN = """
    from torch import nn
    from pix2pix_zoo import hookimpl

    def resunet(in_channels: int, out_channels: int, *, ngf: int = 4) -> nn.Module:
        net = nn.Sequential(nn.Conv2d(in_channels, ngf, 3, padding=1), nn.ReLU(), nn.Conv2d(ngf, out_channels, 1), nn.Tanh())
        net.size_multiple = 1
        return net

    @hookimpl
    def register_generators(register):
        register("resunet", resunet, summary="a third party's generator")
"""
SPEC = "resunet+patch16(ndf=4)+l1cgan"


@pytest.fixture
def trained_with_a_plugin(installed_distribution, fresh_plugins, tmp_path):
    installed_distribution("pix2pix-zoo-resunet", "resunet", "zoo_resunet", RESUNET_PLUGIN)
    fresh_plugins.reset()
    config = TrainConfig(spec=SPEC, data="synthfacades", data_options={"size": 32, "count": 4}, epochs=1,
                         epochs_decay=0, max_steps=1, load_size=32, crop_size=32, workers=0, device="cpu")
    run = tmp_path / "run"
    Trainer(config, run, progress=False).fit()
    return run


def test_the_card_and_the_config_record_the_distribution(trained_with_a_plugin):
    expected = {"pix2pix-zoo-resunet": "0.1"}
    assert read_card(trained_with_a_plugin / "translator" / "model.safetensors").plugins == expected
    assert json.loads((trained_with_a_plugin / "config.json").read_text())["plugins"] == expected


def test_without_the_plugin_the_error_names_the_package_to_install(trained_with_a_plugin, tmp_path):
    photo = tmp_path / "photo.png"
    Image.new("RGB", (32, 32), (200, 40, 90)).save(photo)
    hint = "it was made with pix2pix-zoo-resunet 0.1, which is not installed here: pip install pix2pix-zoo-resunet"
    translated = run_zoo("translate", str(trained_with_a_plugin / "translator"), str(photo), "-o", str(tmp_path / "out"))
    assert translated.returncode == 1
    (line,) = translated.stderr.strip().splitlines()
    assert "unknown generator 'resunet'" in line and line.endswith(hint)
    resumed = run_zoo("train", "--resume", str(trained_with_a_plugin), "--max-steps", "2")
    assert resumed.returncode == 1
    (line,) = resumed.stderr.strip().splitlines()
    assert "unknown generator 'resunet'" in line and line.endswith(hint)
