"""The whole `zoo train` process against the reference implementation's own train.py: one epoch, wall clock.

    python benchmarks/whole_process.py [--reference DIR] [--reference-pythonpath DIRS]
                                       [--images 96 24] [--rounds 2] [--workers auto]
                                       [--spec unet_256+patch70+l1cgan] [--size 256]
                                       [--step-steps 8] [--json FILE|-] [--keep DIR]

What is compared, for each ``--images N``:

* ours: ``python -m pix2pix_zoo train SPEC --data folder:ROOT --direction AtoB --epochs 1
  --epochs-decay 0 --batch-size 1 --load-size 286 --crop-size 256 --workers W --device cpu
  --log-every 8 --no-progress`` with everything else at its default: fp32, the CPU tuning on,
  random crop and flip, one checkpoint at the end of the epoch (weights and Adam states), the
  end-of-run sample grid, the translator exported, report.html written. ROOT holds
  ``train/`` only, so there is no held-out split and no evaluation (the reference evaluates nothing
  either). ``--log-every 8`` divides 96 and 24, so every logged window is whole steps and none holds
  the checkpoint; on a CPU reading the losses costs no device synchronisation.
* the reference, with ``--reference DIR`` (a checkout of junyanz/pytorch-CycleGAN-and-pix2pix; written
  against 2a7afba, 2025-08-06): ``python train.py --dataroot ROOT --model pix2pix --direction AtoB
  --n_epochs 1 --n_epochs_decay 0 --num_threads W --no_html --save_epoch_freq 1 --checkpoints_dir ...``
  run in DIR, all else at its defaults (unet_256, batch norm, basic 70x70 PatchGAN, vanilla GAN
  loss, lambda_L1 100, batch 1, load 286, crop 256, flip, Adam 2e-4 (0.5, 0.999), no image pool).
  Older checkouts that still have ``--gpu_ids`` / ``--display_id`` (visdom) get ``--gpu_ids -1`` /
  ``--display_id 0``; 2a7afba has neither and picks the CPU itself when CUDA is absent (the script
  hides CUDA from it with ``--device cpu``). Its ``util/visualizer.py`` imports ``wandb`` and
  ``dominate`` unconditionally: install them (``pip install dominate wandb``), or into a folder of
  their own (``pip install --target DIR dominate wandb``) named by ``--reference-pythonpath DIR``,
  which is put on PYTHONPATH for the reference's process only.
* without ``--reference``, a reference-style process stands in for it: this script run again
  (``--reference-loop``) reads the same JPEGs the way the reference's aligned dataset does (PIL
  decode, split A|B, bicubic resize to 286, the same random crop and flip for both halves, to a
  tensor, normalised to [-1, 1]) through a DataLoader (shuffled, batch 1, W workers), builds the
  spec's networks with the zoo (the same architectures and init as the reference's; its imports
  are lighter than the reference's torchvision and wandb) and runs ``reference_step`` from
  benchmarks/train_step.py (plain per-parameter Adam, fp32, eager), then saves G and D as the
  reference does at the end of an epoch.

What differs between the two real processes, beyond the code under test: at the end of the epoch
ours writes one checkpoint with the Adam states (about 3x the weights: some 690 MB for this
spec) where the reference writes the bare weights twice, ``latest_net_*`` and ``1_net_*`` (some
460 MB: ``--save_epoch_freq 1``; with its default 5 a one-epoch run would save nothing, which no
real run of it does); ours also writes a sample grid, report.html (matplotlib charts) and the
exported translator (another 218 MB), and a TensorBoard event file where tensorboard is installed.
The reference also writes its options and loss log. Both use torch's default threads.

Loader workers (``--workers``): both sides get the same number, by default the one our trainer's
``--workers auto`` picks (one on a 2-core CPU), so the comparison is of the training code, not of a
worker setting. The reference's own default is 4 (``--num_threads``); ``--reference-workers 4``
runs it so. On a CPU one decode (some milliseconds) is small beside one step (about a second at
256x256), so the count matters mostly for start-up and memory.

The two sides alternate for ``--rounds`` rounds, the first side swapping each round, so a slow
spell of a shared machine hits both alike; each round's ratio is the reference's wall time over
ours, and the summary gives their median and range. Then, from our runs: the trainer's steady
images/s (the median of the logged windows after the first; the first holds the loader's start and
the warm-up), against the isolated step benchmark (``benchmarks/train_step.py --variant tuned``,
the trainer's CPU default; ``eager`` on CUDA) run in a fresh process in each round, and, where the
trainer records them, its phase timings (config.json ``timings``: start, set-up, first step,
steps, checkpoint, samples, export, report). The goals of issue 16 are printed beside the figures:
96 images >= 1.5x, 24 images >= 1.35x, steady images/s within 5% of the step benchmark's.
Figures, not pass/fail.

The JPEGs: synthfacades pairs (256x256 each, so 512x256 side-by-side AB images, JPEG quality 95),
the same files for both sides, written once into ``--keep DIR`` or a temporary folder. ``--spec``
and ``--size`` (the crop; load size 286/256 of it) exist for quick runs of the script itself, e.g.
``--images 2 --rounds 1 --spec "unet_128(ngf=4)+patch70(ndf=4)+l1cgan" --size 128 --log-every 1
--step-steps 2`` (some 40 s on 2 cores); ``--reference`` needs the defaults, the reference's pix2pix.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
DEFAULT_SPEC = "unet_256+patch70+l1cgan"
GOALS = {96: 1.5, 24: 1.35}  # whole-process ratio goals (reference seconds / ours)
STEADY_GOAL = 0.05  # the trainer's steady img/s within 5% of the isolated step benchmark's
# The trainer's phases (config.json "timings", pix2pix_zoo.engine.phases), in the order they happen.
PHASE_ORDER = ("start", "set_up", "first_step", "steps", "checkpoints", "checkpoint_writes", "samples",
               "evaluation", "export", "report")


def _train_step_module():
    """benchmarks/train_step.py, imported by path (benchmarks/ is no package)."""
    spec = importlib.util.spec_from_file_location("train_step_benchmark", HERE / "train_step.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the data -------------------------------------------------------------------------------------------
def make_pairs(folder: Path, count: int) -> list[Path]:
    """``count`` side-by-side AB JPEGs of synthfacades pairs (512x256) in ``folder``."""
    import torch
    from PIL import Image

    from pix2pix_zoo.data import open_dataset

    folder.mkdir(parents=True, exist_ok=True)
    dataset = open_dataset("synthfacades", "train", size=256)
    paths = []
    for index in range(count):
        path = folder / f"{index:05d}.jpg"
        if not path.exists():
            item = dataset[index]
            pair = torch.cat([item["a"], item["b"]], dim=2).permute(1, 2, 0).numpy()
            Image.fromarray(pair).save(path, quality=95)
        paths.append(path)
    return paths


def dataset_root(work: Path, pool: list[Path], count: int) -> Path:
    """A folder ROOT with ``ROOT/train/`` holding the first ``count`` JPEGs of the pool (hard links)."""
    root = work / f"data-{count}"
    train = root / "train"
    if train.exists():
        shutil.rmtree(train)
    train.mkdir(parents=True)
    for path in pool[:count]:
        try:
            os.link(path, train / path.name)
        except OSError:
            shutil.copy2(path, train / path.name)
    return root


# -- the reference-style stand-in (--reference-loop) ----------------------------------------------------------
class AlignedJPEGs:
    """The reference's aligned dataset, as it reads a pair: PIL, A|B halves, resize, crop, flip, [-1, 1]."""

    def __init__(self, root: Path, load_size: int, crop_size: int) -> None:
        self.paths = sorted((root / "train").iterdir())
        self.load_size, self.crop_size = load_size, crop_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        import numpy as np
        import torch
        from PIL import Image

        pair = Image.open(self.paths[index]).convert("RGB")
        width, height = pair.size
        halves = pair.crop((0, 0, width // 2, height)), pair.crop((width // 2, 0, width, height))
        # get_params: one crop position and one flip for both halves, drawn with Python's random
        x = random.randint(0, max(0, self.load_size - self.crop_size))
        y = random.randint(0, max(0, self.load_size - self.crop_size))
        flip = random.random() > 0.5
        tensors = []
        for half in halves:
            half = half.resize((self.load_size, self.load_size), Image.BICUBIC)
            half = half.crop((x, y, x + self.crop_size, y + self.crop_size))
            if flip:
                half = half.transpose(Image.FLIP_LEFT_RIGHT)
            array = torch.from_numpy(np.asarray(half, dtype=np.uint8).copy()).permute(2, 0, 1)
            tensors.append(array.float().div(255).sub(0.5).div(0.5))  # ToTensor, Normalize(0.5, 0.5)
        return {"A": tensors[0], "B": tensors[1], "A_paths": str(self.paths[index])}


def reference_loop(args: argparse.Namespace) -> None:
    """One epoch the reference's way, in this process (the stand-in for its train.py)."""
    import torch
    from torch.utils.data import DataLoader

    from pix2pix_zoo.spec import resolve

    reference_step = _train_step_module().reference_step
    device = torch.device(args.device)
    dataset = AlignedJPEGs(Path(args.reference_loop), args.size * 286 // 256, args.size)
    loader = DataLoader(dataset, batch_size=1, shuffle=True, num_workers=args.workers)
    print(f"The number of training images = {len(dataset)}")
    models = resolve(args.spec).build(3, 3)
    generator, discriminator = models.generator.to(device), models.discriminator.to(device)
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999), foreach=False)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999), foreach=False)
    start = time.time()
    for data in loader:
        reference_step(generator, discriminator, opt_g, opt_d, data["A"].to(device), data["B"].to(device))
    save_dir = Path(args.save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    for suffix in ("latest", "1"):  # save_networks("latest"), save_networks(epoch)
        torch.save(generator.state_dict(), save_dir / f"{suffix}_net_G.pth")
        torch.save(discriminator.state_dict(), save_dir / f"{suffix}_net_D.pth")
    print(f"End of epoch 1 / 1 \t Time Taken: {time.time() - start:.0f} sec")


# -- the two sides ----------------------------------------------------------------------------------------------
def timed(command: list[str], log: Path, cwd: Path | None = None, env: dict | None = None) -> float:
    """Wall seconds of one process, from its launch to its exit; its output goes to ``log``."""
    with open(log, "w") as stream:
        start = time.perf_counter()
        process = subprocess.run(command, stdout=stream, stderr=subprocess.STDOUT, cwd=cwd, env=env)
        seconds = time.perf_counter() - start
    if process.returncode:
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(f"{' '.join(command[1:5])} ... exited with {process.returncode}:\n  "
                           + "\n  ".join(tail) + f"\n  (whole output: {log})")
    return seconds


def run_ours(args: argparse.Namespace, root: Path, work: Path, name: str) -> dict[str, Any]:
    runs = work / "runs"
    command = [
        sys.executable, "-m", "pix2pix_zoo", "train", args.spec, "--data", f"folder:{root}", "--direction", "AtoB",
        "--epochs", "1", "--epochs-decay", "0", "--batch-size", "1",
        "--load-size", str(args.size * 286 // 256), "--crop-size", str(args.size), "--workers", str(args.workers),
        "--device", args.device, "--log-every", str(args.log_every), "--no-progress", "--runs", str(runs),
        "--name", name,
    ]
    seconds = timed(command, work / "logs" / f"{name}.log")
    run = runs / name
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    # The first window holds the loader's start and the warm-up; a last window shorter than
    # --log-every ends at the epoch's checkpoint: both left out of the steady figure.
    windows = [line["img_per_s"] for line in lines[1:]
               if line.get("img_per_s") and line["step"] % args.log_every == 0]
    loop = 0.0
    previous = 0
    for line in lines:
        if line.get("img_per_s"):
            loop += (line["step"] - previous) / line["img_per_s"]
        previous = line["step"]
    timings = None
    try:
        recorded = json.loads((run / "config.json").read_text()).get("timings")
        if isinstance(recorded, list) and recorded:
            timings = recorded[-1]
    except (OSError, ValueError):
        pass
    return {"seconds": seconds, "steady_img_per_s": statistics.median(windows) if windows else None,
            "windows": len(windows), "logged_loop_seconds": loop, "timings": timings}


def reference_options(directory: Path) -> str:
    return "".join(path.read_text(errors="replace") for path in (directory / "options").glob("*.py"))


def run_reference(args: argparse.Namespace, root: Path, work: Path, name: str) -> dict[str, Any]:
    env = dict(os.environ)
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # the reference picks cuda:0 whenever torch sees one
    log = work / "logs" / f"{name}.log"
    if args.reference:
        directory = Path(args.reference).resolve()
        command = [
            sys.executable, "train.py", "--dataroot", str(root), "--name", name,
            "--checkpoints_dir", str(work / "checkpoints"), "--model", "pix2pix", "--direction", "AtoB",
            "--n_epochs", "1", "--n_epochs_decay", "0", "--num_threads", str(args.reference_workers),
            "--no_html", "--save_epoch_freq", "1",
        ]
        options = reference_options(directory)
        if "--gpu_ids" in options:
            command += ["--gpu_ids", "-1" if args.device == "cpu" else "0"]
        if "--display_id" in options:
            command += ["--display_id", "0"]
        if args.reference_pythonpath:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.reference_pythonpath, env.get("PYTHONPATH")]))
        return {"seconds": timed(command, log, cwd=directory, env=env)}
    command = [
        sys.executable, __file__, "--reference-loop", str(root), "--save-dir", str(work / "checkpoints" / name),
        "--spec", args.spec, "--size", str(args.size), "--workers", str(args.reference_workers),
        "--device", args.device,
    ]
    return {"seconds": timed(command, log, env=env)}


