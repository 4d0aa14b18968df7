"""How long a checkpoint holds training up: written in the loop (before) against off the loop (now).

    python benchmarks/checkpoint_stall.py [--spec unet_256+patch70+l1cgan] [--size 256] [--steps 24]
                                          [--every 4] [--rounds 2] [--device cpu|cuda] [--json]

The trainer's step (``gan_step`` with its optimisers, and the CPU tuning on a CPU in fp32) runs
``--steps`` timed steps three ways, interleaved for ``--rounds`` rounds, in one process:

* ``none``: no checkpoint;
* ``in the loop``: every ``--every`` steps :func:`~pix2pix_zoo.engine.checkpoint.save_checkpoint`,
  the way the trainer wrote checkpoints before (copy, safetensors, sha256, fsync, rename, all
  while the loop waits);
* ``off the loop``: every ``--every`` steps :func:`~pix2pix_zoo.engine.checkpoint.take_snapshot`
  and :class:`~pix2pix_zoo.engine.checkpoint.CheckpointWriter`, as the trainer does now (the loop
  waits for the copy only; the disk works on the writer's thread, one write at a time).

The stall per checkpoint is (loop time - loop time without checkpoints) / checkpoints: what a user
feels, including the writer's thread competing with the step for the cores. Also printed: the
time the save call itself blocks the loop, and the size of one checkpoint. Figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from pix2pix_zoo.benchmarking import synchronize
from pix2pix_zoo.engine.checkpoint import CheckpointWriter, save_checkpoint, take_snapshot
from pix2pix_zoo.engine.gan_step import Amp, gan_step, make_optimizers
from pix2pix_zoo.spec import resolve

MODES = ("none", "in the loop", "off the loop")


def timed_loop(mode: str, models, optimizers, batches, every: int, folder: Path, device: torch.device) -> dict:
    """Seconds for the steps (with the checkpoints of ``mode``), and the seconds the save calls blocked."""
    opt_g, opt_d = optimizers
    modules = {"generator": models.generator, "discriminator": models.discriminator}
    states = {"optimizer_g": opt_g, "optimizer_d": opt_d}
    writer = CheckpointWriter(folder, keep=2)
    amp = Amp("fp32", device.type)
    blocked, checkpoints = 0.0, 0
    synchronize(device)
    start = time.perf_counter()
    for step, (x, y) in enumerate(batches, start=1):
        gan_step(models, opt_g, opt_d, x, y, amp)
        if mode != "none" and step % every == 0:
            called = time.perf_counter()
            if mode == "in the loop":
                save_checkpoint(folder, step, modules, states, {"epoch": 1, "step_in_epoch": step})
            else:
                writer.submit(take_snapshot(step, modules, states, {"epoch": 1, "step_in_epoch": step}))
            blocked += time.perf_counter() - called
            checkpoints += 1
    synchronize(device)
    loop = time.perf_counter() - start
    writer.wait()  # the last write may end after the loop; the trainer overlaps it with evaluation
    return {"mode": mode, "loop_s": loop, "blocked_s": blocked, "checkpoints": checkpoints}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="unet_256+patch70+l1cgan")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--every", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    models = resolve(args.spec).build(3, 3)
    models.generator.to(device)
    models.discriminator.to(device)
    optimizers = make_optimizers(models)
    noise = torch.Generator().manual_seed(1)
    batches = [tuple(torch.rand(1, 3, args.size, args.size, generator=noise).mul(2).sub(1).to(device) for _ in "xy")
               for _ in range(args.steps)]
    if device.type == "cpu":
        from pix2pix_zoo.engine.cpu_tuning import tune_for_cpu

        tune_for_cpu(models, *batches[0])
    for x, y in batches[:2]:  # warm-up
        gan_step(models, *optimizers, x, y, Amp("fp32", device.type))

    scratch = Path(tempfile.mkdtemp(prefix="checkpoint-stall-"))
    results: dict[str, list[dict]] = {mode: [] for mode in MODES}
    try:
        for round_index in range(args.rounds):
            for mode in MODES:
                folder = scratch / f"{round_index}-{mode.replace(' ', '-')}"
                results[mode].append(timed_loop(mode, models, optimizers, batches, args.every, folder, device))
        size = sum(f.stat().st_size for f in next(scratch.glob("0-off-the-loop/step-*")).iterdir())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    base = statistics.median(r["loop_s"] for r in results["none"])
    rows = []
    for mode in MODES:
        loop = statistics.median(r["loop_s"] for r in results[mode])
        count = results[mode][0]["checkpoints"]
        rows.append({
            "mode": mode,
            "loop_s": loop,
            "stall_per_checkpoint_s": (loop - base) / count if count else None,
            "blocked_per_checkpoint_s": statistics.median(r["blocked_s"] for r in results[mode]) / count if count else None,
            "checkpoints": count,
        })
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    summary = {"spec": args.spec, "size": args.size, "steps": args.steps, "every": args.every, "rounds": args.rounds,
               "device": device_name, "checkpoint_bytes": size, "rows": rows}
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"{args.spec} at {args.size}x{args.size} on {device_name}, torch {torch.__version__}: {args.steps} steps, "
          f"a checkpoint ({size / 2**20:.0f} MiB) every {args.every}; medians of {args.rounds} rounds")
    print(f"{'checkpoints':<14} {'loop s':>8} {'stall per checkpoint s':>23} {'save call blocks s':>19}")
    for row in rows:
        stall = "" if row["stall_per_checkpoint_s"] is None else f"{row['stall_per_checkpoint_s']:.3f}"
        blocked = "" if row["blocked_per_checkpoint_s"] is None else f"{row['blocked_per_checkpoint_s']:.3f}"
        print(f"{row['mode']:<14} {row['loop_s']:>8.2f} {stall:>23} {blocked:>19}")


if __name__ == "__main__":
    main()
