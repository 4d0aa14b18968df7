"""Image codecs: a dataset names one, the trainer renders its sample grids through it and keeps its
name in the translator's card, and the translator turns pictures into inputs and outputs into
pictures with it. A toy codec makes each step visible: it shows inputs in the red channel only and
outputs with their channels reversed, which plain rendering never does."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import run_main
from PIL import Image

from pix2pix_zoo import hookimpl
from pix2pix_zoo.engine.config import TrainConfig
from pix2pix_zoo.engine.trainer import Trainer
from pix2pix_zoo.errors import SpecError
from pix2pix_zoo.interfaces import DatasetInfo, ImageCodec, PairedDataset, describe_dataset
from pix2pix_zoo.translator import Translator, read_card


class RedReversed(ImageCodec):
    def encode(self, rgb):
        return rgb.mean(1, keepdim=True).mul(2).sub(1)

    def render(self, x, y=None):
        if y is None:
            unit = (x + 1) / 2
            return torch.cat([unit, torch.zeros_like(unit), torch.zeros_like(unit)], 1)
        return ((y + 1) / 2).flip(1).clamp(0, 1)


class GreyToColour(PairedDataset):
    def __init__(self, split: str) -> None:
        generator = torch.Generator().manual_seed(len(split))
        self.b = torch.randint(0, 256, (6, 3, 32, 32), generator=generator, dtype=torch.uint8)
        self.info = toy_dataset.info

    def __len__(self):
        return len(self.b)

    def __getitem__(self, index):
        b = self.b[index]
        return {"a": b.float().mean(0, keepdim=True).round().to(torch.uint8), "b": b, "name": f"{index}.png"}


@describe_dataset(DatasetInfo(name="grey_to_colour", a_channels=1, b_channels=3, task="grey <-> colour",
                              codec="red_reversed"))
def toy_dataset(root, split: str) -> PairedDataset:
    return GreyToColour(split)


class ToyPlugin:
    @hookimpl
    def register_codecs(self, register):
        register("red_reversed", RedReversed, summary="inputs in red, outputs with channels reversed")

    @hookimpl
    def register_datasets(self, register):
        register("grey_to_colour", toy_dataset, summary="random colours and their grey")


@pytest.fixture
def toy(register_plugin):
    register_plugin(ToyPlugin(), "toy")


def train(run_dir, direction=None):
    config = TrainConfig(spec="resnet_6blocks(ngf=4)+patch16(ndf=4)+l1cgan", data="grey_to_colour", epochs=1,
                         epochs_decay=0, preprocess="none", flip=False, workers=0, device="cpu", max_steps=1,
                         batch_size=2, sample_every=1, direction=direction)
    Trainer(config, run_dir, progress=False).fit()
    (grid,) = sorted((run_dir / "samples").glob("*.png"))
    return np.asarray(Image.open(grid).convert("RGB"))


def test_codecs_are_components(toy, capsys):
    code, out, _ = run_main(capsys, "components", "codec")
    assert code == 0 and "red_reversed" in out and "inputs in red" in out


def test_trainer_renders_through_the_codec_and_the_card_keeps_it(toy, tmp_path):
    grid = train(tmp_path / "run")
    inputs = grid[:, :32]
    assert inputs[..., 0].any() and not inputs[..., 1:].any()  # the input column: red only
    assert read_card(tmp_path / "run" / "translator" / "model.safetensors").codec == "red_reversed"

    translator = Translator.from_pretrained(tmp_path / "run", device="cpu", mode="eval")
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 28, 3), dtype=np.uint8))
    x = translator.to_tensor(photo)
    expected_x = torch.from_numpy(np.array(photo)).permute(2, 0, 1).float().div(255).mean(0, keepdim=True) * 2 - 1
    assert torch.allclose(x, expected_x, atol=1e-6)
    out = np.asarray(translator(photo))
    plain = translator.translate(x[None])[0]  # 3 channels; the codec shows them reversed
    expected = ((plain.flip(0) + 1) / 2).clamp(0, 1).mul(255).round().permute(1, 2, 0).numpy()
    assert out.shape == (20, 28, 3) and np.abs(out.astype(float) - expected).max() <= 1
    sheet = np.asarray(translator.sheet(photo, translator(photo)))
    assert not sheet[:, :28, 1:].any()  # the input half of a side-by-side sheet: red only


def test_reversed_direction_shows_plain_channels(toy, tmp_path):
    grid = train(tmp_path / "run", direction="BtoA")
    assert grid[:, :32, 1:].any()  # the colour input shown as it is
    assert read_card(tmp_path / "run" / "translator" / "model.safetensors").codec == ""


def test_a_card_naming_a_missing_codec_is_one_clear_error(toy, tmp_path, fresh_plugins):
    train(tmp_path / "run")
    fresh_plugins.unregister("toy")
    with pytest.raises(SpecError, match="codec .red_reversed. is not installed"):
        Translator.from_pretrained(tmp_path / "run", device="cpu")
