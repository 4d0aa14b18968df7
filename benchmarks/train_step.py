"""Training-step throughput and peak memory: a reference-style eager fp32 loop against our trainer's step.

    python benchmarks/train_step.py [--spec unet_256+patch70+l1cgan] [--size 256] [--batch 1 4]
                                    [--steps 8] [--rounds 1] [--device cpu|cuda]
                                    [--variants eager,bf16+channels_last,...]

For each batch size it runs, each in a fresh subprocess (so peak memory is that run's own):

* ``reference``: the step written the way the reference implementation writes it (separate D
  passes on fake and real pairs, BCE-with-logits against target tensors, plain per-parameter Adam,
  fp32, contiguous memory, no compilation);
* our step (``pix2pix_zoo.engine.gan_step`` with the trainer's optimiser choice, fused Adam) in each
  variant asked for: ``eager`` (fp32) or a ``+``-joined set of ``channels_last``, ``bf16`` (autocast),
  ``compile`` (torch.compile of G and D) and ``tuned`` (the trainer's CPU tuning, on by default in
  ``zoo train`` on a CPU in fp32: native kernels for small maps, channels-last activations in D,
  Winograd for wide stride-1 4x4 convolutions, freed memory kept; see ``pix2pix_zoo.engine.cpu_tuning``).

Every run starts from the same weights and sees the same batches, so the losses of the first steps
must agree (to rounding in fp32, to bf16's precision otherwise); the script prints the largest
relative difference at the first step and over the first four (Adam's first updates amplify
rounding). ``channels_last`` and ``compile`` differ by about 1e-3 from the first step for another
reason: they draw the U-Net's dropout masks in another order (channels-last memory; inductor's own
random numbers), so G sees different masks. Images/s are measured after two warm-up steps
(compilation happens there).
With ``--rounds N`` every variant runs N times, the variants interleaved; the table gives the median
images/s, the median of the per-round ratios to the reference and their range: a shared 2-core
machine's speed drifts by 10-20% between minutes, so one round's ratio can mislead.
It also prints the images/s the data loader delivers (synthfacades, decoded and collated), to show
whether loading can keep up with the step. Figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

WARMUP = 2


def reference_step(generator, discriminator, opt_g, opt_d, x, y, lambda_l1=100.0):
    """pix2pix's optimize_parameters as the reference writes it (fp32, eager)."""
    fake = generator(x)
    for p in discriminator.parameters():
        p.requires_grad_(True)
    opt_d.zero_grad()
    pred_fake = discriminator(torch.cat([x, fake.detach()], 1))
    loss_d_fake = F.binary_cross_entropy_with_logits(pred_fake, torch.zeros_like(pred_fake))
    pred_real = discriminator(torch.cat([x, y], 1))
    loss_d_real = F.binary_cross_entropy_with_logits(pred_real, torch.ones_like(pred_real))
    loss_d = (loss_d_fake + loss_d_real) * 0.5
    loss_d.backward()
    opt_d.step()
    for p in discriminator.parameters():
        p.requires_grad_(False)
    opt_g.zero_grad()
    pred_fake = discriminator(torch.cat([x, fake], 1))
    loss_g = F.binary_cross_entropy_with_logits(pred_fake, torch.ones_like(pred_fake)) + lambda_l1 * F.l1_loss(fake, y)
    loss_g.backward()
    opt_g.step()
    return loss_d.detach(), loss_g.detach()


def run_one(args: argparse.Namespace) -> dict:
    """One variant at one batch size, in this process."""
    from pix2pix_zoo.benchmarking import synchronize
    from pix2pix_zoo.engine.gan_step import Amp, gan_step, make_optimizers
    from pix2pix_zoo.spec import resolve

    device = torch.device(args.device)
    torch.manual_seed(0)
    # Both loops call G once per step, so dropout draws the same masks from the same seed.
    models = resolve(args.spec).build(3, 3)
    variant = args.variant
    flags = set(variant.split("+"))  # e.g. "compile+channels_last"; "eager" is none of them
    memory_format = torch.channels_last if "channels_last" in flags else torch.contiguous_format
    models.generator.to(device, memory_format=memory_format)
    models.discriminator.to(device, memory_format=memory_format)
    generator = torch.Generator().manual_seed(1)
    batches = [
        tuple(torch.rand(args.batch, 3, args.size, args.size, generator=generator).mul(2).sub(1).to(device)
              for _ in "xy")
        for _ in range(args.steps + WARMUP)
    ]
    losses = []
    if variant == "reference":
        opt_g = torch.optim.Adam(models.generator.parameters(), lr=2e-4, betas=(0.5, 0.999), foreach=False)
        opt_d = torch.optim.Adam(models.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999), foreach=False)

        def step(x, y):
            return reference_step(models.generator, models.discriminator, opt_g, opt_d, x, y)
    else:
        opt_g, opt_d = make_optimizers(models)
        amp = Amp("bf16" if "bf16" in flags else "fp32", device.type)
        if "tuned" in flags:
            from pix2pix_zoo.engine.cpu_tuning import tune_for_cpu

            tune_for_cpu(models, *batches[0])
        train_g, train_d = models.generator, models.discriminator
        judge = models.discriminator
        if "compile" in flags:
            train_g, train_d = torch.compile(train_g), torch.compile(train_d)
            judge = train_d

        def step(x, y):
            out = gan_step(models, opt_g, opt_d, x, y, amp, generator=train_g, discriminator=train_d, judge=judge)
            return out["d"], out["g"]

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for index, (x, y) in enumerate(batches):
        if memory_format is torch.channels_last:
            x, y = x.contiguous(memory_format=memory_format), y.contiguous(memory_format=memory_format)
        if index == WARMUP:
            synchronize(device)
            start = time.perf_counter()
        losses.append(step(x, y))
    synchronize(device)
    elapsed = time.perf_counter() - start
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # the process's peak RSS
    return {
        "variant": variant,
        "batch": args.batch,
        "images_per_s": args.steps * args.batch / elapsed,
        "peak_bytes": peak,
        "losses": [[float(d), float(g)] for d, g in losses[:4]],
    }


