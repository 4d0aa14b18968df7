"""Checkpoints off the loop (engine/checkpoint.CheckpointWriter) and where a run's time goes (engine/phases.py)."""

from __future__ import annotations

import errno
import json
import threading
import time

import pytest
import torch
from helpers import assert_one_line, run_main
from safetensors.torch import load_file
from test_trainer import TINY_DATA, TINY_SPEC, tiny_config

from pix2pix_zoo.engine import checkpoint as checkpoint_module
from pix2pix_zoo.engine.checkpoint import CheckpointError, host_copy, latest_checkpoint, take_snapshot
from pix2pix_zoo.engine.phases import PHASES, describe
from pix2pix_zoo.engine import trainer as trainer_module
from pix2pix_zoo.engine.trainer import Trainer


def test_training_goes_on_while_a_checkpoint_is_written_and_the_copy_holds_its_step(tmp_path, monkeypatch):
    """The write of step 2's checkpoint is held until the trainer has taken two more steps: the steps
    did not wait for the disk, and what was written is step 2's state, not the state the steps made
    while it was being written (the same as a run that stopped at step 2)."""
    straight = tmp_path / "stopped-at-2"
    Trainer(tiny_config(max_steps=2), straight, progress=False).fit()

    run_dir = tmp_path / "run"
    trainer = Trainer(tiny_config(max_steps=6, checkpoint_every=2, keep_checkpoints=3), run_dir, progress=False)
    original = checkpoint_module.write_checkpoint
    in_flight, most_in_flight, steps_seen_by_write = [0], [0], {}
    lock = threading.Lock()

    def slow_write(directory, snapshot, *args, **kwargs):
        with lock:
            in_flight[0] += 1
            most_in_flight[0] = max(most_in_flight[0], in_flight[0])
        try:
            if snapshot.step == 2:
                deadline = time.monotonic() + 60
                while trainer.step < 4 and time.monotonic() < deadline:
                    time.sleep(0.01)
                steps_seen_by_write[2] = trainer.step
            return original(directory, snapshot, *args, **kwargs)
        finally:
            with lock:
                in_flight[0] -= 1

    monkeypatch.setattr(checkpoint_module, "write_checkpoint", slow_write)
    trainer.fit()
    assert steps_seen_by_write[2] >= 4, "the loop waited for the checkpoint's write"
    assert most_in_flight[0] == 1
    written = load_file(run_dir / "checkpoints" / "step-000000002" / "generator.safetensors")
    reference = load_file(straight / "checkpoints" / "step-000000002" / "generator.safetensors")
    assert written.keys() == reference.keys()
    assert all(torch.equal(written[key], reference[key]) for key in reference)
    optimizer = load_file(run_dir / "checkpoints" / "step-000000002" / "optimizer_g.safetensors")
    assert all(torch.equal(tensor, load_file(straight / "checkpoints" / "step-000000002" / "optimizer_g.safetensors")[key])
               for key, tensor in optimizer.items())


def test_a_write_that_fails_on_the_writer_thread_stops_the_run_in_one_line(tmp_path, monkeypatch, capsys):
    """The disk fills while step 2's checkpoint is written beside the steps: the run stops at the next
    step with the writer's one-line error, step 2 is not left half written, the lock is released."""
    original = checkpoint_module.save_file

    def fills_the_disk(tensors, path, *args, **kwargs):
        if "step-000000004" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return original(tensors, path, *args, **kwargs)

    monkeypatch.setattr(checkpoint_module, "save_file", fills_the_disk)
    code, _, err = run_main(
        capsys, "train", TINY_SPEC, "--data", "synthfacades", "--data-opt", "size=32", "--data-opt", "count=24",
        "--load-size", "36", "--crop-size", "32", "--batch-size", "2", "--max-steps", "8", "--checkpoint-every", "2",
        "--workers", "0", "--device", "cpu", "--log-every", "1", "--runs", str(tmp_path), "--name", "full", "--no-progress",
    )
    assert_one_line(code, err, "cannot write checkpoint", "No space left on device",
                    "the previous checkpoint step-000000002 is kept")
    checkpoints = tmp_path / "full" / "checkpoints"
    assert latest_checkpoint(checkpoints).name == "step-000000002"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["latest", "step-000000002"]
    steps = [json.loads(line)["step"] for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) <= 6, "the run went on after its checkpoint could not be written"
    monkeypatch.undo()  # the disk has room again
    Trainer(tiny_config(), tmp_path / "full", resume=True, progress=False).fit()  # the lock was released


def test_the_end_draws_its_samples_before_the_last_write_and_no_report_beside_it(tmp_path, monkeypatch):
    """The last checkpoint's write starts once the end's sample grid is drawn (drawn beside it, its
    kernels would share the cores with the hashing), and redraws no report (the end draws it):
    the periodic checkpoint before it does."""
    run_dir = tmp_path / "run"
    original = checkpoint_module.write_checkpoint
    seen = {}

    def watched_write(directory, snapshot, *args, **kwargs):
        seen[snapshot.step] = sorted(p.name for p in (run_dir / "samples").glob("*.png"))
        return original(directory, snapshot, *args, **kwargs)

    redrawn = []
    monkeypatch.setattr(checkpoint_module, "write_checkpoint", watched_write)
    monkeypatch.setattr(trainer_module, "write_report", lambda run_dir, *args: redrawn.append(threading.current_thread().name))
    Trainer(tiny_config(max_steps=4, checkpoint_every=2, sample_every=100), run_dir, progress=False).fit()
    assert seen == {2: [], 4: ["step-000000004.png"]}
    assert redrawn == ["checkpoint-writer", threading.main_thread().name]  # after step 2's write; the end's


