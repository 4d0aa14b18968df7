"""The example third-party plugin ``plugins/examples/pix2pix-zoo-colorize`` lived as a third party lives it:
a real, non-editable pip install into a fresh virtual environment, the ``zoo`` CLI in subprocesses
(plugins, components, catalog, its own command, training and translating through its codec, pulling
its catalog entry from a mirror on 127.0.0.1), its own test suite, and a clean uninstall."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import pip, run_env, shared_venv
from PIL import Image, ImageDraw

from pix2pix_zoo.plugins import ALLOW_LIST_VARIABLE
from pix2pix_zoo.translator import read_card
from pix2pix_zoo.translators import MIRROR_VARIABLE

PLUGIN_DIR = Path(__file__).resolve().parents[1] / "plugins" / "examples" / "pix2pix-zoo-colorize"
DISTRIBUTION = "pix2pix-zoo-colorize"
SPEC = "unet_128(ngf=4)+patch70(ndf=4)+l1cgan"
SIZE = 128


def write_photo(path: Path, seed: int) -> None:
    """A colourful 128x128 photo: colour gradients and a saturated disc (its ab channels are far from 0)."""
    y, x = np.mgrid[0:SIZE, 0:SIZE] / (SIZE - 1)
    image = Image.fromarray((np.stack([x, y, 1 - x * y], -1) * 255).astype(np.uint8))
    ImageDraw.Draw(image).ellipse((16 + 8 * seed, 24, 96, 104), fill=(220, 40 + 50 * seed, 30))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def colourfulness(image: np.ndarray) -> float:
    """Mean absolute difference between RGB channels (0 for a grey picture)."""
    pixels = image.astype(int)
    return float(np.abs(pixels[..., 0] - pixels[..., 1]).mean() + np.abs(pixels[..., 1] - pixels[..., 2]).mean())


class ThirdParty:
    """A fresh environment with the plugin installed, and a scratch folder outside the checkout."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.python = shared_venv(root / "venv", with_this_install=True)
        # pip builds in the folder it is given (build/, *.egg-info): give it a copy, not the checkout.
        source = root / "source"
        shutil.copytree(PLUGIN_DIR, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        installed = pip(self.python, "install", str(source))
        assert installed.returncode == 0, installed.stderr
        self.photos = root / "photos"
        for split, count in (("train", 2), ("test", 2)):
            for index in range(count):
                write_photo(self.photos / split / f"{index}.png", seed=index + 2 * (split == "test"))

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        """``args`` run by the environment's python, from the scratch folder, with a private ZOO_HOME."""
        env = {"ZOO_HOME": str(self.home), MIRROR_VARIABLE: "", ALLOW_LIST_VARIABLE: "colorize", **env}
        return subprocess.run([str(self.python), *args], check=False, capture_output=True, text=True, cwd=self.root,
                              env=run_env(**env), timeout=300)

    def zoo(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        return self.run("-m", "pix2pix_zoo", *args, **env)


@pytest.fixture(scope="module")
def third_party(tmp_path_factory):
    return ThirdParty(tmp_path_factory.mktemp("third_party"))


@pytest.fixture(scope="module")
def run_dir(third_party):
    """A few training steps of the paper's colourisation on the photos, through the plugin's dataset."""
    result = third_party.zoo(
        "train", SPEC, "--data", f"colorize:{third_party.photos}", "--max-steps", "2", "--batch-size", "2",
        "--load-size", str(SIZE), "--crop-size", str(SIZE), "--epochs", "1", "--epochs-decay", "0",
        "--workers", "0", "--device", "cpu", "--no-progress", "--runs", "runs", "--name", "colorize",
    )
    assert result.returncode == 0, result.stderr
    return third_party.root / "runs" / "colorize"


def test_the_plugin_is_imported_from_the_environment(third_party):
    code = ("import importlib.metadata as m, pix2pix_zoo_colorize as p; "
            f"print(p.__file__); print(m.version({DISTRIBUTION!r}))")
    result = third_party.run("-c", code)
    assert result.returncode == 0, result.stderr
    location, version = result.stdout.split()
    assert Path(location).is_relative_to(third_party.root / "venv") and version == "0.1.0"


def test_plugins_components_and_catalog_show_it(third_party):
    result = third_party.zoo("plugins", "--json")
    assert result.returncode == 0, result.stderr
    (record,) = [r for r in json.loads(result.stdout) if r["name"] == "colorize"]
    facts = (record["distribution"], record["version"], record["builtin"], record["error"])
    assert facts == (DISTRIBUTION, "0.1.0", False, None)
    assert {"kind": "dataset", "name": "colorize"} in record["registered"]
    assert {"kind": "codec", "name": "lab_colorize"} in record["registered"]
    assert {"kind": "translator", "name": "colorize_synthfacades_demo"} in record["registered"]
    assert {"kind": "command", "name": "colorize-scan"} in record["registered"]

    result = third_party.zoo("components", "--json")
    components = {(c["kind"], c["name"]): c["plugin"] for c in json.loads(result.stdout)}
    assert components[("dataset", "colorize")] == components[("codec", "lab_colorize")] == "colorize"
    assert components[("generator", "unet_256")] == "nets"

    result = third_party.zoo("list", "--json")
    entries = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert entries["colorize_synthfacades_demo"]["origin"] == "colorize" and "sat2map" in entries

    result = third_party.zoo("data", "info", "colorize", "--json")
    facts = json.loads(result.stdout)
    assert (facts["origin"], facts["path"], facts["codec"], facts["reads_your_files"]) == ("local", None, "lab_colorize", True)
    assert "your files" in third_party.zoo("data", "list").stdout


def test_its_command_scans_the_photos(third_party):
    result = third_party.zoo("colorize-scan", str(third_party.photos), "--json")
    assert result.returncode == 0, result.stderr
    scans = {scan["split"]: scan for scan in json.loads(result.stdout)}
    assert {split: scan["photos"] for split, scan in scans.items()} == {"train": 2, "test": 2}
    assert not any(scan["grey"] or scan["unreadable"] for scan in scans.values())


def test_training_renders_colour_samples_and_the_card_keeps_the_codec(run_dir):
    (grid,) = sorted((run_dir / "samples").glob("*.png"))
    with Image.open(grid) as image:
        assert image.mode == "RGB"
        pixels = np.asarray(image)
    inputs, targets = pixels[:, :SIZE], pixels[:, 2 * SIZE :]  # input | output | target
    assert colourfulness(inputs) < 1  # the L channel, shown grey
    assert colourfulness(targets) > 50  # L with the true ab, shown in colour through the codec
    card = read_card(run_dir / "translator" / "model.safetensors")
    assert (card.codec, card.in_channels, card.out_channels) == ("lab_colorize", 1, 2)


def test_translate_gives_rgb_pictures(third_party, run_dir):
    photo = third_party.root / "photo.png"
    Image.fromarray(np.full((48, 80), 120, np.uint8)).save(photo)  # a grey photo of another size
    result = third_party.zoo("translate", str(run_dir), str(photo), "-o", "out", "--device", "cpu", "--no-progress")
    assert result.returncode == 0, result.stderr
    with Image.open(third_party.root / "out" / "photo.png") as image:
        assert image.mode == "RGB" and image.size == (80, 48)


def test_its_shipped_translator_pulls_verified_and_colours(third_party):
    # The weights ship inside the installed package (a file:// URL there, with its sha256).
    result = third_party.zoo("list", "colorize_synthfacades_demo", "--json")
    (entry,) = json.loads(result.stdout)
    assert entry["weights"]["url"].startswith("file://") and str(third_party.root / "venv") in entry["weights"]["url"]
    assert (entry["verification"], entry["downloaded"]) == ("published", False)
    result = third_party.zoo("pull", "colorize_synthfacades_demo")
    assert result.returncode == 0, result.stderr
    (entry,) = json.loads(third_party.zoo("list", "colorize_synthfacades_demo", "--json").stdout)
    assert entry["downloaded"] and entry["verification"] == "published"
    result = third_party.zoo("translate", "colorize_synthfacades_demo", str(third_party.photos / "test" / "0.png"),
                             "-o", "pulled", "--device", "cpu", "--no-progress")
    assert result.returncode == 0, result.stderr
    with Image.open(third_party.root / "pulled" / "0.png") as image:
        assert image.mode == "RGB" and image.size == (SIZE, SIZE)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_it_trains_on_photos_of_mixed_sizes(third_party, batch_size):
    """The issue's reproduction: a folder of ordinary photos of several sizes, at batch sizes 1 and 4."""
    photos = third_party.root / "mixed"
    if not photos.exists():
        for split, count in (("train", 8), ("test", 3)):
            for index in range(count):
                write_photo(photos / split / f"{index}.jpg", seed=index % 3)
                with Image.open(photos / split / f"{index}.jpg") as image:
                    image.resize([(512, 512), (451, 300), (300, 451)][index % 3]).save(photos / split / f"{index}.jpg")
    result = third_party.zoo(
        "train", "unet_128(ngf=8)+patch70(ndf=8)+l1cgan", "--data", f"colorize:{photos}", "--load-size", "143",
        "--crop-size", "128", "--batch-size", str(batch_size), "--max-steps", "3", "--device", "cpu", "--no-progress",
        "--runs", "runs", "--name", f"mixed-{batch_size}", "--json",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["pairs"] == 3
    run = third_party.root / "runs" / f"mixed-{batch_size}"
    assert (run / "translator" / "model.safetensors").is_file() and (run / "eval.json").is_file()


def test_its_own_tests_pass_in_the_environment(third_party):
    result = third_party.run("-m", "pytest", str(PLUGIN_DIR / "tests"), "-q", "-p", "no:cacheprovider",
                             PYTHONDONTWRITEBYTECODE="1")  # no __pycache__ left in the checkout
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_uninstalled_it_is_gone_and_the_zoo_still_works(third_party):
    removed = pip(third_party.python, "uninstall", "-y", DISTRIBUTION)
    assert removed.returncode == 0, removed.stderr
    result = third_party.zoo("plugins", "--json")
    assert result.returncode == 0 and "colorize" not in {r["name"] for r in json.loads(result.stdout)}
    result = third_party.zoo("components", "--json")
    names = {c["name"] for c in json.loads(result.stdout)}
    assert result.returncode == 0 and {"unet_256", "patch70", "l1cgan", "facades"} <= names
    assert not {"colorize", "lab_colorize"} & names
    result = third_party.zoo("train", SPEC, "--data", f"colorize:{third_party.photos}", "--max-steps", "1")
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "colorize" in result.stderr
    assert third_party.zoo("info", "unet+patch70+l1cgan").returncode == 0
