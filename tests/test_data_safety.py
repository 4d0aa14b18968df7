"""A run directory never loses the user's data: --overwrite replaces only the zoo's own runs and only
once the new run is set up, one process holds a run at a time, a resume refuses what it cannot
continue, a torn metrics line or a corrupt or unwritable checkpoint is survived or is one line, and
a hand-edited config.json or a bad option is refused in one line naming it."""

from __future__ import annotations

import errno
import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from helpers import assert_one_line, run_env, run_main, run_zoo, zoo_executable
from safetensors.torch import load_file
from test_trainer import TINY_SPEC, tiny_config

from pix2pix_zoo.engine import checkpoint as checkpoint_module
from pix2pix_zoo.engine import trainer as trainer_module
from pix2pix_zoo.engine.checkpoint import CheckpointError, latest_checkpoint
from pix2pix_zoo.engine.config import TrainConfig
from pix2pix_zoo.engine.rundir import LOCK, RunBusy, RunExists, read_metrics
from pix2pix_zoo.engine.trainer import Trainer, TrainingDiverged
from pix2pix_zoo.errors import ZooError

# The reproduction: a spec and options that train two steps at 128 pixels.
S = "unet_128(ngf=8)+patch70(ndf=8)+l1cgan"
C = ["--data", "synthfacades", "--data-opt", "size=128", "--data-opt", "count=8", "--load-size", "128",
     "--crop-size", "128", "--max-steps", "2", "--no-progress", "--workers", "0"]
# A run that goes on long enough to be caught in the middle (32 pixels, a checkpoint every step).
LONG = [TINY_SPEC, "--data", "synthfacades", "--data-opt", "size=32", "--data-opt", "count=400", "--load-size", "36",
        "--crop-size", "32", "--workers", "0", "--device", "cpu", "--epochs", "1", "--epochs-decay", "0",
        "--checkpoint-every", "1", "--log-every", "1", "--no-progress"]


def contents(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with its bytes (None for folders), but the lock file, which a
    refused attempt to take the lock may touch."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*")) if p.name != LOCK}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished tiny run: 4 steps, checkpoints at steps 2 and 4, a metrics line every step."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    Trainer(tiny_config(max_steps=4, checkpoint_every=2, log_every=1), run_dir, progress=False).fit()
    return run_dir


@pytest.fixture
def run(finished, tmp_path) -> Path:
    """A copy of the finished run of one's own."""
    return Path(shutil.copytree(finished, tmp_path / "runs" / "run", symlinks=True))


# -- 1. --overwrite replaces only a run the zoo made --------------------------------------------------
def test_overwrite_keeps_a_project_folder_with_a_config_json(tmp_path):
    project = tmp_path / "proj"
    (project / "src").mkdir(parents=True)
    (project / "config.json").write_text('{"name":"app"}')
    (project / "src" / "main.py").write_text("code\n")
    result = run_zoo("train", S, *C, "--runs", ".", "--name", "proj", "--overwrite", cwd=tmp_path)
    assert_one_line(result.returncode, result.stderr, "proj", "not overwriting it")
    assert (project / "src" / "main.py").read_text() == "code\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj"]


def test_overwrite_keeps_links_files_and_runs_holding_other_files(run, tmp_path, capsys):
    before = contents(run)
    link = tmp_path / "runs" / "link"
    link.symlink_to(run, target_is_directory=True)
    plain = tmp_path / "runs" / "notes"
    plain.write_text("mine\n")
    (run / "notes.txt").write_text("my notes on this run\n")
    for name, fragment in (("link", "symbolic link"), ("notes", "is a file"), ("run", "'notes.txt'")):
        code, _, err = run_main(capsys, "train", TINY_SPEC, "--runs", str(tmp_path / "runs"), "--name", name,
                                "--overwrite", "--max-steps", "1", "--no-progress", "--device", "cpu")
        assert_one_line(code, err, fragment)
    assert link.is_symlink() and plain.read_text() == "mine\n"
    assert contents(run) == {**before, "notes.txt": b"my notes on this run\n"}


