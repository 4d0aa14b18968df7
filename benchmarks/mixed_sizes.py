"""What a folder of photos of several sizes costs a run, against photos of one size: `zoo train` itself.

    python benchmarks/mixed_sizes.py [--spec unet_256+patch70+l1cgan] [--batch 4] [--steps 160]
                                     [--crop 256] [--device cuda] [--workers 2] [--rounds 1]

It writes two folders of side-by-side AB JPEGs (smooth random colours, one per layout): ``one`` holds
photos of 1024x512 only, ``mixed`` cycles through 512x256, 600x400, 1024x512 and 700x350, so every
batch of the mixed folder holds several sizes, which the loader groups by size and the device
resizes one size at a time. Each layout is trained by the real ``zoo train`` in a subprocess
(default preprocessing, resize_and_crop to --crop), alternating per round, and the script prints
the whole process's wall time and the median of the logged images/s in the loop (the windows that
hold an epoch's checkpoint included in the median's sample). Figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

LAYOUTS = {"one": [(1024, 512)], "mixed": [(512, 256), (600, 400), (1024, 512), (700, 350)]}


def make_folder(root: Path, sizes: list[tuple[int, int]], train: int, test: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("test", test)):
        (root / split).mkdir(parents=True)
        for index in range(count):
            width, height = sizes[index % len(sizes)]
            coarse = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
            Image.fromarray(coarse).resize((width, height), Image.BICUBIC).save(root / split / f"{index}.jpg", quality=90)
    return root


def train(args: argparse.Namespace, data: Path, runs: Path, name: str) -> tuple[float, float]:
    """(whole-process seconds, median logged images/s) of one `zoo train`."""
    command = [
        sys.executable, "-m", "pix2pix_zoo", "train", args.spec, "--data", f"folder:{data}",
        "--batch-size", str(args.batch), "--max-steps", str(args.steps), "--log-every", str(args.log_every),
        "--sample-every", "100000", "--crop-size", str(args.crop), "--load-size", str(args.crop * 286 // 256),
        "--device", args.device, "--workers", str(args.workers), "--no-progress", "--runs", str(runs), "--name", name,
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    lines = [json.loads(line) for line in (runs / name / "metrics.jsonl").read_text().splitlines()]
    speeds = [line["img_per_s"] for line in lines[1:] if line.get("img_per_s")]  # the first window warms up
    return seconds, statistics.median(speeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="unet_256+patch70+l1cgan")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=160)
    parser.add_argument("--log-every", type=int, default=20)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--train", type=int, default=160, help="training photos per layout")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        folders = {layout: make_folder(root / layout, sizes, args.train, 8) for layout, sizes in LAYOUTS.items()}
        figures: dict[str, list[tuple[float, float]]] = {layout: [] for layout in LAYOUTS}
        for round_ in range(args.rounds):
            for layout, folder in folders.items():
                figures[layout].append(train(args, folder, root / "runs", f"{layout}-{round_}"))
                seconds, speed = figures[layout][-1]
                print(f"round {round_ + 1} {layout:5}: whole process {seconds:6.1f} s, loop {speed:7.1f} img/s", flush=True)
    one, mixed = (statistics.median(speed for _, speed in figures[layout]) for layout in ("one", "mixed"))
    print(f"{args.spec}, batch {args.batch}, {args.device}: mixed sizes at {mixed / one:.2f}x the loop speed of one size")


if __name__ == "__main__":
    main()
