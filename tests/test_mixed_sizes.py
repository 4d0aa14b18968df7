"""Folders of ordinary photos: pairs of different sizes train, evaluate and export at any batch size;
loader workers' errors, dataset factories' errors and runs without a held-out split are one line."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import run_main
from PIL import Image

from pix2pix_zoo import hookimpl
from pix2pix_zoo.engine.config import TrainConfig
from pix2pix_zoo.engine.trainer import Trainer
from pix2pix_zoo.errors import DataError
from pix2pix_zoo.evaluation import evaluate
from pix2pix_zoo.interfaces import DatasetInfo, PairedDataset, describe_dataset
from pix2pix_zoo.translator import Translator

SPEC = "resnet_6blocks(ngf=4,norm=batch)+patch16(ndf=4)+l1cgan"
# (width, height) of each side-by-side AB file: three sizes, two aspect ratios.
SIZES = [(96, 48), (128, 64), (120, 80)]


def aligned_folder(root: Path, splits: dict[str, int]) -> Path:
    """``root/<split>/<i>.jpg`` side-by-side pairs, cycling through SIZES."""
    rng = np.random.default_rng(0)
    for split, count in splits.items():
        (root / split).mkdir(parents=True)
        for index in range(count):
            width, height = SIZES[index % len(SIZES)]
            pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / split / f"{index}.jpg")
    return root


def config(data: Path, **overrides) -> TrainConfig:
    settings = dict(spec=SPEC, data=f"folder:{data}", epochs=1, epochs_decay=0, load_size=36, crop_size=32,
                    workers=0, device="cpu", log_every=1, sample_every=100, batch_size=4, max_steps=2)
    settings.update(overrides)
    return TrainConfig(**settings)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_pairs_of_different_sizes_train_evaluate_and_export(tmp_path, batch_size):
    data = aligned_folder(tmp_path / "photos", {"train": 8, "test": 5})
    run = tmp_path / "run"
    result = Trainer(config(data, batch_size=batch_size, workers=1), run, progress=False).fit()
    assert result.step == 2
    evaluation = json.loads((run / "eval.json").read_text())
    assert evaluation["split"] == "test" and evaluation["pairs"] == 5
    translator = Translator.from_pretrained(run / "translator")
    photo = torch.rand(1, 3, 40, 60) * 2 - 1
    assert translator.translate(photo).shape == (1, 3, 40, 60)


def test_preprocess_none_with_mixed_sizes_is_refused_before_anything_is_written(tmp_path):
    data = aligned_folder(tmp_path / "photos", {"train": 6, "test": 3})
    run = tmp_path / "run"
    with pytest.raises(DataError, match=r"--preprocess none pairs keep their sizes, and '0.jpg' and '1.jpg' come "
                                        r"out 48x48 and 64x64: they cannot share a batch of 2; use --batch-size 1"):
        Trainer(config(data, preprocess="none", batch_size=2), run, progress=False)
    assert not run.exists()


def test_preprocess_none_evaluates_each_pair_at_its_own_size(tmp_path):
    data = aligned_folder(tmp_path / "photos", {"train": 6, "test": 3})
    run = tmp_path / "run"
    Trainer(config(data, preprocess="none", batch_size=1), run, progress=False).fit()
    evaluation = json.loads((run / "eval.json").read_text())
    assert evaluation["pairs"] == 3
    # Every candidate is scored, the mean training target (averaged over three sizes) included.
    assert set(evaluation) == {"split", "pairs", "translator", "mean training target", "input unchanged"}


def test_preprocess_that_keeps_sizes_batches_pairs_that_come_out_alike(tmp_path):
    data = tmp_path / "photos"
    for split, sizes in (("train", [(96, 48), (192, 96)] * 2), ("test", [(96, 48)])):
        (data / split).mkdir(parents=True)
        for index, size in enumerate(sizes):
            Image.new("RGB", size, (index * 40, 90, 200)).save(data / split / f"{index}.png")
    # scale_width to 36: 48x48 and 96x96 halves both come out 36x36.
    result = Trainer(config(data, preprocess="scale_width", crop_size=32, batch_size=2), tmp_path / "run",
                     progress=False).fit()
    assert result.step == 2 and (tmp_path / "run" / "eval.json").exists()


def test_zoo_eval_batches_pairs_of_different_sizes(tmp_path):
    data = aligned_folder(tmp_path / "photos", {"train": 4, "test": 5})
    Trainer(config(data, max_steps=1), tmp_path / "run", progress=False).fit()
    translator = Translator.from_pretrained(tmp_path / "run" / "translator", mode="eval")
    evaluation = evaluate(translator, f"folder:{data}", "test", batch_size=4)
    assert sorted(image["name"] for image in evaluation.images) == [f"{i}.jpg" for i in range(5)]


class FailingPairs(PairedDataset):
    """Pairs whose sixth raises a DataError, as a plugin's dataset does for a malformed file (after the
    pairs the trainer reads at set-up, so that with workers it is raised in a loader worker)."""

    info = DatasetInfo("failing", reads_your_files=True)

    def __init__(self, root: Path, split: str) -> None:
        self.root = root

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> dict:
        if index == 5:
            raise DataError(f"pair {index} of {self.root} has no mask")
        return {"a": torch.zeros(3, 32, 32, dtype=torch.uint8), "b": torch.zeros(3, 32, 32, dtype=torch.uint8),
                "name": f"{index}.png"}


@describe_dataset(FailingPairs.info)
def failing(root: Path, split: str, *, strict: bool = True) -> FailingPairs:
    """A dataset factory that refuses an option value with ValueError."""
    if not strict:
        raise ValueError("strict=false is not supported by this reader\nsecond line of detail")
    return FailingPairs(root, split)


@pytest.fixture
def failing_plugin(register_plugin):
    plugin = types.SimpleNamespace(register_datasets=hookimpl(lambda register: register("failing", failing)))
    register_plugin(plugin, "failing-plugin")


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_data_error_in_a_loader_worker_is_one_line(tmp_path, capsys, failing_plugin, workers):
    code, _, err = run_main(
        capsys, "train", SPEC, "--data", f"failing:{tmp_path}", "--crop-size", "32", "--load-size", "32",
        "--batch-size", "2", "--epochs", "1", "--epochs-decay", "0", "--workers", workers, "--device", "cpu",
        "--no-progress", "--runs", str(tmp_path / "runs"),
    )
    assert code == 1
    assert err.strip().splitlines()[-1] == f"error: pair 5 of {tmp_path} has no mask"
    assert "Traceback" not in err and "DataLoader worker" not in err


def test_a_dataset_factory_value_error_is_one_line(tmp_path, capsys, failing_plugin):
    code, _, err = run_main(capsys, "train", SPEC, "--data", f"failing:{tmp_path}", "--data-opt", "strict=false",
                            "--crop-size", "32", "--device", "cpu", "--runs", str(tmp_path / "runs"))
    assert code == 1
    assert err.strip().splitlines() == [
        f"error: dataset 'failing:{tmp_path}': strict=false is not supported by this reader"
    ]


@pytest.mark.parametrize("name", ["folder", "pairs", "failing"])
def test_a_dataset_that_reads_your_files_needs_a_path(tmp_path, capsys, failing_plugin, name):
    code, _, err = run_main(capsys, "train", SPEC, "--data", name, "--crop-size", "32", "--device", "cpu",
                            "--runs", str(tmp_path / "runs"))
    assert code == 1
    assert err.strip().splitlines() == [f"error: dataset {name!r} reads files you name: use --data {name}:PATH"]
    assert not (tmp_path / "runs").exists()


def test_a_run_without_a_held_out_split_says_so_and_eval_split_chooses_one(tmp_path, capsys):
    data = aligned_folder(tmp_path / "photos", {"train": 4})
    run = tmp_path / "runs" / "plain"
    args = ["train", SPEC, "--data", f"folder:{data}", "--crop-size", "32", "--load-size", "36", "--max-steps", "1",
            "--batch-size", "2", "--workers", "0", "--device", "cpu", "--no-progress", "--runs", str(tmp_path / "runs")]
    code, _, err = run_main(capsys, *args, "--name", "plain")
    assert code == 0
    note = f"'folder:{data}' has no held-out split (test or val), so this run is not evaluated"
    assert f"note: {note}" in err
    assert not (run / "eval.json").exists()
    assert note.replace("'", "&#x27;") in (run / "report.html").read_text()

    code, out, _ = run_main(capsys, *args, "--name", "on-train", "--eval-split", "train", "--json")
    assert code == 0
    assert json.loads(out)["split"] == "train"
    assert json.loads((tmp_path / "runs" / "on-train" / "eval.json").read_text())["pairs"] == 4

    code, _, err = run_main(capsys, *args, "--name", "missing", "--eval-split", "test")
    assert code == 1 and err.strip().splitlines()[-1].startswith("error: --eval-split test: ")
    assert not (tmp_path / "runs" / "missing").exists()

    code, _, err = run_main(capsys, *args, "--name", "path", "--eval-split", "../train")
    assert code == 1 and "must be a split name" in err