def test_overwrite_replaces_a_run_of_the_zoo_and_leaves_nothing_beside_it(run):
    old_metrics = read_metrics(run / "metrics.jsonl")
    Trainer(tiny_config(max_steps=2, log_every=1, seed=7), run, overwrite=True, progress=False).fit()
    assert [m["step"] for m in read_metrics(run / "metrics.jsonl")] == [1, 2] != [m["step"] for m in old_metrics]
    assert json.loads((run / "config.json").read_text())["config"]["seed"] == 7
    assert latest_checkpoint(run / "checkpoints").name == "step-000000002"
    assert sorted(p.name for p in run.parent.iterdir()) == ["run"]  # no staging or old copy left behind


def test_a_temporary_file_left_by_a_crash_does_not_make_a_run_foreign(run):
    """A run killed while it rewrote report.html leaves the atomic write's temporary file: still the zoo's."""
    from pix2pix_zoo.atomic import temporary_path

    temporary_path(run / "report.html").write_text("half a report")
    Trainer(tiny_config(max_steps=2, log_every=1), run, overwrite=True, progress=False).fit()
    assert not [p.name for p in run.iterdir() if p.name.startswith(".report.html")]


# -- 2. nothing is replaced before the new run's set-up has been checked --------------------------------
@pytest.mark.parametrize("bad", [["--batch-size", "9"], ["--workers", "-1"], ["--lr", "nan"], ["--load-size", "100000"]],
                         ids=["batch-size", "workers", "lr", "load-size"])
def test_a_refused_overwrite_keeps_the_old_run(bad, tmp_path, capsys):
    code, _, err = run_main(capsys, "train", S, *C, "--runs", str(tmp_path), "--name", "r")
    assert code == 0, err
    before = contents(tmp_path / "r")
    code, _, err = run_main(capsys, "train", S, *C, "--runs", str(tmp_path), "--name", "r", "--overwrite", *bad)
    assert_one_line(code, err, bad[0])
    assert contents(tmp_path / "r") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_a_failure_while_writing_the_new_run_keeps_the_old_one(run, monkeypatch):
    before = contents(run)

    def full_disk():
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(trainer_module, "package_versions", full_disk)
    with pytest.raises(OSError, match="No space left"):
        Trainer(tiny_config(max_steps=2), run, overwrite=True, progress=False)
    assert contents(run) == before
    assert sorted(p.name for p in run.parent.iterdir()) == ["run"]


