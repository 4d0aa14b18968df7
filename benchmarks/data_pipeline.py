"""Throughput of the data pipeline: synthfacades generation and paired augmentation.

    python benchmarks/data_pipeline.py [--size 256] [--batch 16] [--device cuda]

Prints milliseconds per pair generated (one loader worker's share of the work) and per batch
augmented on the device. Figures, not pass/fail: compare them with a training step's time.
"""

from __future__ import annotations

import argparse
import time

import torch

from pix2pix_zoo.data.augment import PairedAugment, collate_pairs
from pix2pix_zoo_datasets.synthfacades import synthfacades


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    dataset = synthfacades(None, "train", size=args.size)
    dataset[0]  # warm caches
    start = time.perf_counter()
    items = [dataset[index % len(dataset)] for index in range(args.pairs)]
    per_pair = (time.perf_counter() - start) / args.pairs
    print(f"synthfacades {args.size}x{args.size}: {per_pair * 1000:.2f} ms per pair in one process")

    device = torch.device(args.device)
    batch = collate_pairs(items[: args.batch])
    a, b = batch["a"].to(device), batch["b"].to(device)
    generator = torch.Generator(device).manual_seed(0)
    augment = PairedAugment("resize_and_crop", load_size=args.size * 286 // 256, crop_size=args.size)
    for _ in range(3):
        augment(a, b, generator)  # warm up kernels
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    repeats = 20
    for _ in range(repeats):
        augment(a, b, generator)
    if device.type == "cuda":
        torch.cuda.synchronize()
    per_batch = (time.perf_counter() - start) / repeats
    print(f"PairedAugment resize_and_crop, batch {len(a)} on {device}: {per_batch * 1000:.2f} ms per batch")


if __name__ == "__main__":
    main()