def isolated_step(args: argparse.Namespace) -> float:
    """Images/s of benchmarks/train_step.py's tuned variant (the trainer's CPU default), in a fresh process."""
    variant = "tuned" if args.device == "cpu" else "eager"
    command = [sys.executable, str(HERE / "train_step.py"), "--spec", args.spec, "--size", str(args.size),
               "--batch", "1", "--steps", str(args.step_steps), "--device", args.device, "--variant", variant]
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"train_step.py --variant {variant} failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["images_per_s"]


# -- the report ---------------------------------------------------------------------------------------------------
def describe_timings(timings: dict | None, wall: float) -> str:
    if not timings or not isinstance(timings.get("phases"), dict):
        return ""
    phases = timings["phases"]
    order = [p for p in PHASE_ORDER if p in phases] + sorted(set(phases) - set(PHASE_ORDER))
    parts = []
    accounted = 0.0
    for phase in order:
        seconds = phases[phase].get("seconds", 0.0)
        if phase == "checkpoint_writes":  # on the writer's thread, beside the steps
            continue
        accounted += seconds
        if seconds >= 0.05:
            parts.append(f"{phase.replace('_', ' ')} {seconds:.1f}")
    parts.append(f"in no phase {wall - accounted:.1f}")
    if "checkpoint_writes" in phases:
        parts.append(f"(checkpoint write {phases['checkpoint_writes'].get('seconds', 0.0):.1f} beside)")
    return ", ".join(parts) + " s"