def test_when_the_end_cannot_draw_its_samples_the_last_checkpoint_is_still_written(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"

    def fails(self, x, y):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Trainer, "_draw_samples", fails)
    with pytest.raises(OSError, match="No space left"):
        Trainer(tiny_config(max_steps=3, sample_every=100), run_dir, progress=False).fit()
    assert latest_checkpoint(run_dir / "checkpoints").name == "step-000000003"
    monkeypatch.undo()
    Trainer(tiny_config(max_steps=3), run_dir, resume=True, max_steps=3, progress=False).fit()  # only the end is left
    assert (run_dir / "samples" / "step-000000003.png").is_file() and (run_dir / "translator").is_dir()


def test_a_snapshot_is_a_copy_that_later_updates_do_not_reach():
    layer = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(layer.parameters())
    layer(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    snapshot = take_snapshot(1, {"generator": layer}, {"optimizer_g": optimizer}, {"epoch": 1})
    before = {key: value.clone() for key, value in snapshot.tensors["generator"].items()}
    moments = snapshot.tensors["optimizer_g"]["0.exp_avg"].clone()
    optimizer.step()
    assert not torch.equal(layer.weight, before["weight"])  # training moved on...
    assert all(torch.equal(snapshot.tensors["generator"][key], value) for key, value in before.items())  # ...the copy did not
    assert torch.equal(snapshot.tensors["optimizer_g"]["0.exp_avg"], moments)
    assert snapshot.state["step"] == 1 and snapshot.state["optimizers"]["optimizer_g"]["param_groups"]
    assert snapshot.copied is None  # nothing to wait for on a CPU
    channels_last = torch.randn(1, 4, 3, 3).contiguous(memory_format=torch.channels_last)
    assert host_copy(channels_last).is_contiguous() and torch.equal(host_copy(channels_last), channels_last)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_snapshot_from_a_gpu_goes_to_pinned_memory_and_is_waited_for():
    layer = torch.nn.Conv2d(3, 4, 3).cuda().to(memory_format=torch.channels_last)
    snapshot = take_snapshot(1, {"generator": layer}, {}, {})
    layer.weight.data.add_(1)  # queued after the copy on the same stream
    snapshot.wait_until_copied()
    copy = snapshot.tensors["generator"]["weight"]
    assert copy.is_pinned() and copy.is_contiguous() and snapshot.copied is not None
    assert torch.equal(copy + 1, layer.weight.detach().cpu())


def test_each_session_records_where_its_time_went(tmp_path, capsys):
    run_dir = tmp_path / "run"
    lines: list[str] = []
    Trainer(tiny_config(max_steps=6, checkpoint_every=2, sample_every=3), run_dir, progress=False,
            echo=lines.append).fit()
    Trainer(tiny_config(max_steps=9), run_dir, resume=True, max_steps=9, progress=False, echo=lines.append).fit()
    sessions = json.loads((run_dir / "config.json").read_text())["timings"]
    assert [s["resumed_from_step"] for s in sessions] == [None, 6] and [s["last_step"] for s in sessions] == [6, 9]
    first, resumed = (s["phases"] for s in sessions)
    assert set(first) <= set(PHASES)
    for phase in ("set_up", "first_step", "steps", "checkpoints", "checkpoint_writes", "samples", "evaluation",
                  "export", "report"):
        assert first[phase]["seconds"] >= 0, phase
    assert first["first_step"]["count"] == 1 and first["steps"]["count"] == 5
    assert first["checkpoints"]["count"] == first["checkpoint_writes"]["count"] == 3  # steps 2, 4 and 6
    assert first["samples"]["count"] == 2  # steps 3 and 6: the end's grid is step 6's, drawn once
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == [
        "step-000000003.png", "step-000000006.png", "step-000000009.png"]
    assert resumed["first_step"]["count"] == 1 and resumed["steps"]["count"] == 2
    images = 5 * 2  # the steady steps of the first session, batch size 2
    assert sessions[0]["steady_img_per_s"] == pytest.approx(images / first["steps"]["seconds"], rel=1e-2)
    said = [line for line in lines if line.startswith("time: ")]
    assert len(said) == 2 and "5 steps" in said[0] and "img/s" in said[0] and "3 checkpoints" in said[0]
    assert said[0] == describe(sessions[0] | {"phases": {p: first[p] for p in PHASES if p in first}})


def test_zoo_train_says_where_the_time_went_on_stderr(tmp_path, capsys):
    code, out, err = run_main(
        capsys, "train", TINY_SPEC, "--data", "synthfacades", "--data-opt", f"size={TINY_DATA['size']}",
        "--data-opt", f"count={TINY_DATA['count']}", "--load-size", "36", "--crop-size", "32", "--max-steps", "3",
        "--workers", "0", "--device", "cpu", "--runs", str(tmp_path), "--name", "timed", "--no-progress", "--json",
    )
    assert code == 0, err
    assert "time: " in err and "time: " not in out  # diagnostics on stderr, data on stdout
    timings = json.loads((tmp_path / "timed" / "config.json").read_text())["timings"]
    assert len(timings) == 1 and timings[0]["phases"]["steps"]["count"] == 2