# -- 4. one process per run directory ------------------------------------------------------------------
def wait_for_steps(run_dir: Path, steps: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if len(read_metrics(run_dir / "metrics.jsonl")) >= steps:
            return
        assert process.poll() is None, process.communicate()[1][-2000:]
        time.sleep(0.1)
    pytest.fail("the run made no progress")


def test_a_training_run_holds_its_directory_until_it_dies(tmp_path):
    run_dir = tmp_path / "cc"
    holder = subprocess.Popen([zoo_executable(), "train", *LONG, "--runs", str(tmp_path), "--name", "cc"],
                              env=run_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_steps(run_dir, 2, holder)
        for others in (["--overwrite", "--max-steps", "1"], ["--resume", str(run_dir)]):
            arguments = others if others[0] == "--resume" else [*LONG, *others, "--runs", str(tmp_path), "--name", "cc"]
            result = run_zoo("train", *arguments)
            assert_one_line(result.returncode, result.stderr, "in use by another zoo process", str(holder.pid))
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
    step = int(latest_checkpoint(run_dir / "checkpoints").name.split("-")[1])
    resumed = run_zoo("train", "--resume", str(run_dir), "--max-steps", str(step + 1), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    steps = [m["step"] for m in read_metrics(run_dir / "metrics.jsonl")]
    assert steps == list(range(1, step + 2))  # one writer, no interleaving, no duplicates


def test_two_runs_started_together_under_one_name(tmp_path):
    command = [zoo_executable(), "train", *LONG, "--max-steps", "2", "--runs", str(tmp_path), "--name", "cc"]
    processes = [subprocess.Popen(command, env=run_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    results = [(p.wait(timeout=300), p.communicate()[1]) for p in processes]
    assert sorted(code for code, _ in results) == [0, 1], results
    refused = next(err for code, err in results if code == 1)
    assert_one_line(1, refused, "cc")
    assert [m["step"] for m in read_metrics(tmp_path / "cc" / "metrics.jsonl")] == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cc"]


def test_a_run_made_while_another_is_set_up_is_not_replaced(tmp_path, monkeypatch):
    run_dir = tmp_path / "cc"
    rivals: list[Trainer] = []
    open_dataset = trainer_module.open_dataset

    def rival_sets_up_first(*args, **kwargs):
        if not rivals:  # the first call: another run takes the name while this one is being set up
            rivals.append(None)
            rivals[0] = Trainer(tiny_config(max_steps=2, seed=1), run_dir, progress=False)
        return open_dataset(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "open_dataset", rival_sets_up_first)
    with pytest.raises(RunExists, match="just made by another process"):
        Trainer(tiny_config(max_steps=2, seed=2), run_dir, progress=False)
    rivals[0].fit()
    assert json.loads((run_dir / "config.json").read_text())["config"]["seed"] == 1
    assert [m["step"] for m in read_metrics(run_dir / "metrics.jsonl")] == [2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cc"]


def test_the_lock_is_refused_in_process_too_and_released_after_fit(run):
    holder = Trainer(TrainConfig(), run, resume=True, max_steps=5, progress=False)
    with pytest.raises(RunBusy, match="in use by another zoo process"):
        Trainer(TrainConfig(), run, resume=True, max_steps=6, progress=False)
    holder.fit()
    Trainer(TrainConfig(), run, resume=True, max_steps=6, progress=False).fit()


def test_a_lock_file_planted_as_a_link_is_not_written_through(run, tmp_path, capsys):
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    (run / LOCK).unlink()
    (run / LOCK).symlink_to(target)
    code, _, err = run_main(capsys, "train", "--resume", str(run), "--max-steps", "6", "--no-progress")
    assert_one_line(code, err, "symbolic link", LOCK)
    assert target.read_text() == "keep me\n"


# -- 6. a run with progress but no checkpoint is not silently started over --------------------------------
def test_resume_without_checkpoints_is_refused_when_the_run_has_progress(run):
    shutil.rmtree(run / "checkpoints")
    before = contents(run)
    with pytest.raises(CheckpointError, match=r"metrics\.jsonl, translator/, eval\.json but no checkpoint.*--overwrite"):
        Trainer(TrainConfig(), run, resume=True, progress=False)
    assert contents(run) == before


# -- 9. metrics and checkpoints survive crashes, corruption and a full disk -------------------------------
def test_a_torn_metrics_line_is_trimmed_and_rows_after_the_checkpoint_dropped(run):
    with open(run / "metrics.jsonl", "a") as stream:
        stream.write(json.dumps({"step": 5, "d": 0.5}) + "\n")  # logged after the last checkpoint, then a crash
        stream.write('{"step": 6, "d": 0.')  # torn in the middle of an append
    Trainer(TrainConfig(), run, resume=True, max_steps=8, progress=False).fit()
    assert [m["step"] for m in read_metrics(run / "metrics.jsonl")] == list(range(1, 9))
    assert all(line.startswith("{") for line in (run / "metrics.jsonl").read_text().splitlines())


def corrupt_one_weight(folder: Path) -> None:
    """Change one byte of the generator's tensor data: the file still loads, only its checksum can tell."""
    path = folder / "generator.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40
    path.write_bytes(bytes(data))


def test_a_corrupt_newest_checkpoint_falls_back_to_the_previous_one(run, finished):
    corrupt_one_weight(run / "checkpoints" / "step-000000004")
    lines = []
    trainer = Trainer(TrainConfig(), run, resume=True, progress=False, echo=lines.append)
    assert trainer.step == 2
    assert any("step-000000004" in line and "sha256" in line and "falling back" in line and "step-000000002" in line
               for line in lines), lines
    trainer.fit()
    ours, reference = (load_file(folder / "checkpoints" / "step-000000004" / "generator.safetensors")
                       for folder in (run, finished))
    assert all(torch.equal(ours[key], reference[key]) for key in reference)


def test_no_checkpoint_that_fails_its_checksum_is_called_good(tmp_path, monkeypatch):
    run_dir = tmp_path / "nan"
    trainer = Trainer(tiny_config(max_steps=12, checkpoint_every=2, log_every=2), run_dir, progress=False)
    original_write, original_loss = checkpoint_module.write_checkpoint, trainer.models.objective.generator_loss

    def write_then_corrupt(directory, snapshot, *args, **kwargs):
        folder = original_write(directory, snapshot, *args, **kwargs)
        if snapshot.step == 4:
            corrupt_one_weight(folder)
        return folder

    def poisoned(fake, target, logits):
        loss = original_loss(fake, target, logits)
        return type(loss)(loss.total * float("nan"), loss.terms) if trainer.step >= 5 else loss

    monkeypatch.setattr(checkpoint_module, "write_checkpoint", write_then_corrupt)
    monkeypatch.setattr(trainer.models.objective, "generator_loss", poisoned)
    with pytest.raises(TrainingDiverged, match=r"the last good checkpoint is .*step-000000002$"):
        trainer.fit()


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    run_dir = tmp_path / "full"
    trainer = Trainer(tiny_config(max_steps=4, checkpoint_every=2), run_dir, progress=False)
    original = checkpoint_module.save_file

    def fills_the_disk(tensors, path, *args, **kwargs):
        if "step-000000004" in str(path) and "optimizer" in str(path):
            Path(path).write_bytes(b"half a file")
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return original(tensors, path, *args, **kwargs)

    monkeypatch.setattr(checkpoint_module, "save_file", fills_the_disk)
    with pytest.raises(CheckpointError) as caught:
        trainer.fit()
    message = str(caught.value)
    assert "\n" not in message and "No space left on device" in message
    assert "the previous checkpoint step-000000002 is kept" in message
    checkpoints = run_dir / "checkpoints"
    assert latest_checkpoint(checkpoints).name == "step-000000002"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["latest", "step-000000002"]


def test_checkpoints_carry_checksums_of_their_files(finished):
    folder = latest_checkpoint(finished / "checkpoints")
    recorded = json.loads((folder / "state.json").read_text())["sha256"]
    assert sorted(recorded) == sorted(p.name for p in folder.glob("*.safetensors"))


# -- 10. a hand-edited config.json, and options that cannot apply to a resume ------------------------------
@pytest.mark.parametrize("edit, fragment", [
    (lambda saved: "{not json", "is not valid JSON"),
    (lambda saved: {**saved, "config": {**saved["config"], "batch_size": "4"}}, "'batch_size'"),
    (lambda saved: {**saved, "config": {k: v for k, v in saved["config"].items() if k != "seed"}}, "'seed'"),
    (lambda saved: {**saved, "config": {**saved["config"], "lr": -1}}, "'lr'"),
    (lambda saved: {**saved, "config": {**saved["config"], "spec": "unet_128(ngf=8)+l1"}}, "'spec'"),
    (lambda saved: {**saved, "config": {**saved["config"], "batchsize": 4}}, "'batchsize'"),
    (lambda saved: [saved], "'config'"),
], ids=["invalid-json", "wrong-type", "missing-key", "bad-value", "changed-spec", "unknown-key", "not-an-object"])
def test_a_hand_edited_config_is_one_line_naming_the_key(edit, fragment, run, capsys):
    saved = json.loads((run / "config.json").read_text())
    edited = edit(saved)
    (run / "config.json").write_text(edited if isinstance(edited, str) else json.dumps(edited))
    before = contents(run)
    code, _, err = run_main(capsys, "train", "--resume", str(run), "--max-steps", "6", "--no-progress")
    assert_one_line(code, err, fragment, "config.json")
    assert contents(run) == before


def test_options_that_cannot_apply_to_a_resume_are_refused(run, capsys):
    before = contents(run)
    code, _, err = run_main(capsys, "train", "--resume", str(run), "--batch-size", "4", "--lr", "0.1", "--no-progress")
    assert_one_line(code, err, "--batch-size, --lr cannot be changed with --resume")
    assert contents(run) == before


def test_where_a_resumed_run_computes_may_change(run, capsys):
    """--device and --workers change no result (every step reseeds itself): a resume takes them."""
    code, _, err = run_main(capsys, "train", "--resume", str(run), "--max-steps", "5", "--device", "cpu",
                            "--workers", "1", "--no-progress")
    assert code == 0, err
    assert "resuming" in err and "step 5" in err
    assert json.loads((run / "config.json").read_text())["config"]["workers"] == 0  # the run's own record


def test_a_lock_does_not_live_on_in_loader_workers(run):
    """Persistent loader workers are forked while the run is locked and share the lock's descriptor:
    the run's end must still unlock the directory."""
    holder = Trainer(TrainConfig(), run, resume=True, max_steps=5, workers=2, progress=False)
    holder.fit()
    assert holder.loader.persistent_workers and holder.config.workers == 2
    Trainer(TrainConfig(), run, resume=True, max_steps=6, progress=False).fit()


# -- tracebacks and wrong messages that are now one line ----------------------------------------------------
@pytest.mark.parametrize("options, fragment", [
    (["--seed", "100000000000000000000000"], "--seed must be from 0 to"),
    (["--lr", "inf"], "--lr must be a finite number"),
    (["--ema-decay", "nan"], "--ema-decay must be a finite number"),
    (["--optimizer", "bogus"], "--optimizer must be one of"),
    (["--workers", "-1"], "--workers must be auto or a whole number of 0 or more"),
    (["--runs", "{file}"], "--runs"),
], ids=["huge-seed", "lr-inf", "ema-nan", "optimizer", "workers", "runs-is-a-file"])
def test_bad_training_options_are_one_line(options, fragment, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("not a folder\n")
    options = [str(tmp_path / "file") if o == "{file}" else o for o in options]
    code, _, err = run_main(capsys, "train", S, *C, *options)
    assert_one_line(code, err, fragment)
    assert "--optimizer-impl" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_betas_outside_the_unit_interval_are_refused(tmp_path):
    for betas in ({"beta1": 1.0}, {"beta2": -0.1}, {"beta1": float("nan")}):
        with pytest.raises(ZooError, match="--beta"):
            Trainer(tiny_config(**betas), tmp_path / "never", progress=False)
    assert not (tmp_path / "never").exists()


def test_a_binary_latest_pointer_is_one_line(run, capsys):
    (run / "checkpoints" / "latest").write_bytes(b"\xff\xfe\x00\x81binary")
    before = contents(run)
    code, _, err = run_main(capsys, "train", "--resume", str(run), "--max-steps", "6", "--no-progress")
    assert_one_line(code, err, "latest", "does not hold a checkpoint's name")
    assert contents(run) == before


def test_a_latest_pointer_cannot_lead_outside_the_run(run, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (run / "checkpoints" / "latest").write_text("../../elsewhere\n")
    with pytest.raises(CheckpointError, match="does not hold a checkpoint's name"):
        Trainer(TrainConfig(), run, resume=True, progress=False)


def test_resume_of_a_file_or_a_folder_without_a_run_is_one_line(tmp_path, capsys):
    (tmp_path / "plain").write_text("x\n")
    (tmp_path / "folder").mkdir()
    for target in ("plain", "folder", "missing"):
        code, _, err = run_main(capsys, "train", "--resume", str(tmp_path / target), "--no-progress")
        assert_one_line(code, err, "cannot resume")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["folder", "plain"]


def test_refusing_a_new_run_in_an_existing_folder_names_both_ways_on(run):
    with pytest.raises(RunExists, match="--resume .* --overwrite"):
        Trainer(tiny_config(max_steps=2), run, progress=False)