def summarise(images: int, rounds: list[dict]) -> dict[str, Any]:
    ours = [r["ours"]["seconds"] for r in rounds]
    theirs = [r["reference"]["seconds"] for r in rounds]
    ratios = [r["reference"]["seconds"] / r["ours"]["seconds"] for r in rounds]
    steady = [r["ours"]["steady_img_per_s"] for r in rounds if r["ours"]["steady_img_per_s"]]
    step = [r["step_img_per_s"] for r in rounds if r.get("step_img_per_s")]
    step_ratios = [r["ours"]["steady_img_per_s"] / r["step_img_per_s"] for r in rounds
                   if r["ours"]["steady_img_per_s"] and r.get("step_img_per_s")]
    return {
        "images": images,
        "ours_seconds": ours,
        "reference_seconds": theirs,
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "ratio_goal": GOALS.get(images),
        "steady_img_per_s": statistics.median(steady) if steady else None,
        "step_img_per_s": statistics.median(step) if step else None,
        "steady_to_step_median": statistics.median(step_ratios) if step_ratios else None,
        "steady_to_step": step_ratios,
        "rounds": rounds,
    }


def print_summary(summary: dict[str, Any], reference: str, say: Callable[[str], None]) -> None:
    images, ratio, goal = summary["images"], summary["ratio_median"], summary["ratio_goal"]
    rounds = len(summary["ours_seconds"])
    ranged = f" ({summary['ratio_min']:.2f}-{summary['ratio_max']:.2f})" if rounds > 1 else ""
    verdict = f"  goal >= {goal}x: {'met' if ratio >= goal else 'not met'}" if goal else ""
    say(f"{images:>6} images: ours {statistics.median(summary['ours_seconds']):.1f} s, {reference} "
        f"{statistics.median(summary['reference_seconds']):.1f} s (medians of {rounds}); "
        f"ratio {ratio:.2f}x{ranged}{verdict}")
    if summary["steady_to_step_median"] is not None:
        closeness = summary["steady_to_step_median"]
        close = summary["steady_to_step"]
        ranged = f" ({min(close):.3f}-{max(close):.3f})" if len(close) > 1 else ""
        met = "met" if abs(closeness - 1) <= STEADY_GOAL else "not met"
        say(f"{'':>14}trainer steady {summary['steady_img_per_s']:.3f} img/s, isolated step "
            f"{summary['step_img_per_s']:.3f} img/s: {closeness:.3f}{ranged}  goal within {STEADY_GOAL:.0%}: {met}")


