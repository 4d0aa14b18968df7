"""High-resolution training within memory: peak memory and step time with and without activation checkpointing.

    python benchmarks/high_resolution.py [--generators unet_256,resnet_9blocks] [--sizes 512 1024]
                                         [--steps 2] [--warmup 1] [--rounds 1] [--device cpu|cuda]
                                         [--variants reference,ours,ours+ckpt]

For each generator (with ``patch70`` and ``l1cgan``, batch 1) and image side it runs, each in a fresh
subprocess (so peak memory is that run's own):

* ``reference``: the step written the way the reference implementation writes it
  (``benchmarks/train_step.py``'s ``reference_step``: plain per-parameter Adam, fp32, eager);
* ``ours``: the trainer's step (``pix2pix_zoo.engine.gan_step``, fused Adam) as ``zoo train`` runs it on
  this device: on a CPU with its CPU tuning (``pix2pix_zoo.engine.cpu_tuning``), as by default;
* ``ours+ckpt``: the same with ``--activation-checkpointing``: the generator recomputes its
  activations in the backward pass (``pix2pix_zoo.recompute``), and freed memory is handed back
  (``tune_for_cpu(keep_memory=False)``, as the trainer does then);
* ``ours+ckpt+hugepages`` (not run by default): the same with ``THP_MEM_ALLOC_ENABLE=1``, torch's
  switch that has its CPU tensors of 2 MiB and more faulted in as transparent huge pages (the
  kernel permitting): fewer page faults for what is handed back, for some memory lost to alignment.
  Every other variant runs with it unset, whatever the shell says;
* ``ours+ckpt+keep`` (not run by default): recomputing, with freed memory kept as without it: no page
  faults for fresh memory every step, but a heap as large as its worst fragments;
* ``plain``, ``plain+ckpt`` (not run by default): ours without the CPU tuning.

Peak memory is the process's peak resident set on a CPU (``ru_maxrss``: the Python runtime, torch's
libraries, the weights, gradients and Adam's states, and the step's activations) and
``torch.cuda.max_memory_allocated`` on a GPU (tensors only). Step time is the best of ``--steps``
steps after ``--warmup`` warm-up steps; with ``--rounds N`` every variant runs N times, interleaved,
and the table gives the median time and the largest peak. Ratios are to ``ours`` of the same size (``time x``: this
step time over ours; ``x less``: ours's peak over this peak); the goal is at least 2x less peak memory
for at most 35% more step time. Three columns (MiB) say where the memory goes: ``runtime`` is the
resident set before any network is built (Python, torch; 0 on a GPU), ``fixed`` what the weights,
their gradients and Adam's two states take (16 bytes a parameter, G and D) whatever the image size,
``G kept`` what the generator's forward pass keeps for the backward pass besides its weights
(:func:`pix2pix_zoo.recompute.kept_for_backward`, one more forward pass after the timed steps): the
part checkpointing cuts. Figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import reference_step  # noqa: E402  (the reference-style loop, shared)

VARIANTS = ("reference", "ours", "ours+ckpt", "ours+ckpt+hugepages", "ours+ckpt+keep", "plain", "plain+ckpt")
TORCH_HUGE_PAGES = "THP_MEM_ALLOC_ENABLE"  # read by torch once, at its first CPU allocation


def child_environment(variant: str) -> dict[str, str]:
    """The environment of the process that runs ``variant``: torch's huge pages only for ``+hugepages``."""
    environment = {key: value for key, value in os.environ.items() if key != TORCH_HUGE_PAGES}
    if "hugepages" in variant.split("+"):
        environment[TORCH_HUGE_PAGES] = "1"
    return environment


