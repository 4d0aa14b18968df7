"""The plugin's own tests, as a third party writes them: the zoo's conformance kit
(``pix2pix_zoo.testing``) on the dataset and the plugin, the Lab round trip, the codec's contract,
the ``zoo colorize-scan`` command and a translator rendering through the codec.
Run them with the plugin installed: ``python -m pytest plugins/examples/pix2pix-zoo-colorize/tests``.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pix2pix_zoo_colorize
import pytest
import torch
from PIL import Image
from pix2pix_zoo_colorize import ColorizeFolder as colorize
from pix2pix_zoo_colorize import LabColorize
from pix2pix_zoo.data.photos import hashed_split
from typer.testing import CliRunner

from pix2pix_zoo.translators import find_translator
from pix2pix_zoo.cli import make_app
from pix2pix_zoo.data import open_dataset
from pix2pix_zoo.errors import DataError
from pix2pix_zoo.spec import resolve
from pix2pix_zoo.testing import check_dataset, check_plugin
from pix2pix_zoo.translator import Card, Translator, read_card


def colourful(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth synthetic photo: hue gradients and a disc, with every channel in use."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    phase = rng.uniform(0, 2 * np.pi, 3)
    rgb = np.stack([0.5 + 0.4 * np.sin(4 * x + 3 * y + p) for p in phase], -1)
    disc = (x - rng.uniform(0.3, 0.7)) ** 2 + (y - rng.uniform(0.3, 0.7)) ** 2 < 0.04
    rgb[disc] = rng.uniform(0.1, 0.9, 3)
    return (rgb * 255).round().astype(np.uint8)


@pytest.fixture
def photos(tmp_path):
    """``photos/{train,test}/``: colourful photos (one in a subfolder, one grey), plus a corrupt file."""
    root = tmp_path / "photos"
    for split, count in (("train", 3), ("test", 2)):
        for index in range(count):
            path = root / split / ("album" if index == 2 else "") / f"{index}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(colourful(40, 48, seed=index + 10 * len(split))).save(path)
    Image.fromarray(colourful(40, 48, seed=99)).convert("L").save(root / "train" / "grey.jpg")
    return root


def test_the_plugin_passes_the_conformance_checks():
    registered = check_plugin(pix2pix_zoo_colorize)
    assert {"colorize", "lab_colorize"} <= set(registered)


def test_the_dataset_passes_the_conformance_checks(photos):
    dataset = colorize(photos, "train")
    check_dataset(dataset)
    assert [dataset[i]["name"] for i in range(len(dataset))] == ["0.png", "1.png", "album/2.png", "grey.jpg"]
    item = dataset[0]
    assert item["a"].shape == (1, 40, 48) and item["b"].shape == (2, 40, 48)
    assert item["a"].dtype == item["b"].dtype == torch.uint8
    assert dataset.info.codec == "lab_colorize" and (dataset.info.a_channels, dataset.info.b_channels) == (1, 2)


def test_grey_photos_have_no_colour(photos):
    dataset = colorize(photos, "train")
    grey = dataset[3]["b"].int()
    assert (grey - 128).abs().max() <= 1
    assert (dataset[0]["b"].int() - 128).abs().max() > 20


def test_opened_by_data_scheme(photos):
    assert len(open_dataset(f"colorize:{photos}", "test")) == 2
    with pytest.raises(DataError, match="no folder 'val', only train, test"):
        open_dataset(f"colorize:{photos}", "val")


def test_without_split_folders_a_stable_hash_splits_the_photos(tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    image = Image.fromarray(colourful(8, 8, seed=0))
    for index in range(40):
        image.save(root / f"{index:02}.png")
    splits = {split: [item["name"] for item in colorize(root, split)] for split in ("train", "val", "test")}
    names = sorted(name for names in splits.values() for name in names)
    assert names == [f"{index:02}.png" for index in range(40)]  # every photo in exactly one split
    assert all(splits.values()) and len(splits["train"]) > len(splits["test"])
    for index in range(40, 60):
        image.save(root / f"{index:02}.png")
    for split, before in splits.items():
        after = [item["name"] for item in colorize(root, split)]
        assert set(before) <= set(after)  # new photos never move old ones
        assert all(hashed_split(name) == split for name in after)


def test_round_trip_photo_item_render(photos):
    photo = np.asarray(Image.open(photos / "train" / "0.png"))
    item = colorize(photos, "train")[0]
    x, y = item["a"][None].float() / 127.5 - 1, item["b"][None].float() / 127.5 - 1  # as the engine maps uint8
    rendered = LabColorize().render(x, y)[0].permute(1, 2, 0).numpy() * 255
    error = np.abs(rendered - photo)
    assert error.mean() < 1.0 and np.quantile(error, 0.99) < 4, (error.mean(), error.max())


def test_encode_gives_the_datasets_input(photos):
    photo = torch.from_numpy(np.array(Image.open(photos / "test" / "1.png"))).permute(2, 0, 1)
    x = LabColorize().encode(photo[None].float() / 255)
    expected = colorize(photos, "test")[1]["a"][None].float() / 127.5 - 1
    assert x.shape == (1, 1, 40, 48) and x.min() >= -1 and x.max() <= 1
    assert (x - expected).abs().max() <= 0.5 / 127.5 + 1e-5  # up to the dataset's uint8 rounding


def test_render_shapes_and_ranges():
    codec = LabColorize()
    x, y = torch.rand(2, 1, 8, 12) * 2 - 1, torch.rand(2, 2, 8, 12) * 4 - 2  # y beyond [-1, 1] is clamped
    colour, grey = codec.render(x, y), codec.render(x)
    assert colour.shape == grey.shape == (2, 3, 8, 12)
    assert colour.min() >= 0 and colour.max() <= 1 and grey.min() >= 0 and grey.max() <= 1
    assert torch.allclose(grey[:, 0], grey[:, 1], atol=1e-4) and torch.allclose(grey[:, 1], grey[:, 2], atol=1e-4)
    assert torch.allclose(codec.render(torch.full((1, 1, 2, 2), -1.0)), torch.zeros(1, 3, 2, 2), atol=1e-4)
    assert torch.allclose(codec.render(torch.ones(1, 1, 2, 2)), torch.ones(1, 3, 2, 2), atol=1e-3)
    with pytest.raises(ValueError, match="ab channels"):
        codec.render(x, x)


def test_a_translator_with_the_codec_gives_rgb_pictures():
    generator = resolve("unet_128(ngf=4)+patch70(ndf=4)+l1cgan").build(1, 2).generator
    card = Card(spec="unet_128(ngf=4)+patch70(ndf=4)+l1cgan", in_channels=1, out_channels=2, codec="lab_colorize",
                size_multiple=generator.size_multiple)
    translator = Translator(generator, card, device="cpu", mode="eval")
    output = translator(Image.fromarray(colourful(50, 70, seed=1)).convert("L"))
    assert output.mode == "RGB" and output.size == (70, 50)


def test_scan_command(photos):
    (photos / "test" / "broken.png").write_bytes(b"not a png")
    result = CliRunner().invoke(make_app(), ["colorize-scan", str(photos), "--json"])
    assert result.exit_code == 1  # an unreadable file
    scans = {scan["split"]: scan for scan in json.loads(result.stdout)}
    assert set(scans) == {"train", "test"}
    assert scans["train"]["photos"] == 4 and scans["train"]["grey"] == ["train/grey.jpg"]
    assert scans["test"]["photos"] == 3 and [u["name"] for u in scans["test"]["unreadable"]] == ["test/broken.png"]
    assert "cannot read test/broken.png" in result.stderr and "1 nearly grey" in result.stderr


def test_scan_of_a_missing_folder_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pix2pix_zoo", "colorize-scan", str(tmp_path / "nowhere")],
                            check=False, capture_output=True, text=True)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "is not a directory" in result.stderr


def test_the_demo_translator_is_in_the_catalog():
    entry = find_translator("colorize_synthfacades_demo")
    assert entry.origin == "colorize" and (entry.in_channels, entry.out_channels) == (1, 2)
    # The shipped file is the one the entry describes.
    weights = pix2pix_zoo_colorize.DEMO_WEIGHTS
    assert entry.url == weights.as_uri() and entry.size_bytes == weights.stat().st_size
    assert entry.sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    card = read_card(weights)
    assert card.codec == "lab_colorize" and card.spec == entry.spec and (card.in_channels, card.out_channels) == (1, 2)
