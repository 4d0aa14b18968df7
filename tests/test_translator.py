"""Translator: loading by file and folder, any image size, modes and seeds, tiling, batching, ``zoo translate``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import run_zoo
from PIL import Image
from torch import nn

from pix2pix_zoo.cli.translate import gather_inputs
from pix2pix_zoo.errors import BadImageError, DataError, ZooError
from pix2pix_zoo.spec import resolve
from pix2pix_zoo.translator import Card, Translator, pad_to_multiple, save_translator

TINY_SPEC = "unet_128(ngf=2)+l1"  # batch norm and dropout, size multiple 128


def save_tiny(directory, in_channels=3, out_channels=3):
    torch.manual_seed(0)
    models = resolve(TINY_SPEC).build(in_channels, out_channels)
    card = Card(spec=str(models.spec), in_channels=in_channels, out_channels=out_channels,
                size_multiple=models.generator.size_multiple)
    return save_translator(directory, models.generator, card)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("run") / "translator")


def noise_image(width, height, mode="RGB", seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, len(mode)), dtype=np.uint8)
    return Image.fromarray(pixels.squeeze(-1) if mode == "L" else pixels, mode)


def test_loads_from_the_file_its_folder_and_the_run_directory(weights):
    outputs = [
        Translator.from_pretrained(where, device="cpu", mode="eval").translate(torch.zeros(1, 3, 8, 8))
        for where in (weights, weights.parent, weights.parent.parent, str(weights))
    ]
    assert all(torch.equal(outputs[0], other) for other in outputs[1:])
    with pytest.raises(ZooError, match="holds no model.safetensors"):
        Translator.from_pretrained(weights.parent.parent.parent)
    with pytest.raises(ZooError, match="no such file"):
        Translator.from_pretrained(weights.parent / "missing.safetensors")


@pytest.mark.parametrize("size", [(301, 157), (157, 301), (300, 10), (10, 300), (1, 1), (129, 2)])
def test_any_size_and_aspect_comes_back_at_its_size(weights, size):
    translator = Translator.from_pretrained(weights, device="cpu", mode="eval")
    output = translator(noise_image(*size))
    assert output.size == size and output.mode == "RGB"


def test_padding_reflects_and_crops_back_exactly():
    images = torch.arange(2 * 3 * 5, dtype=torch.float32).view(1, 2, 3, 5)
    for multiple in (1, 4, 8, 128):
        padded, (top, left) = pad_to_multiple(images, multiple)
        assert padded.shape[-2] % multiple == 0 and padded.shape[-1] % multiple == 0
        assert torch.equal(padded[..., top : top + 3, left : left + 5], images)
    padded, _ = pad_to_multiple(torch.full((1, 1, 1, 1), 0.5), 16)
    assert padded.shape == (1, 1, 16, 16) and bool((padded == 0.5).all())


def test_channels_are_converted_both_ways(tmp_path, weights):
    colour = Translator.from_pretrained(weights, device="cpu", mode="eval")
    grey = noise_image(40, 30, "L")
    assert np.array_equal(np.asarray(colour(grey)), np.asarray(colour(grey.convert("RGB"))))
    mono = Translator.from_pretrained(save_tiny(tmp_path, 1, 1), device="cpu", mode="eval")
    output = mono(noise_image(40, 30))
    assert output.mode == "L" and output.size == (40, 30)


def test_eval_is_deterministic_and_paper_repeatable_by_seed_without_touching_the_weights(weights):
    image = noise_image(64, 48)
    eval_mode = Translator.from_pretrained(weights, device="cpu", mode="eval")
    assert np.array_equal(np.asarray(eval_mode(image)), np.asarray(eval_mode(image)))

    paper = Translator.from_pretrained(weights, device="cpu", mode="paper", seed=1)
    assert paper.mode == "paper" == Translator.from_pretrained(weights, device="cpu").mode  # the card's default
    before = {k: v.clone() for k, v in paper.generator.state_dict().items()}
    first, again = paper.translate(paper.to_tensor(image)[None]), paper.translate(paper.to_tensor(image)[None])
    assert torch.equal(first, again)
    paper.seed = 2
    assert not torch.equal(first, paper.translate(paper.to_tensor(image)[None]))
    after = paper.generator.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert paper.generator.training  # the translator's generator is left as it was built


def test_batching_equals_one_by_one_in_eval_mode(weights):
    translator = Translator.from_pretrained(weights, device="cpu", mode="eval")
    images = [noise_image(50, 40, seed=1), noise_image(30, 70, seed=2), noise_image(50, 40, seed=3)]
    batched = translator.translate_images(images, batch_size=3)
    singly = [translator(image) for image in images]
    assert [o.size for o in batched] == [(50, 40), (30, 70), (50, 40)]
    for a, b in zip(batched, singly):
        assert np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max() <= 1  # float batching noise


def local_generator() -> nn.Module:
    """Three 3x3 convolutions: every output pixel sees 3 pixels around it, so tiles can be exact."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(4, 3, 3, padding=1), nn.Tanh())
    net.size_multiple = 1
    return net


