"""Many processes: real torchrun, two CPU ranks over gloo."""

from __future__ import annotations

import copy
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import run_env
from safetensors.torch import load_file

from pix2pix_zoo.engine.config import TrainConfig
from pix2pix_zoo.engine.trainer import Trainer

WORKER = Path(__file__).with_name("ddp_worker.py")
# No randomness anywhere (no crop, no flip, no dropout) and per-sample normalisation: two ranks with
# one pair each must then compute what one process computes with both pairs in its batch.
SETTINGS = dict(
    spec="resnet_6blocks(ngf=4,norm=instance)+patch16(ndf=4,norm=instance)+l1cgan",
    data="synthfacades", data_options={"size": 32, "count": 16}, preprocess="none", flip=False,
    epochs=1, epochs_decay=0, max_steps=4, workers=0, device="cpu", log_every=2, sample_every=100,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
               "--master-addr", "127.0.0.1", "--master-port", str(free_port()), *args]
    return subprocess.run(command, capture_output=True, text=True, env=run_env(OMP_NUM_THREADS="1"), timeout=600)


def test_two_ranks_agree_and_equal_one_process_with_the_global_batch(tmp_path):
    settings = {**SETTINGS, "log_every": 1}
    result = torchrun(str(WORKER), str(tmp_path / "ddp"), json.dumps({**settings, "batch_size": 1}))
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (load_file(tmp_path / "ddp" / f"rank{r}.safetensors") for r in (0, 1))
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key

    single = Trainer(TrainConfig(**{**settings, "batch_size": 2}), tmp_path / "single", progress=False)
    single.fit()
    # Every step's losses (D, G's GAN and L1 terms), averaged over the ranks, are the global batch's.
    ddp_metrics, single_metrics = (
        [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        for run in (tmp_path / "ddp" / "run", tmp_path / "single")
    )
    assert [m["step"] for m in ddp_metrics] == [m["step"] for m in single_metrics] == [1, 2, 3, 4]
    for ours, theirs in zip(ddp_metrics, single_metrics):
        for key in ("d", "g_gan", "g_l1"):
            assert ours[key] == pytest.approx(theirs[key], rel=1e-5), (ours["step"], key)
    # The networks compute the same function. (Single weights may not match to the bit: a conv bias
    # right before instance norm gets a zero gradient up to rounding, and Adam turns rounding noise
    # into steps of up to lr; instance norm then cancels that bias exactly.)
    ddp_generator = copy.deepcopy(single.models.generator)
    ddp_generator.load_state_dict(rank0)
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(ddp_generator(image), single.models.generator(image), rtol=0, atol=1e-4)
    for key, value in single.models.generator.state_dict().items():
        assert (value - rank0[key]).abs().max() <= 2 * settings.get("lr", 2e-4) * settings["max_steps"], key


def test_cli_under_torchrun_writes_once(tmp_path):
    spec = "resnet_6blocks(ngf=4,norm=syncbatch)+patch16(ndf=4)+l1cgan"
    result = torchrun(
        "-m", "pix2pix_zoo", "train", spec, "--data", "synthfacades", "--data-opt", "size=32",
        "--data-opt", "count=16", "--preprocess", "none", "--no-flip", "--epochs", "1", "--epochs-decay", "0",
        "--max-steps", "2", "--workers", "0", "--device", "cpu", "--log-every", "1", "--runs", str(tmp_path),
        "--name", "ddp", "--no-progress",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "ddp"
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]  # one writer, not two
    assert json.loads((run_dir / "config.json").read_text())["world_size"] == 2
    assert (run_dir / "translator" / "model.safetensors").exists()
    assert result.stdout.count("held-out") == 1
    # On CPU there is no SyncBatchNorm; the run says so (once: only rank 0 speaks).
    assert result.stderr.count("norm=syncbatch needs CUDA") == 1
