"""The pieces of ``benchmarks/whole_process.py`` that need no training process: the JPEG folder it
writes for both sides, the reference-style reading of it, and the figures it reports; and the
images and weights ``benchmarks/inference_speed.py`` gives both of its sides; and, for every script
in benchmarks/, that what it imports exists and its ``--help`` runs.

Running the script itself (two real training processes and the step benchmark, however tiny the
networks) takes 30 s or more on 2 cores, so it is not run here; performance is never a timed test
(CONTRIBUTING).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "whole_process.py"
_spec = importlib.util.spec_from_file_location("whole_process_benchmark", _SCRIPT)
whole_process = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(whole_process)


def test_the_folder_holds_side_by_side_pairs_in_the_reference_layout(tmp_path):
    pool = whole_process.make_pairs(tmp_path / "jpegs", 3)
    root = whole_process.dataset_root(tmp_path, pool, 2)
    files = sorted((root / "train").iterdir())
    assert [p.name for p in files] == ["00000.jpg", "00001.jpg"]
    assert [p.name for p in root.iterdir()] == ["train"]  # no held-out split: neither side evaluates
    with Image.open(files[0]) as image:
        assert image.size == (512, 256) and image.format == "JPEG"


def test_the_reference_style_reading_crops_both_halves_alike(tmp_path):
    pool = whole_process.make_pairs(tmp_path / "jpegs", 1)
    root = whole_process.dataset_root(tmp_path, pool, 1)
    random.seed(3)
    item = whole_process.AlignedJPEGs(root, load_size=143, crop_size=128)[0]
    random.seed(3)  # the reference's get_params: crop x, crop y, flip, from Python's random
    x, y, flip = random.randint(0, 15), random.randint(0, 15), random.random() > 0.5
    with Image.open(pool[0]) as pair:
        pair = pair.convert("RGB")
        for key, box in (("A", (0, 0, 256, 256)), ("B", (256, 0, 512, 256))):
            half = pair.crop(box).resize((143, 143), Image.BICUBIC).crop((x, y, x + 128, y + 128))
            if flip:
                half = half.transpose(Image.FLIP_LEFT_RIGHT)
            expected = torch.from_numpy(np.asarray(half).copy()).permute(2, 0, 1).float() / 127.5 - 1
            assert item[key].dtype == torch.float32
            torch.testing.assert_close(item[key], expected)


def test_the_summary_gives_the_ratios_and_the_steady_figure():
    rounds = [
        {"first": "ours", "ours": {"seconds": 50.0, "steady_img_per_s": 1.0}, "reference": {"seconds": 75.0},
         "step_img_per_s": 1.0},
        {"first": "reference", "ours": {"seconds": 40.0, "steady_img_per_s": 0.96}, "reference": {"seconds": 80.0},
         "step_img_per_s": 1.2},
    ]
    summary = whole_process.summarise(96, rounds)
    assert summary["ratio_median"] == pytest.approx(1.75)
    assert (summary["ratio_min"], summary["ratio_max"]) == (pytest.approx(1.5), pytest.approx(2.0))
    assert summary["ratio_goal"] == 1.5
    assert summary["steady_img_per_s"] == pytest.approx(0.98)
    assert summary["steady_to_step"] == [pytest.approx(1.0), pytest.approx(0.8)]
    lines = []
    whole_process.print_summary(summary, "reference", lines.append)
    assert "1.75x" in lines[0] and "met" in lines[0]


def test_the_phase_line_says_what_no_phase_holds():
    timings = {"phases": {"steps": {"seconds": 30.0, "count": 95}, "start": {"seconds": 3.0, "count": 1},
                          "checkpoint_writes": {"seconds": 4.0, "count": 1}}}
    line = whole_process.describe_timings(timings, wall=40.0)
    assert line.startswith("start 3.0, steps 30.0")
    assert "in no phase 7.0" in line and "checkpoint write 4.0 beside" in line
    assert whole_process.describe_timings(None, wall=1.0) == ""


_INFERENCE = Path(__file__).resolve().parents[1] / "benchmarks" / "inference_speed.py"
_inference_spec = importlib.util.spec_from_file_location("inference_speed_benchmark", _INFERENCE)
inference_speed = importlib.util.module_from_spec(_inference_spec)
_inference_spec.loader.exec_module(inference_speed)


def test_both_sides_of_the_inference_benchmark_get_the_same_images_and_weights(tmp_path):
    inference_speed.make_images(tmp_path / "images", 3, 128)
    pictures = sorted((tmp_path / "images").iterdir())
    assert [p.name for p in pictures] == ["00000.jpg", "00001.jpg", "00002.jpg"]
    assert all(Image.open(p).size == (128, 128) for p in pictures)
    weights, options = inference_speed.make_weights(tmp_path, "unet_128(ngf=4)")
    assert options == ["--netG", "unet_128", "--ngf", "4"]
    reference = torch.load(tmp_path / "checkpoints" / "bench" / "latest_net_G.pth", weights_only=True)
    ours = load_file(weights)
    assert reference.keys() == ours.keys() and all(torch.equal(reference[k], ours[k]) for k in ours)
    from pix2pix_zoo.export import read_export_card
    from pix2pix_zoo.translator import read_card

    for mode in ("eval", "paper"):  # the .onnx sides' files
        exported = inference_speed.export_once(weights, tmp_path / f"model-{mode}.onnx", mode)
        card = read_export_card(exported)
        assert card.spec == read_card(weights).spec and card.inference_mode == mode


_BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))


def _load_script(path: Path):
    spec = importlib.util.spec_from_file_location(f"{path.stem}_benchmark_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script", _BENCHMARKS, ids=lambda path: path.stem)
def test_every_name_a_benchmark_imports_exists_and_its_help_runs(script, monkeypatch, capsys):
    """Benchmarks are run by hand, so a name moved elsewhere (even one imported inside a function) would
    break one unnoticed: every import of every script is resolved here, and its ``--help`` parsed."""
    monkeypatch.setattr(sys, "path", list(sys.path))  # the scripts put their own folder on it
    siblings = {path.stem: path for path in _BENCHMARKS}
    missing = []
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            module = (_load_script(siblings[node.module]) if node.module in siblings
                      else importlib.import_module(node.module))
            for alias in node.names:
                if not hasattr(module, alias.name):
                    try:
                        importlib.import_module(f"{node.module}.{alias.name}")
                    except ImportError:
                        missing.append(f"{node.module}.{alias.name}")
    assert not missing, f"{script.name} imports names that do not exist: {missing}"

    main = _load_script(script).main
    monkeypatch.setattr(sys, "argv", [script.name, "--help"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("usage:")


_ON_GPU = Path(__file__).resolve().parents[1] / "benchmarks" / "on_gpu.sh"


def test_the_gpu_script_parses_names_only_scripts_that_exist_and_refuses_an_unknown_part():
    assert subprocess.run(["bash", "-n", str(_ON_GPU)], capture_output=True).returncode == 0
    named = set(re.findall(r"benchmarks/(\w+\.py)", _ON_GPU.read_text()))
    assert named and all((_ON_GPU.parent / name).is_file() for name in named), named
    refused = subprocess.run([str(_ON_GPU), "no-such-part"], capture_output=True, text=True)
    assert refused.returncode == 2
    assert "unknown part 'no-such-part'; choose from: tests inference stall highres paper" in refused.stderr
