"""The trainer end to end on CPU at tiny size: the run directory, exact resume, crash safety, bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import run_env, zoo_executable
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from pix2pix_zoo.engine.checkpoint import latest_checkpoint
from pix2pix_zoo.engine.config import TrainConfig
from pix2pix_zoo.engine.trainer import RunExists, Trainer, TrainingDiverged
from pix2pix_zoo.errors import BadImageError, DataError, SpecError
from pix2pix_zoo.translator import read_card

TINY_SPEC = "resnet_6blocks(ngf=4,norm=batch)+patch16(ndf=4)+l1cgan"
TINY_DATA = {"size": 32, "count": 24}


def tiny_config(**overrides) -> TrainConfig:
    settings = dict(
        spec=TINY_SPEC, data="synthfacades", data_options=dict(TINY_DATA), epochs=1, epochs_decay=1,
        load_size=36, crop_size=32, workers=0, device="cpu", log_every=2, sample_every=3, batch_size=2,
    )
    settings.update(overrides)
    return TrainConfig(**settings)


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(latest_checkpoint(run_dir / "checkpoints") / "generator.safetensors")


def test_a_run_directory_holds_everything(tmp_path):
    run_dir = tmp_path / "run"
    result = Trainer(tiny_config(max_steps=6, checkpoint_every=4, ema_decay=0.9), run_dir, progress=False).fit()
    assert result.step == 6
    config = json.loads((run_dir / "config.json").read_text())
    assert config["canonical_spec"] == TINY_SPEC and config["config"]["seed"] == 0
    assert config["config"]["data_options"] == TINY_DATA and "torch" in config["versions"]
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [2, 4, 6]
    assert all({"d", "g", "g_gan", "g_l1", "lr", "img_per_s"} <= set(m) for m in metrics)
    checkpoint = latest_checkpoint(run_dir / "checkpoints")
    assert checkpoint.name == "step-000000006"
    names = sorted(p.name for p in checkpoint.iterdir())
    assert names == ["discriminator.safetensors", "generator.safetensors", "generator_ema.safetensors",
                     "optimizer_d.safetensors", "optimizer_g.safetensors", "state.json"]
    state = json.loads((checkpoint / "state.json").read_text())
    assert state["step"] == 6 and state["epoch"] == 1 and state["step_in_epoch"] == 6
    every_file = [p for p in run_dir.rglob("*") if p.is_file()]
    assert not [p for p in every_file if p.suffix in (".pt", ".pth", ".pkl", ".ckpt", ".bin")]
    samples = sorted((run_dir / "samples").glob("*.png"))
    assert [p.stem for p in samples] == ["step-000000003", "step-000000006"]
    assert Image.open(samples[0]).size == (3 * 32, 4 * 32)  # input | output | target, 4 pairs
    report = (run_dir / "report.html").read_text()
    assert "<svg" in report and "data:image/png;base64," in report and "<script" not in report
    card = read_card(run_dir / "translator" / "model.safetensors")
    assert card.spec == TINY_SPEC and card.provenance["ema"] is True and card.size_multiple == 4
    assert (card.in_channels, card.out_channels, card.direction) == (3, 3, "AtoB")
    evaluation = json.loads((run_dir / "eval.json").read_text())
    assert evaluation["split"] == "test"
    assert set(evaluation) >= {"translator", "input unchanged", "mean training target"}
    assert set(evaluation["translator"]) == {"l1", "psnr", "ssim"}


def test_tensorboard_gets_the_logged_scalars_when_installed(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "run"
    Trainer(tiny_config(max_steps=4), run_dir, progress=False).fit()
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert {"d", "g", "g_gan", "g_l1", "lr", "img_per_s"} <= set(events.Tags()["scalars"])
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    expected = [(m["step"], m["g_l1"]) for m in logged]
    assert [(e.step, pytest.approx(e.value)) for e in events.Scalars("g_l1")] == expected


def test_without_tensorboard_the_run_goes_on(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import now raises ImportError
    result = Trainer(tiny_config(max_steps=2), tmp_path / "run", progress=False).fit()
    assert result.step == 2 and not (tmp_path / "run" / "tensorboard").exists()


@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels_last"])
def test_resume_continues_exactly(tmp_path, channels_last):
    # channels_last: the weights are channels-last in memory, the saved optimiser states are not; the
    # restored states must take the weights' layout, since the fused Adam kernel walks both in memory order.
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    Trainer(tiny_config(max_steps=8, channels_last=channels_last), straight, progress=False).fit()
    Trainer(tiny_config(max_steps=4, channels_last=channels_last), stopped, progress=False).fit()
    assert latest_checkpoint(stopped / "checkpoints").name == "step-000000004"
    Trainer(TrainConfig(), stopped, resume=True, max_steps=8, progress=False).fit()
    ours, reference = weights(stopped), weights(straight)
    assert ours.keys() == reference.keys()
    for key in ours:
        assert torch.equal(ours[key], reference[key]), key
    assert torch.equal(
        load_file(latest_checkpoint(stopped / "checkpoints") / "optimizer_d.safetensors")["0.exp_avg"],
        load_file(latest_checkpoint(straight / "checkpoints") / "optimizer_d.safetensors")["0.exp_avg"],
    )


def test_learning_rate_schedule_follows_the_reference():
    config = TrainConfig(epochs=3, epochs_decay=2)
    assert [config.lr_factor(e) for e in range(1, 6)] == [1.0, 1.0, 1.0, pytest.approx(2 / 3), pytest.approx(1 / 3)]


def test_sigkill_leaves_the_last_good_checkpoint(tmp_path):
    run_dir = tmp_path / "killed"
    args = [
        zoo_executable(), "train", TINY_SPEC, "--data", "synthfacades", "--data-opt", "size=32", "--data-opt",
        "count=120", "--load-size", "36", "--crop-size", "32", "--workers", "0", "--device", "cpu",
        "--checkpoint-every", "1", "--epochs", "1", "--epochs-decay", "0", "--name", "killed", "--runs",
        str(tmp_path), "--no-progress", "--log-every", "1",
    ]
    process = subprocess.Popen(args, env=run_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            folder = latest_checkpoint(run_dir / "checkpoints") if (run_dir / "checkpoints" / "latest").exists() else None
            if folder is not None and int(folder.name.split("-")[1]) >= 3:
                break
            time.sleep(0.05)
        else:
            pytest.fail("no checkpoint appeared")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    folder = latest_checkpoint(run_dir / "checkpoints")
    for path in folder.glob("*.safetensors"):
        with safe_open(str(path), framework="pt") as handle:
            assert list(handle.keys())
    resumed = subprocess.run(
        [zoo_executable(), "train", "--resume", str(run_dir), "--max-steps", str(int(folder.name.split("-")[1]) + 2),
         "--no-progress"],
        env=run_env(), capture_output=True, text=True, timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    run_dir = tmp_path / "nan"
    trainer = Trainer(tiny_config(max_steps=12, checkpoint_every=2, log_every=2), run_dir, progress=False)
    original = trainer.models.objective.generator_loss

    def poisoned(fake, target, logits):
        loss = original(fake, target, logits)
        if trainer.step >= 5:
            loss.terms["l1"] = loss.terms["l1"] * float("nan")
            return type(loss)(loss.total * float("nan"), loss.terms)
        return loss

    monkeypatch.setattr(trainer.models.objective, "generator_loss", poisoned)
    with pytest.raises(TrainingDiverged, match=r"became nan by step 6; the last good checkpoint is .*step-000000004"):
        trainer.fit()
    assert latest_checkpoint(run_dir / "checkpoints").name == "step-000000004"
    assert all(torch.isfinite(t).all() for t in weights(run_dir).values())


def test_existing_run_directory_is_not_overwritten(tmp_path):
    run_dir = tmp_path / "run"
    Trainer(tiny_config(max_steps=2), run_dir, progress=False).fit()
    marker = (run_dir / "metrics.jsonl").read_text()
    with pytest.raises(RunExists, match="--resume"):
        Trainer(tiny_config(max_steps=2), run_dir, progress=False)
    assert (run_dir / "metrics.jsonl").read_text() == marker
    not_a_run = tmp_path / "precious"
    not_a_run.mkdir()
    (not_a_run / "thesis.tex").write_text("keep me")
    with pytest.raises(RunExists, match="not a run directory"):
        Trainer(tiny_config(max_steps=2), not_a_run, overwrite=True, progress=False)
    assert (not_a_run / "thesis.tex").exists()


def test_crop_not_a_multiple_names_working_sizes(tmp_path):
    with pytest.raises(SpecError, match=r"crop size 250 is not a multiple of 128.*--crop-size 128 or 256"):
        Trainer(tiny_config(spec="unet_128(ngf=2)+l1", crop_size=250, load_size=286), tmp_path / "r", progress=False)


def test_bad_image_is_named_or_skipped(tmp_path):
    root = tmp_path / "pairs"
    (root / "train").mkdir(parents=True)
    for index in range(4):
        Image.new("RGB", (64, 32), (index * 40, 0, 0)).save(root / "train" / f"{index}.png")
    (root / "train" / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    config = tiny_config(data=f"folder:{root}", data_options={}, batch_size=1, max_steps=4, crop_size=32, load_size=32,
                         preprocess="crop")
    with pytest.raises(BadImageError, match=r"2\.png.*--skip-bad"):
        Trainer(config, tmp_path / "strict", progress=False).fit()
    config.skip_bad = True
    Trainer(config, tmp_path / "lenient", progress=False).fit()
    metrics = [json.loads(line) for line in (tmp_path / "lenient" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["skipped_images"] == 1


def test_held_out_figures_fall_back_to_val_when_there_is_no_test_folder(tmp_path):
    root = tmp_path / "pairs"
    for split, count in (("train", 4), ("val", 2)):
        (root / split).mkdir(parents=True)
        for index in range(count):
            Image.new("RGB", (64, 32), (index * 40, 90, 0)).save(root / split / f"{index}.png")
    config = tiny_config(data=f"folder:{root}", data_options={}, max_steps=1, crop_size=32, load_size=32,
                         preprocess="crop")
    Trainer(config, tmp_path / "run", progress=False).fit()
    evaluation = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert evaluation["split"] == "val" and evaluation["pairs"] == 2


def test_cli_errors_are_one_line(tmp_path):
    cases = [
        (["train", "unet+patch70+l1cgan", "--data", "no_such_data"], "unknown dataset 'no_such_data'"),
        (["train", "unet+patchh70+l1cgan"], "did you mean patch70"),
        (["train", TINY_SPEC, "--precision", "fp8"], "--precision must be one of fp32, bf16, fp16"),
        (["train", TINY_SPEC, "--data", f"folder:{tmp_path}"], "split"),
        (["train"], "give a SPEC"),
    ]
    for args, fragment in cases:
        result = subprocess.run([zoo_executable(), *args, "--runs", str(tmp_path / "runs")], env=run_env(),
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 1, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and fragment in result.stderr, (args, result.stderr)


def test_empty_split_is_a_data_error(tmp_path):
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(DataError):
        Trainer(tiny_config(data=f"folder:{tmp_path / 'empty'}", data_options={}), tmp_path / "r", progress=False)


def test_precisions_and_memory_format_train(tmp_path):
    for precision in ("bf16", "fp16"):
        result = Trainer(tiny_config(max_steps=2, precision=precision, channels_last=True, optimizer_impl="plain"),
                         tmp_path / precision, progress=False).fit()
        assert result.step == 2
        assert all(torch.isfinite(t).all() for t in weights(tmp_path / precision).values() if t.is_floating_point())


def test_compile_trains(tmp_path):
    # About a minute on 2 CPU cores, most of it compiling: the one compiled run in the suite.
    eager = Trainer(tiny_config(max_steps=2), tmp_path / "eager", progress=False).fit()
    compiled = Trainer(tiny_config(max_steps=2, compile=True), tmp_path / "compiled", progress=False).fit()
    assert compiled.step == eager.step == 2
    for key, value in weights(tmp_path / "eager").items():
        torch.testing.assert_close(weights(tmp_path / "compiled")[key], value, rtol=1e-3, atol=2 * 2e-4 * 2)


def test_failed_set_up_writes_nothing(tmp_path):
    with pytest.raises(SpecError, match="crop size 30 is not a multiple of 4"):
        Trainer(tiny_config(crop_size=30), tmp_path / "never", progress=False)
    with pytest.raises(SpecError, match="unknown dataset"):
        Trainer(tiny_config(data="facadez"), tmp_path / "never", progress=False)
    assert not (tmp_path / "never").exists()


def test_corrupt_checkpoint_is_one_clear_error(tmp_path):
    from pix2pix_zoo.engine.checkpoint import CheckpointError

    run_dir = tmp_path / "run"
    Trainer(tiny_config(max_steps=2), run_dir, progress=False).fit()
    (latest_checkpoint(run_dir / "checkpoints") / "generator.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match=r"cannot load checkpoint .*step-000000002"):
        Trainer(TrainConfig(), run_dir, resume=True, progress=False)