def test_tiles_blend_to_the_untiled_result_for_a_local_network():
    card = Card(spec="local", in_channels=3, out_channels=3, inference_mode="eval")
    whole = Translator(local_generator(), card, device="cpu", tile=None)
    tiled = Translator(local_generator(), card, device="cpu", tile=32, overlap=12)  # zero margin 3 = reach
    images = torch.rand(2, 3, 75, 101) * 2 - 1
    torch.testing.assert_close(tiled.translate(images), whole.translate(images), atol=1e-6, rtol=0)
    seams = Translator(local_generator(), card, device="cpu", tile=32, overlap=4)  # margin 1 < reach: seams
    assert not torch.allclose(seams.translate(images), whole.translate(images), atol=1e-4)


def test_tiling_keeps_to_the_size_multiple(weights):
    translator = Translator.from_pretrained(weights, device="cpu", mode="eval", tile=300, overlap=20)
    assert (translator.tile, translator.overlap) == (256, 128)
    assert translator(noise_image(400, 130)).size == (400, 130)
    with pytest.raises(ZooError, match="tile 128 is too small for overlap 128: .* must be at least 256"):
        Translator.from_pretrained(weights, device="cpu", tile=128, overlap=128)


def test_a_corrupted_file_is_one_clear_error(tmp_path, weights):
    data = weights.read_bytes()
    (tmp_path / "garbage.safetensors").write_bytes(b"not a safetensors file at all")
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    for name in ("garbage", "cut"):
        with pytest.raises(ZooError, match=name):
            Translator.from_pretrained(tmp_path / f"{name}.safetensors", device="cpu")


