"""ONNX exports run on arrays without torch (pix2pix_zoo/onnx_translator.py): the same pixels as the
torch Translator around the same file, for any size; tiles handed over; `zoo translate model.onnx`
imports no torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import run_env, run_zoo
from PIL import Image
from test_export import card_of, trained_looking
from test_startup import MARKER, run_watched

from pix2pix_zoo.errors import ZooError
from pix2pix_zoo.export import export_generator
from pix2pix_zoo.onnx_translator import OnnxTranslator
from pix2pix_zoo.translator import Translator, pad_to_multiple

SPEC = "unet_128(ngf=4)"  # size multiple 128, dropout in its inner levels


def noise(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    generator = np.random.default_rng(seed)
    channels = 3 if mode == "RGB" else 1
    pixels = generator.integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(pixels if channels == 3 else pixels[..., 0], mode)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exports")
    generator = trained_looking(SPEC)
    card = card_of(SPEC, generator)
    return {mode: export_generator(generator, card, folder / f"{mode}.onnx", "onnx", mode=mode)
            for mode in ("eval", "paper")}


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_the_same_pixels_as_the_torch_translator_for_every_size_and_mode_of_image(exports):
    light = OnnxTranslator.from_file(exports["eval"])
    full = Translator.from_pretrained(exports["eval"], device="cpu")
    # Sizes that pad by reflection, by reflection repeated, by replication (a side of one pixel),
    # and none; two images of one size run together in a batch; grey, RGBA and palette inputs.
    images = [noise(130, 90), noise(1, 37), noise(300, 5, seed=1), noise(128, 128), noise(130, 90, seed=2),
              noise(57, 61, "L"), noise(40, 33).convert("RGBA"), noise(70, 20).convert("P")]
    ours, theirs = light.translate_images(images, batch_size=2), full.translate_images(images, batch_size=2)
    for image, mine, expected in zip(images, ours, theirs):
        assert mine.size == image.size and mine.mode == expected.mode == "RGB"
        assert np.array_equal(pixels(mine), pixels(expected))


def test_padding_follows_the_torch_padding_exactly():
    from pix2pix_zoo.geometry import padding_steps
    from pix2pix_zoo.onnx_translator import _pad

    for height, width, multiple in [(5, 300, 128), (1, 37, 16), (90, 130, 128), (2, 1, 256), (128, 128, 128)]:
        image = np.random.default_rng(height).random((1, 2, height, width), dtype=np.float32)
        reflections, rest, offset = padding_steps(height, width, multiple)
        padded = image
        for step in reflections:
            padded = _pad(padded, step, "reflect")
        if any(rest):
            padded = _pad(padded, rest, "edge")
        expected, expected_offset = pad_to_multiple(torch.from_numpy(image), multiple)
        assert offset == expected_offset and np.array_equal(padded, expected.numpy())


def test_images_to_tile_are_handed_to_the_torch_translator_around_the_same_session(exports):
    light = OnnxTranslator.from_file(exports["eval"], tile=256, overlap=128)
    full = Translator.from_pretrained(exports["eval"], device="cpu", tile=256, overlap=128)
    images = [noise(300, 140), noise(100, 60)]  # the first is 384 wide once padded: tiled
    ours = light.translate_images(images)
    assert light._tiling_translator is not None and light._tiling_translator.generator.session is light.session
    for mine, expected in zip(ours, full.translate_images(images)):
        assert np.array_equal(pixels(mine), pixels(expected))


def test_paper_mode_runs_random_repeatable_by_seed_and_keeps_to_the_exported_mode(exports):
    images = [noise(130, 90)]
    first = OnnxTranslator.from_file(exports["paper"], seed=3)
    assert first.mode == "paper"
    once, twice = first.translate_images(images)[0], first.translate_images(images)[0]
    assert not np.array_equal(pixels(once), pixels(twice))  # dropout stays random call by call
    again = OnnxTranslator.from_file(exports["paper"], seed=3)
    assert np.array_equal(pixels(again.translate_images(images)[0]), pixels(once))
    with pytest.raises(ZooError, match="^this translator runs paper mode only, not eval$"):
        OnnxTranslator.from_file(exports["paper"], mode="eval")
    with pytest.raises(ZooError, match="^side-by-side sheets are drawn by the torch Translator"):
        list(first.translate_files([], exports["paper"].parent, side_by_side=True))


def test_which_commands_run_here_and_which_go_to_torch(exports, tmp_path):
    plain = {"backend": "auto", "device": "cpu", "precision": "fp32", "side_by_side": False}
    assert OnnxTranslator.runs(exports["eval"], **plain)
    assert OnnxTranslator.runs(exports["eval"], **{**plain, "device": "auto"})  # the CPU onnxruntime here
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    for path, changed in [(exports["eval"], {"side_by_side": True}), (exports["eval"], {"precision": "bf16"}),
                          (exports["eval"], {"backend": "torch"}), (exports["eval"], {"device": "cuda"}),
                          (weights, {}), (tmp_path / "missing.onnx", {})]:
        assert not OnnxTranslator.runs(path, **{**plain, **changed}), (path, changed)


def test_zoo_translate_runs_an_onnx_file_without_torch_to_the_same_files(exports, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    noise(130, 90).save(inputs / "a.png")
    noise(70, 200, seed=1).save(inputs / "b.jpg")
    (inputs / "broken.png").write_bytes(b"not a png")
    light = run_watched("translate", str(exports["eval"]), str(inputs), "-o", str(tmp_path / "light"),
                        "--no-progress", "-b", "2", ZOO_HOME=str(tmp_path / "home"))
    assert light.returncode == 1 and MARKER not in light.stderr, light.stderr
    assert "broken.png" in light.stderr and "1 of 3 images could not be read" in light.stderr
    # The torch Translator runs the same file where sheets are asked for; its plain outputs agree.
    full = Translator.from_pretrained(exports["eval"], device="cpu")
    for name, size in [("a.png", (130, 90)), ("b.png", (70, 200))]:
        written = Image.open(tmp_path / "light" / name)
        source = next(inputs.glob(f"{name[0]}.*"))
        assert written.size == size
        assert np.array_equal(pixels(written), pixels(full(Image.open(source))))
    sheets = run_zoo("translate", str(exports["eval"]), str(inputs / "a.png"), "-o", str(tmp_path / "sheets"),
                     "--no-progress", "--side-by-side")
    assert sheets.returncode == 0, sheets.stderr
    assert Image.open(tmp_path / "sheets" / "a.png").size == (260, 90)


def test_the_library_path_imports_no_torch_either(exports, tmp_path):
    noise(90, 70).save(tmp_path / "a.png")
    program = (
        "import sys\nfrom pathlib import Path\nfrom PIL import Image\n"
        "from pix2pix_zoo.onnx_translator import OnnxTranslator\n"
        f"translator = OnnxTranslator.from_file(Path({str(exports['paper'])!r}), seed=3)\n"
        f"(photo,) = translator.translate_images([Image.open({str(tmp_path / 'a.png')!r})])\n"
        "print(photo.size, 'torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=run_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(90, 70) False"


@pytest.mark.parametrize("channels", [(1, 1), (1, 3), (3, 1)], ids=["grey-to-grey", "grey-to-colour", "colour-to-grey"])
def test_grey_inputs_and_outputs_come_out_as_the_torch_translator_makes_them(channels, tmp_path):
    generator = trained_looking(SPEC, channels)
    path = export_generator(generator, card_of(SPEC, generator, channels), tmp_path / "m.onnx", "onnx")
    images = [noise(130, 90), noise(40, 50, "L")]
    expected = Translator.from_pretrained(path, device="cpu").translate_images(images)
    for mine, theirs in zip(OnnxTranslator.from_file(path).translate_images(images), expected):
        assert mine.mode == theirs.mode == ("L" if channels[1] == 1 else "RGB")
        assert np.array_equal(pixels(mine), pixels(theirs))


def test_a_half_precision_export_runs_in_half_and_makes_the_torch_translators_pixels(tmp_path):
    generator = trained_looking(SPEC)
    path = export_generator(generator, card_of(SPEC, generator), tmp_path / "half.onnx", "onnx", half=True)
    light = OnnxTranslator.from_file(path)
    assert light.half  # the file's input is float16: the arrays are cast to it, the outputs back
    images = [noise(130, 90), noise(57, 61, "L")]
    expected = Translator.from_pretrained(path, device="cpu").translate_images(images)
    for mine, theirs in zip(light.translate_images(images), expected):
        assert np.array_equal(pixels(mine), pixels(theirs))