def round_line(images: int, index: int, record: dict[str, Any]) -> str:
    ours, theirs = record["ours"], record["reference"]
    steady = f"{ours['steady_img_per_s']:.3f}" if ours["steady_img_per_s"] else "-"
    step = f"{record['step_img_per_s']:.3f}" if record["step_img_per_s"] else "-"
    loop = ours["logged_loop_seconds"]
    phases = (describe_timings(ours["timings"], ours["seconds"])
              or f"logged loop {loop:.1f} s, the rest {ours['seconds'] - loop:.1f} s")
    return (f"{images:>6} {index + 1:>5} {record['first']:>9} {ours['seconds']:>8.1f} {theirs['seconds']:>8.1f} "
            f"{theirs['seconds'] / ours['seconds']:>5.2f}x {steady:>12} {step:>10}  {phases}")


# -- main -----------------------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference",
                        help="a checkout of junyanz/pytorch-CycleGAN-and-pix2pix (else the stand-in loop)")
    parser.add_argument("--reference-pythonpath", help="put on PYTHONPATH for the reference's process only "
                                                       "(e.g. a pip --target folder holding dominate and wandb)")
    parser.add_argument("--images", type=int, nargs="+", default=[96, 24])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", default="auto", help="loader workers of both sides (auto: what zoo train picks)")
    parser.add_argument("--reference-workers", default="same", help="the reference's --num_threads (its default: 4)")
    parser.add_argument("--spec", default=DEFAULT_SPEC)
    parser.add_argument("--size", type=int, default=256, help="the crop (load size: 286/256 of it)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--log-every", type=int, default=8)
    parser.add_argument("--step-steps", type=int, default=8,
                        help="timed steps of the isolated step benchmark (0: skip it)")
    parser.add_argument("--json",
                        help="write every figure as JSON to this file ('-': stdout, the table then to stderr)")
    parser.add_argument("--keep", help="put the JPEGs, runs and logs here and keep them (default: a temporary folder)")
    parser.add_argument("--reference-loop", help=argparse.SUPPRESS)  # internal: the stand-in, on this ROOT
    parser.add_argument("--save-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_loop:
        args.workers = int(args.workers)
        reference_loop(args)
        return

    if args.reference and (args.spec != DEFAULT_SPEC or args.size != 256):
        parser.error("--reference trains the reference's pix2pix: leave --spec and --size at their defaults")
    if args.reference and not (Path(args.reference) / "train.py").is_file():
        parser.error(f"--reference {args.reference}: no train.py there")
    from pix2pix_zoo.engine.loading import loader_workers

    args.workers = loader_workers(args.workers if args.workers == "auto" else int(args.workers),
                                  "cpu" if args.device == "cpu" else "cuda")
    args.reference_workers = args.workers if args.reference_workers == "same" else int(args.reference_workers)
    out = sys.stderr if args.json == "-" else sys.stdout

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    import torch

    reference = "reference train.py" if args.reference else "reference-style loop"
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="whole-process-"))
    (work / "logs").mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "spec": args.spec, "size": args.size, "device": args.device, "torch": torch.__version__,
        "threads": torch.get_num_threads(), "cores": os.cpu_count(), "workers": args.workers,
        "reference_workers": args.reference_workers, "reference": str(args.reference) if args.reference else None,
        "by_images": [],
    }
    try:
        pool = make_pairs(work / "jpegs", max(args.images))
        say(f"{args.spec} at {args.size}, batch 1, one epoch, on {args.device} ({torch.get_num_threads()} threads), "
            f"torch {torch.__version__}; loader workers: ours {args.workers}, reference {args.reference_workers}; "
            f"against the {reference}")
        say(f"{'images':>6} {'round':>5} {'first':>9} {'ours s':>8} {'ref s':>8} {'ratio':>6} "
            f"{'steady img/s':>12} {'step img/s':>10}  where our time goes")
        for images in args.images:
            root = dataset_root(work, pool, images)
            rounds = []
            for index in range(args.rounds):
                name = f"{images}-round{index + 1}"
                sides = ["ours", "reference"] if index % 2 == 0 else ["reference", "ours"]
                record: dict[str, Any] = {"first": sides[0]}
                for side in sides:
                    if side == "ours":
                        record["ours"] = run_ours(args, root, work, f"ours-{name}")
                    else:
                        record["reference"] = run_reference(args, root, work, f"reference-{name}")
                record["step_img_per_s"] = isolated_step(args) if args.step_steps else None
                rounds.append(record)
                say(round_line(images, index, record))
            results["by_images"].append(summarise(images, rounds))
        say()
        for summary in results["by_images"]:
            print_summary(summary, reference, say)
        say("(wall seconds from launch to exit; ratio = reference / ours; figures, not pass/fail)")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        text = json.dumps(results, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