def loader_throughput(size: int, batch: int, workers: int, batches: int = 30) -> float:
    from torch.utils.data import DataLoader

    from pix2pix_zoo.data import open_dataset
    from pix2pix_zoo.data.augment import collate_pairs

    dataset = open_dataset("synthfacades", "train", size=size)
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, collate_fn=collate_pairs,
                        persistent_workers=workers > 0)
    iterator = iter(loader)
    next(iterator)  # workers started
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch / (time.perf_counter() - start)


def loss_difference(results: list[dict], reference_losses: list[list[float]], steps: int) -> float:
    """Largest relative difference of the (D, G) losses over the first ``steps`` steps. Adam's first
    updates amplify rounding differences, so later steps drift further apart."""
    return max(abs(a - b) / max(abs(b), 1e-12) for result in results
               for pair, ref in zip(result["losses"][:steps], reference_losses[:steps])
               for a, b in zip(pair, ref))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="unet_256+patch70+l1cgan")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--variants", default=None,
                        help="default: eager,tuned,channels_last,bf16,compile,compile+channels_last (no tuned on GPUs)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every variant this many times, interleaved; print medians and the ratio range")
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # internal: run one variant in this process
    args = parser.parse_args()
    if args.variant:
        args.batch = args.batch[0]
        print(json.dumps(run_one(args)))
        return

    if args.variants is None:
        tuned = "" if args.device.startswith("cuda") else "tuned,"
        args.variants = f"eager,{tuned}channels_last,bf16,compile,compile+channels_last"
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    print(f"{args.spec} at {args.size}x{args.size} on {name}, torch {torch.__version__}; {args.steps} timed steps")
    print(f"{'batch':>5} {'variant':<22} {'img/s':>8} {'vs ref':>7} {'ratio range':>12} {'peak MiB':>9} "
          f"{'loss rel. diff: step 1':>22} {'steps 1-4':>9}")
    variants = ["reference", *args.variants.split(",")]
    for batch in args.batch:
        runs: dict[str, list[dict]] = {variant: [] for variant in variants}
        ratios: dict[str, list[float]] = {variant: [] for variant in variants}
        for _ in range(args.rounds):
            # Rounds interleave the variants, so a slow spell of the machine hits them all alike;
            # each ratio is taken against the reference run of its own round.
            this_round = {}
            for variant in variants:
                command = [sys.executable, __file__, "--spec", args.spec, "--size", str(args.size), "--batch",
                           str(batch), "--steps", str(args.steps), "--device", args.device, "--variant", variant]
                out = subprocess.run(command, capture_output=True, text=True)
                if out.returncode:
                    print(f"{batch:>5} {variant:<22} failed: {out.stderr.strip().splitlines()[-1]}")
                    continue
                this_round[variant] = json.loads(out.stdout.strip().splitlines()[-1])
                runs[variant].append(this_round[variant])
                if "reference" in this_round:
                    speed = this_round[variant]["images_per_s"]
                    ratios[variant].append(speed / this_round["reference"]["images_per_s"])
        if not runs["reference"]:
            continue
        reference_losses = runs["reference"][0]["losses"]
        for variant, results in runs.items():
            if not results or not ratios[variant]:
                continue

            spread = f"{min(ratios[variant]):.2f}-{max(ratios[variant]):.2f}" if len(ratios[variant]) > 1 else ""
            print(f"{batch:>5} {variant:<22} {statistics.median(r['images_per_s'] for r in results):>8.2f} "
                  f"{statistics.median(ratios[variant]):>6.2f}x {spread:>12} "
                  f"{max(r['peak_bytes'] for r in results) / 2**20:>9.0f} "
                  f"{loss_difference(results, reference_losses, 1):>22.1e} "
                  f"{loss_difference(results, reference_losses, 4):>9.1e}")
        loading = loader_throughput(args.size, batch, args.workers)
        print(f"{batch:>5} {'data loader':<22} {loading:>8.2f}  ({args.workers} workers, synthfacades decode+collate)")


if __name__ == "__main__":
    main()