def test_inputs_keep_their_relative_names_and_may_not_collide(tmp_path):
    for name in ("a/x.jpg", "a/deep/y.png", "b/z.png", "b/note.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    names = [str(n) for _, n in gather_inputs([str(tmp_path / "a"), str(tmp_path / "b" / "*")])]
    assert names == ["deep/y.png", "x.png", "z.png"]
    (tmp_path / "a" / "x.png").write_bytes(b"")
    with pytest.raises(DataError, match="both be written"):
        gather_inputs([str(tmp_path / "a")])
    with pytest.raises(DataError, match="no such file"):
        gather_inputs([str(tmp_path / "nothing")])


def test_zoo_translate_folders_globs_side_by_side_and_a_bad_image(tmp_path, weights):
    inputs = tmp_path / "in"
    for name, size in {"a.png": (37, 21), "sub/b.jpg": (20, 30), "sub/deeper/c.png": (37, 21)}.items():
        (inputs / name).parent.mkdir(parents=True, exist_ok=True)
        noise_image(*size).save(inputs / name)
    bad = "sub/a-long-name-that-would-wrap-a-console-line-if-the-message-were-wrapped.png"
    (inputs / bad).write_bytes(b"\x89PNG broken")
    (tmp_path / "more").mkdir()
    noise_image(16, 16, "L").save(tmp_path / "more" / "grey.png")
    result = run_zoo("translate", str(weights.parent.parent), "in", "more/*.png", "-o", "out", "--device", "cpu",
                     "--mode", "eval", "--batch-size", "2", "--side-by-side", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    named = [line for line in result.stderr.splitlines() if bad in line]
    assert len(named) == 1 and named[0].startswith("error: cannot read image")
    written = sorted(result.stdout.split())
    assert written == sorted(f"out/{n}" for n in ("a.png", "sub/b.png", "sub/deeper/c.png", "grey.png"))
    with Image.open(tmp_path / "out" / "sub" / "b.png") as sheet:
        assert sheet.size == (40, 30) and sheet.mode == "RGB"  # input | output
    with Image.open(tmp_path / "out" / "grey.png") as sheet:
        assert sheet.size == (32, 16)


def test_loading_initialises_nothing_imports_no_compiler_and_copies_the_weights_out_of_the_file(
        tmp_path, monkeypatch):
    from safetensors import safe_open

    from pix2pix_zoo.translator import load_generator, read_card

    weights, loaded = save_tiny(tmp_path / "translator"), save_tiny(tmp_path / "fresh")

    def initialised(*args, **kwargs):
        raise AssertionError("a loaded generator was initialised first")

    monkeypatch.setattr(torch.nn.init, "normal_", initialised)
    generator = load_generator(weights, read_card(weights))
    with safe_open(str(weights), framework="pt") as handle:
        saved = {key: handle.get_tensor(key).clone() for key in handle.keys()}
    state = generator.state_dict()
    assert state.keys() == saved.keys() and all(torch.equal(state[k], saved[k]) for k in saved)
    assert not any(t.is_meta for t in [*generator.parameters(), *generator.buffers()])
    with open(weights, "r+b") as file:  # rewritten in place, as `cp other.safetensors here` would
        file.seek(4096)
        file.write(bytes(weights.stat().st_size - 4096))
    assert all(torch.equal(v, saved[k]) for k, v in generator.state_dict().items())
    # The whole load, in a fresh process: torch._dynamo (1.7 s to import) stays out.
    script = ("import sys; from pix2pix_zoo.translator import Translator; "
              f"Translator.from_pretrained({str(loaded)!r}, device='cpu'); print('torch._dynamo' in sys.modules)")
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr


class ScaledNet(nn.Module):
    """A plugin's generator keeping a non-persistent buffer, which no weights file holds."""

    size_multiple = 1

    def __init__(self, in_channels: int, out_channels: int, *, width: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)
        self.register_buffer("scale", torch.full((1,), 0.5), persistent=False)

    def forward(self, x):
        return self.conv(x) * self.scale


def test_a_generator_with_a_buffer_the_file_lacks_is_built_for_real_and_loaded(tmp_path, register_plugin):
    from pix2pix_zoo import hookimpl
    from pix2pix_zoo.translator import load_generator, read_card

    class Plugin:
        @hookimpl
        def register_generators(self, register):
            register("scaled_net", ScaledNet, summary="test generator with a non-persistent buffer")

    register_plugin(Plugin(), name="scaled")
    torch.manual_seed(0)
    models = resolve("scaled_net+l1").build(3, 3)
    card = Card(spec=str(models.spec), in_channels=3, out_channels=3, size_multiple=1)
    weights = save_translator(tmp_path / "translator", models.generator, card)
    loaded = load_generator(weights, read_card(weights))
    assert loaded.scale.device.type == "cpu" and loaded.scale.item() == 0.5
    x = torch.rand(1, 3, 5, 5)
    assert torch.equal(loaded(x), models.generator(x))


def jpeg_folder(folder, sizes):
    folder.mkdir(parents=True, exist_ok=True)
    for index, size in enumerate(sizes):
        noise_image(*size, seed=index).save(folder / f"{index:02d}.jpg", quality=95)
    return sorted(folder.glob("*.jpg"))


@pytest.mark.parametrize("file_threads", [True, False], ids=["file-threads", "in-turn"])
def test_translate_files_writes_what_translate_images_computes_in_order_whole(tmp_path, weights, file_threads):
    from pix2pix_zoo.data.images import open_image

    sources = jpeg_folder(tmp_path / "in", [(40, 30), (40, 30), (23, 17), (40, 30), (23, 17), (40, 30), (9, 9)])
    (tmp_path / "in" / "03.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    translator = Translator.from_pretrained(weights, device="cpu", mode="eval")
    jobs = [(source, Path("deep") / source.with_suffix(".png").name) for source in sources]
    results = list(translator.translate_files(jobs, tmp_path / "out", batch_size=2, file_threads=file_threads))
    assert [source for source, _ in results] == sources
    for (source, written), (_, name) in zip(results, jobs):
        if source.name == "03.jpg":
            assert isinstance(written, BadImageError) and "03.jpg" in str(written)
            assert not (tmp_path / "out" / name).exists()
            continue
        assert written == tmp_path / "out" / name
        with Image.open(written) as image:
            assert np.array_equal(np.asarray(image), np.asarray(translator(open_image(source))))
    assert sorted(p.name for p in (tmp_path / "out" / "deep").iterdir()) == [
        f"{i:02d}.png" for i in range(7) if i != 3]  # no temporary file left behind


@pytest.mark.parametrize("file_threads", [True, False], ids=["file-threads", "in-turn"])
def test_translate_files_raises_a_write_error_and_leaves_no_partial_file(tmp_path, weights, file_threads):
    sources = jpeg_folder(tmp_path / "in", [(16, 16)] * 5)
    (tmp_path / "out" / "02.png").mkdir(parents=True)  # a folder where the third output would go
    translator = Translator.from_pretrained(weights, device="cpu", mode="eval")
    jobs = [(source, Path(source.with_suffix(".png").name)) for source in sources]
    results = translator.translate_files(jobs, tmp_path / "out", file_threads=file_threads)
    done = [next(results)[0], next(results)[0]]
    with pytest.raises(OSError):
        next(results)
    assert done == sources[:2]
    names = {p.name for p in (tmp_path / "out").iterdir()}  # with threads, a later output may be written too
    assert {"00.png", "01.png", "02.png"} <= names and not any(name.startswith(".") for name in names)
    assert (tmp_path / "out" / "02.png").is_dir()


def test_half_precisions_run_under_autocast_close_to_fp32(tmp_path, weights):
    image = torch.rand(2, 3, 128, 128) * 2 - 1
    full = Translator.from_pretrained(weights, device="cpu", mode="eval").translate(image)
    for precision in ("bf16", "fp16"):
        translator = Translator.from_pretrained(weights, device="cpu", mode="eval", precision=precision)
        convolutions = [m.weight for m in translator.generator.modules() if isinstance(m, nn.Conv2d)]
        assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convolutions)  # the 16-bit kernels' layout
        half = translator.translate(image)
        assert half.dtype == torch.float32 and not torch.equal(half, full)  # it ran in 16 bits, and came back in 32
        assert (half - full).abs().max() < 0.05
    seeded = [Translator.from_pretrained(weights, device="cpu", mode="paper", seed=3, precision="bf16").translate(image)
              for _ in range(2)]
    assert torch.equal(*seeded)
    with pytest.raises(ZooError, match="unknown precision 'int8'; choose one of: fp32, bf16, fp16"):
        Translator.from_pretrained(weights, device="cpu", precision="int8")
    with pytest.raises(ZooError, match="the onnxruntime backend runs the file's own precision, not bf16"):
        Translator.from_pretrained(weights, device="cpu", mode="eval", backend="onnxruntime", precision="bf16")
    noise_image(40, 30).save(tmp_path / "in.png")
    result = run_zoo("translate", str(weights), "in.png", "-o", "out", "--device", "cpu", "--mode", "eval",
                     "--precision", "bf16", "--no-progress", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.split() == ["out/in.png"], result.stderr
    with Image.open(tmp_path / "out" / "in.png") as written:
        expected = np.asarray(Translator.from_pretrained(weights, device="cpu", mode="eval")(noise_image(40, 30)))
        assert written.size == (40, 30) and np.abs(np.asarray(written).astype(int) - expected).max() <= 8
