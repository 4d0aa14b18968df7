"""``zoo sweep``: a grid or a sweep file as ordinary run directories, checked before anything is
written, finished runs skipped, interrupted ones resumed exactly, shares for array jobs."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from helpers import assert_one_line, run_env, run_zoo, zoo_executable
from safetensors.torch import load_file

from pix2pix_zoo.engine.config import TrainConfig
from pix2pix_zoo.engine.rundir import read_metrics
from pix2pix_zoo.engine.trainer import Trainer
from pix2pix_zoo.errors import SpecError, ZooError
from pix2pix_zoo.experiments.sweep import (
    MAX_RUNS,
    expand_braces,
    file_sweep,
    grid_sweep,
    parse_shard,
    run_status,
    run_sweep,
    shard_of,
)

GRID = "resnet_6blocks(ngf=4,norm=batch)+{patch16(ndf=4),pixel(ndf=4)}+l1cgan"
TINY = ["--data", "synthfacades", "--data-opt", "size=32", "--data-opt", "count=24", "--load-size", "36",
        "--crop-size", "32", "--batch-size", "2", "--workers", "0", "--device", "cpu", "--log-every", "1",
        "--no-progress"]


def tiny_base(**overrides) -> TrainConfig:
    settings = dict(data="synthfacades", data_options={"size": 32, "count": 24}, load_size=36, crop_size=32,
                    batch_size=2, workers=0, device="cpu", log_every=1, sample_every=100, epochs=1, epochs_decay=1)
    return TrainConfig(**(settings | overrides))


def losses(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in m.items() if k != "img_per_s"} for m in read_metrics(run_dir / "metrics.jsonl")]


# -- grids -------------------------------------------------------------------------------------------
def test_braces_expand_as_a_product_the_first_group_slowest():
    assert expand_braces("{unet,encdec}+patch70+{l1,l1cgan}") == [
        "unet+patch70+l1", "unet+patch70+l1cgan", "encdec+patch70+l1", "encdec+patch70+l1cgan"]
    assert expand_braces("unet(ngf={32,64},norm={batch,instance})+l1") == [
        "unet(ngf=32,norm=batch)+l1", "unet(ngf=32,norm=instance)+l1",
        "unet(ngf=64,norm=batch)+l1", "unet(ngf=64,norm=instance)+l1"]
    assert expand_braces("a{b,c{d,e}}f") == ["abf", "acdf", "acef"]
    assert expand_braces("unet+l1") == ["unet+l1"]


@pytest.mark.parametrize(("grid", "message"), [
    ("unet+{patch16,patch70+l1", "never closed"),
    ("unet+patch16}+l1", "no '{' before it"),
    ("{a,b,c,d,e,f,g,h,i,j}" * 5, f"more than {MAX_RUNS} runs"),
])
def test_a_malformed_grid_is_one_line(grid, message):
    with pytest.raises(SpecError, match=message):
        expand_braces(grid)


def test_each_run_gets_its_canonical_spec_and_two_that_are_one_run_are_refused():
    sweep = grid_sweep("unet_256(ngf={4,64})+patch70+{l1,l1cgan}", tiny_base(), name="s")
    assert [run.config.spec for run in sweep.runs] == [  # L1 alone trains against no discriminator
        "unet_256(ngf=4)+l1", "unet_256(ngf=4)+patch70+l1cgan", "unet_256+l1", "unet_256+patch70+l1cgan"]
    assert all(run.config.crop_size == 32 for run in sweep.runs)
    with pytest.raises(SpecError, match="two runs of the sweep are both"):
        grid_sweep("unet_256(ngf={64,64})+l1", tiny_base())
    with pytest.raises(SpecError, match="unknown discriminator 'patch71'"):
        grid_sweep("unet_256+{patch70,patch71}+l1cgan", tiny_base())


def test_shares_split_the_runs_evenly_and_cover_them_once():
    runs = grid_sweep("unet_256(ngf={4,8,12,16,20})+l1", tiny_base()).runs
    shares = [shard_of(runs, (k, 2)) for k in (1, 2)]
    assert [len(s) for s in shares] == [3, 2] and sorted(r.name for s in shares for r in s) == sorted(r.name for r in runs)
    assert parse_shard("2/4") == (2, 4)
    for bad in ("0/2", "3/2", "1", "a/b"):
        with pytest.raises(SpecError, match="--shard must be K/N"):
            parse_shard(bad)


def test_a_sweep_file_gives_each_run_its_settings_over_the_defaults_and_the_typed_options_over_both(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(
        'name = "lr-study"\n[defaults]\nepochs = 3\nlr = 0.0003\n'
        '[[run]]\nspec = "unet_256(ngf=4)+l1"\n'
        '[[run]]\nspec = "unet_256(ngf=4)+l1"\nname = "slow"\nlr = 0.0001\n'
    )
    sweep = file_sweep(path, tiny_base(), overrides={"max_steps": 5})
    assert sweep.name == "lr-study"
    assert [(r.name, r.config.lr, r.config.epochs, r.config.max_steps) for r in sweep.runs] == [
        ("unet_256_ngf=4_+l1-synthfacades", 0.0003, 3, 5), ("slow", 0.0001, 3, 5)]
    path.write_text('[[run]]\nspec = "unet_256(ngf=4)+l1"\nlearning_rate = 0.1\n')
    with pytest.raises(SpecError, match="run 1 of .*unknown setting 'learning_rate'"):
        file_sweep(path, tiny_base())
    path.write_text('[[run]]\nspec = "unet_256(ngf=4)+l1"\nlr = "fast"\n')
    with pytest.raises(SpecError, match="'lr' in run 1 of .* must be a number"):
        file_sweep(path, tiny_base())
    path.write_text('[[run]]\nlr = 0.1\n')
    with pytest.raises(SpecError, match="run 1 of .* has no spec"):
        file_sweep(path, tiny_base())


# -- the command -------------------------------------------------------------------------------------
def test_dry_run_prints_the_runs_and_writes_nothing(tmp_path):
    result = run_zoo("sweep", GRID, *TINY, "--runs", str(tmp_path / "runs"), "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert [run["spec"] for run in plan["runs"]] == [
        "resnet_6blocks(ngf=4,norm=batch)+patch16(ndf=4)+l1cgan", "resnet_6blocks(ngf=4,norm=batch)+pixel(ndf=4)+l1cgan"]
    assert plan["runs"][0]["config"]["crop_size"] == 32
    assert not (tmp_path / "runs").exists()


def test_a_bad_run_anywhere_in_the_grid_stops_the_sweep_before_anything_is_written(tmp_path):
    runs = tmp_path / "runs"
    result = run_zoo("sweep", "resnet_6blocks(ngf=4)+{patch16(ndf=4),patch16(ndf=0)}+l1cgan", *TINY, "--runs", str(runs))
    assert_one_line(result.returncode, result.stderr, "ndf")
    result = run_zoo("sweep", "unet_256(ngf=4)+{patch16(ndf=4),pixel}+l1cgan", *TINY, "--runs", str(runs))
    assert_one_line(result.returncode, result.stderr, "crop size 32 is not a multiple of 256")
    assert "run 'unet_256_ngf=4_+patch16_ndf=4_+l1cgan-synthfacades'" in result.stderr
    assert not runs.exists()


def test_a_sweep_runs_every_run_then_skips_them_and_refuses_other_settings_in_its_folders(tmp_path):
    runs = tmp_path / "runs"
    first = run_zoo("sweep", GRID, *TINY, "--max-steps", "3", "--runs", str(runs), "--name", "disc")
    assert first.returncode == 0, first.stderr
    folder = runs / "disc"
    manifest = json.loads((folder / "sweep.json").read_text())
    assert manifest["source"] == GRID and len(manifest["runs"]) == 2
    for run in manifest["runs"]:
        run_dir = folder / run["name"]
        assert (run_dir / "translator" / "model.safetensors").is_file() and (run_dir / "eval.json").is_file()
        assert json.loads((run_dir / "config.json").read_text())["config"] == run["config"]
        assert [m["step"] for m in read_metrics(run_dir / "metrics.jsonl")] == [1, 2, 3]
    assert first.stdout.count("trained") == 2 and "patch16(ndf=4)" in first.stdout

    again = run_zoo("sweep", GRID, *TINY, "--max-steps", "3", "--runs", str(runs), "--name", "disc", "--json")
    assert again.returncode == 0, again.stderr
    outcomes = json.loads(again.stdout)
    assert [o["outcome"] for o in outcomes] == ["skipped", "skipped"]
    assert all(o["evaluation"]["translator"]["l1"] > 0 for o in outcomes)

    other = run_zoo("sweep", GRID, *TINY, "--max-steps", "3", "--lr", "0.001", "--runs", str(runs), "--name", "disc")
    assert_one_line(other.returncode, other.stderr, "was started with other settings (its config.json differs in lr)")
    assert [m["step"] for m in read_metrics(folder / manifest["runs"][0]["name"] / "metrics.jsonl")] == [1, 2, 3]


def test_a_sweep_killed_mid_run_resumes_it_exactly(tmp_path):
    runs = tmp_path / "runs"
    grid = "resnet_6blocks(ngf=4,norm=batch)+{patch16(ndf=4)}+l1cgan"
    args = [zoo_executable(), "sweep", grid, *TINY, "--max-steps", "8", "--checkpoint-every", "2", "--runs"]
    process = subprocess.Popen([*args, str(runs), "--name", "killed"], env=run_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        checkpoints = runs / "killed" / "resnet_6blocks_ngf=4_norm=batch_+patch16_ndf=4_+l1cgan-synthfacades" / "checkpoints"
        deadline = time.monotonic() + 240
        while not any(checkpoints.glob("step-*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(checkpoints.glob("step-*")), "no checkpoint appeared"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    resumed = run_zoo("sweep", grid, *TINY, "--max-steps", "8", "--checkpoint-every", "2", "--runs", str(runs),
                      "--name", "killed", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert [o["outcome"] for o in json.loads(resumed.stdout)] == ["resumed"]
    straight = run_zoo("sweep", grid, *TINY, "--max-steps", "8", "--checkpoint-every", "2", "--runs", str(runs),
                       "--name", "straight")
    assert straight.returncode == 0, straight.stderr
    name = "resnet_6blocks_ngf=4_norm=batch_+patch16_ndf=4_+l1cgan-synthfacades"
    a, b = runs / "killed" / name, runs / "straight" / name
    assert losses(a) == losses(b) and [m["step"] for m in losses(a)] == list(range(1, 9))
    weights_a, weights_b = load_file(a / "translator" / "model.safetensors"), load_file(b / "translator" / "model.safetensors")
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_b)


def test_a_run_stopped_early_is_extended_by_a_sweep_with_more_steps_as_one_straight_run(tmp_path):
    base = tiny_base(spec="resnet_6blocks(ngf=4,norm=batch)+patch16(ndf=4)+l1cgan", checkpoint_every=2)
    sweep = grid_sweep(base.spec, base.__class__(**{**base.to_dict(), "max_steps": 6}), name="grow")
    (run,) = sweep.runs
    folder = tmp_path / "grow"
    Trainer(TrainConfig(**{**run.config.to_dict(), "max_steps": 4}), folder / run.name, progress=False).fit()
    assert run_status(run, folder / run.name) == "interrupted"
    (outcome,) = run_sweep(list(sweep.runs), folder, progress=False)
    assert outcome.outcome == "resumed" and outcome.evaluation is not None
    assert run_status(run, folder / run.name) == "finished"
    Trainer(run.config, tmp_path / "straight", progress=False).fit()
    assert losses(folder / run.name) == losses(tmp_path / "straight")
    unbounded = grid_sweep(base.spec, base, name="grow").runs[0]
    with pytest.raises(ZooError, match="was stopped by --max-steps at step 6; give --max-steps to extend it"):
        run_status(unbounded, folder / run.name)


def test_runs_on_several_devices_at_once_each_finish_in_its_own_folder(tmp_path):
    runs = tmp_path / "runs"
    result = run_zoo("sweep", GRID, *TINY, "--max-steps", "2", "--runs", str(runs), "--name", "both",
                     "--devices", "cpu,cpu", "--json")
    assert result.returncode == 0, result.stderr
    outcomes = json.loads(result.stdout)
    assert [o["outcome"] for o in outcomes] == ["trained", "trained"]
    for outcome in outcomes:
        run_dir = runs / "both" / outcome["name"]
        assert json.loads((run_dir / "config.json").read_text())["device"] == "cpu"
        assert (run_dir / "translator" / "model.safetensors").is_file()


def test_a_share_runs_its_runs_only(tmp_path):
    runs = tmp_path / "runs"
    result = run_zoo("sweep", GRID, *TINY, "--max-steps", "1", "--runs", str(runs), "--name", "half", "--shard", "2/2")
    assert result.returncode == 0, result.stderr
    made = sorted(p.name for p in (runs / "half").iterdir())
    assert made == ["resnet_6blocks_ngf=4_norm=batch_+pixel_ndf=4_+l1cgan-synthfacades", "sweep.json"]
    assert len(json.loads((runs / "half" / "sweep.json").read_text())["runs"]) == 2


def test_the_readmes_sweep_grids_expand_as_it_says():
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = text[text.index("### Sweeps"):].split("```\n", 2)[1]
    lines = [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]
    assert len(lines) == 3 and all(line.startswith("zoo sweep ") for line in lines)
    counts = []
    for line in lines:
        args = shlex.split(line)[1:]
        result = run_zoo(*args, *([] if "--dry-run" in args else ["--dry-run"]), "--json")
        assert result.returncode == 0, result.stderr
        counts.append([run["spec"] for run in json.loads(result.stdout)["runs"]])
    assert [len(specs) for specs in counts] == [4, 4, 2]
    assert counts[1] == ["unet_256+l1", "unet_256+patch70+l1cgan", "encdec_256+l1", "encdec_256+patch70+l1cgan"]