def run_one(args: argparse.Namespace) -> dict:
    """One variant at one size, in this process."""
    from pix2pix_zoo.benchmarking import synchronize
    from pix2pix_zoo.engine.cpu_tuning import tune_for_cpu
    from pix2pix_zoo.engine.gan_step import gan_step, make_optimizers
    from pix2pix_zoo.recompute import kept_for_backward
    from pix2pix_zoo.spec import resolve

    device = torch.device(args.device)
    runtime = 0 if device.type == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    torch.manual_seed(0)
    models = resolve(f"{args.generator}+patch70+l1cgan").build(3, 3)
    models.generator.to(device)
    models.discriminator.to(device)
    parameters = sum(p.numel() for m in (models.generator, models.discriminator) for p in m.parameters())
    generator = torch.Generator().manual_seed(1)
    batches = [tuple(torch.rand(1, 3, args.size, args.size, generator=generator).mul(2).sub(1).to(device) for _ in "xy")
               for _ in range(args.steps + args.warmup)]
    variant = args.variant
    if variant == "reference":
        opt_g = torch.optim.Adam(models.generator.parameters(), lr=2e-4, betas=(0.5, 0.999), foreach=False)
        opt_d = torch.optim.Adam(models.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999), foreach=False)

        def step(x, y):
            reference_step(models.generator, models.discriminator, opt_g, opt_d, x, y)
    else:
        optimizers = make_optimizers(models)
        flags = set(variant.split("+"))
        recomputing = "ckpt" in flags
        if "ours" in flags and device.type == "cpu":  # freed memory handed back when recomputing, unless +keep
            tune_for_cpu(models, *batches[0], keep_memory="keep" in flags or not recomputing)
        models.generator.set_activation_checkpointing(recomputing)

        def step(x, y):
            gan_step(models, *optimizers, x, y)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for x, y in batches:
        start = time.perf_counter()
        step(x, y)
        synchronize(device)
        times.append(time.perf_counter() - start)
    seconds = min(times[args.warmup:])  # the least disturbed by whatever else the machine runs
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"variant": variant, "seconds": seconds, "peak_bytes": peak, "runtime_bytes": runtime,
            "fixed_bytes": 16 * parameters,
            "kept_bytes": kept_for_backward(lambda: models.generator(batches[0][0]), models.generator.parameters())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generators", default="unet_256,resnet_9blocks", help="comma-separated generator specs")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--steps", type=int, default=2, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--variants", default="reference,ours,ours+ckpt",
                        help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every variant this many times, interleaved; print the median time")
    parser.add_argument("--generator", help=argparse.SUPPRESS)  # internal: run one variant in this process
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_one(args)))
        return

    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    memory = "torch.cuda.max_memory_allocated" if args.device.startswith("cuda") else "peak RSS"
    print(f"+patch70+l1cgan, batch 1, on {name}, torch {torch.__version__}; best of {args.steps} steps after "
          f"{args.warmup}, median of {args.rounds} rounds; peak: {memory}; ratios to ours")
    print(f"{'generator':<15} {'size':>5} {'variant':<20} {'s/step':>7} {'time x':>7} {'peak MiB':>9} "
          f"{'x less':>6} {'runtime':>8} {'fixed':>6} {'G kept':>7}")
    for generator in args.generators.split(","):
        for size in args.sizes:
            runs: dict[str, list[dict]] = {variant: [] for variant in variants}
            for _ in range(args.rounds):  # interleaved, so a slow spell of a shared machine hits all alike
                for variant in variants:
                    command = [sys.executable, __file__, "--generator", generator, "--size", str(size), "--steps",
                               str(args.steps), "--warmup", str(args.warmup), "--device", args.device,
                               "--variant", variant]
                    out = subprocess.run(command, capture_output=True, text=True, env=child_environment(variant))
                    if out.returncode:
                        print(f"{generator:<15} {size:>5} {variant:<20} failed: {out.stderr.strip().splitlines()[-1]}")
                        continue
                    runs[variant].append(json.loads(out.stdout.strip().splitlines()[-1]))
            results = {variant: {**found[0], "seconds": statistics.median(r["seconds"] for r in found),
                                 "peak_bytes": max(r["peak_bytes"] for r in found)}
                       for variant, found in runs.items() if found}
            base = results.get("ours")
            for variant, result in results.items():
                time_ratio = f"{result['seconds'] / base['seconds']:.2f}" if base else ""
                memory_ratio = f"{base['peak_bytes'] / result['peak_bytes']:.2f}" if base else ""
                print(f"{generator:<15} {size:>5} {variant:<20} {result['seconds']:>7.2f} {time_ratio:>7} "
                      f"{result['peak_bytes'] / 2**20:>9.0f} {memory_ratio:>6} {result['runtime_bytes'] / 2**20:>8.0f} "
                      f"{result['fixed_bytes'] / 2**20:>6.0f} {result['kept_bytes'] / 2**20:>7.0f}", flush=True)


if __name__ == "__main__":
    main()
