"""Inference speed: the whole `zoo translate` process against the reference's own test.py, and one forward pass by format.

    python benchmarks/inference_speed.py [--reference DIR] [--reference-pythonpath DIRS]
                                         [--images 48] [--rounds 2] [--size 256] [--spec unet_256]
                                         [--device cpu] [--json FILE|-] [--keep DIR]

Two parts, in one run:

* **Forward passes** (in this process): the spec's generator (default widths) on one random
  ``--size`` image, batch 1, through :func:`pix2pix_zoo.benchmarking.benchmark_translator` (torch fp32
  eval, channels-last, bf16 autocast where the device multiplies in bf16, TorchScript, onnxruntime;
  all in eval mode) and, beside them, the same generator in train mode under ``torch.inference_mode``
  (paper mode's batch statistics and dropout, what the reference's test.py runs by default), with
  torch's kernels and, on a CPU, as ``zoo translate`` runs it.
* **Whole processes**, alternated for ``--rounds`` rounds on the same JPEGs (``--images`` synthfacades
  label maps, ``--size`` square, quality 95) and the same weights (a fixed-seed generator, saved as a
  translator file for the zoo and as ``latest_net_G.pth`` for the reference):
  - the reference, with ``--reference DIR`` (a checkout of junyanz/pytorch-CycleGAN-and-pix2pix):
    ``python test.py --dataroot IMAGES --name bench --model test --netG NET --ngf N --norm batch
    --dataset_mode single --num_test N`` run in DIR, everything else at its defaults: batch 1,
    train-mode inference (no ``--eval``), its results HTML page. Its ``util/visualizer.py`` imports
    ``wandb`` and ``dominate``: install them or name a folder holding them with
    ``--reference-pythonpath`` (as for benchmarks/whole_process.py). Without ``--reference`` this
    part only times ours.
  - ``zoo translate --mode paper`` (batch 1, fp32: what the reference computes), from the weights
    file and from the paper-mode ONNX file ``zoo export --mode paper`` writes (exported once, before
    the rounds; ``zoo translate`` runs it without importing torch);
  - ``zoo translate --mode eval --batch-size 8``, the same with ``--precision bf16`` (left out where
    bf16 is emulated: :func:`pix2pix_zoo.devices.emulated_precision_note`), with
    ``--backend onnxruntime`` (exported in memory), and on the eval-mode ONNX file at batch 8 and 1.
  The ratios are the reference's wall time over each of ours, per round; the goals of issue 15 are
  printed beside them: paper mode >= 2x, the best eval-mode process >= 3x. Figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _whole_process_module():
    """benchmarks/whole_process.py, imported by path (benchmarks/ is no package): its ``timed``."""
    spec = importlib.util.spec_from_file_location("whole_process_benchmark", HERE / "whole_process.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_images(folder: Path, count: int, size: int) -> None:
    """``count`` synthfacades label maps as ``size`` x ``size`` JPEGs in ``folder``."""
    from PIL import Image

    from pix2pix_zoo.data import open_dataset

    folder.mkdir(parents=True, exist_ok=True)
    dataset = open_dataset("synthfacades", "test", size=size)
    for index in range(count):
        item = dataset[index % len(dataset)]
        Image.fromarray(item["a"].permute(1, 2, 0).numpy()).save(folder / f"{index:05d}.jpg", quality=95)


def make_weights(work: Path, spec: str) -> tuple[Path, list[str]]:
    """A fixed-seed generator saved for both sides; the translator file's path, and the reference's
    options that build the same generator (``--netG``, ``--ngf``)."""
    import torch

    from pix2pix_zoo.spec import resolve
    from pix2pix_zoo.translator import Card, save_translator

    torch.manual_seed(0)
    models = resolve(f"{spec}+l1").build(3, 3)
    card = Card(spec=str(models.spec), in_channels=3, out_channels=3, size_multiple=models.generator.size_multiple)
    reference = work / "checkpoints" / "bench"
    reference.mkdir(parents=True, exist_ok=True)
    torch.save(models.generator.state_dict(), reference / "latest_net_G.pth")  # the reference reads only this
    generator = models.spec.generator
    options = ["--netG", generator.name, "--ngf", str(generator.kwargs().get("ngf", 64))]
    return save_translator(work / "translator", models.generator, card), options


def export_once(weights: Path, target: Path, mode: str) -> Path:
    """The weights exported to ONNX in ``mode``, as ``zoo export`` writes them (made once, untimed)."""
    from pix2pix_zoo.export import export_generator
    from pix2pix_zoo.translator import load_generator, read_card

    card = read_card(weights)
    return export_generator(load_generator(weights, card), card, target, "onnx", mode=mode)


def forward_passes(weights: Path, size: int, device: str) -> list[dict[str, Any]]:
    import torch

    from pix2pix_zoo.benchmarking import benchmark_translator, median_call_seconds, rows_as_dicts
    from pix2pix_zoo.cpu_kernels import use_native_kernels_where_faster
    from pix2pix_zoo.translator import load_generator, read_card

    rows = rows_as_dicts(benchmark_translator(weights, size=size, batches=(1,), device=device, repeats=10))
    generator = load_generator(weights, read_card(weights)).to(device).train()
    image = torch.rand(1, 3, size, size, device=torch.device(device)) * 2 - 1
    seconds, _ = median_call_seconds(generator, image, torch.device(device), repeats=10, warmup=2)
    rows.append({"format": "train mode, torch's kernels", "batch": 1, "ms_per_image": round(seconds * 1000, 3)})
    if device == "cpu":  # as zoo translate --mode paper runs it
        use_native_kernels_where_faster(generator)
        seconds, _ = median_call_seconds(generator, image, torch.device(device), repeats=10, warmup=2)
        rows.append({"format": "train mode (paper)", "batch": 1, "ms_per_image": round(seconds * 1000, 3)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", help="a checkout of junyanz/pytorch-CycleGAN-and-pix2pix (else ours only)")
    parser.add_argument("--reference-pythonpath", help="put on PYTHONPATH for the reference's process only")
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--spec", default="unet_256", help="the generator (default widths unless given)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", help="write every figure as JSON to this file ('-': stdout)")
    parser.add_argument("--keep", help="keep the images, weights, outputs and logs here")
    args = parser.parse_args()
    timed = _whole_process_module().timed

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="inference-speed-"))
    (work / "logs").mkdir(parents=True, exist_ok=True)
    images = work / "images"
    make_images(images, args.images, args.size)
    weights, reference_network = make_weights(work, args.spec)
    report = sys.stderr if args.json == "-" else sys.stdout
    forward = forward_passes(weights, args.size, args.device)
    print(f"{args.spec} at {args.size}x{args.size}, batch 1, one forward pass, on {args.device}:", file=report)
    for row in forward:
        print(f"  {row['format']:26s} {row['ms_per_image']:8.1f} ms", file=report)

    onnx_files = {mode: export_once(weights, work / f"model-{mode}.onnx", mode) for mode in ("eval", "paper")}
    eval_b8 = ["--mode", "eval", "--batch-size", "8"]

    def translate(model: Path, *options: str) -> list[str]:
        return [sys.executable, "-m", "pix2pix_zoo", "translate", str(model), str(images), "--device", args.device,
                "--no-progress", *options]

    sides = {
        "zoo paper b1": translate(weights, "--mode", "paper"),
        "zoo paper b1 .onnx file": translate(onnx_files["paper"]),
        "zoo eval b8": translate(weights, *eval_b8),
        "zoo eval b8 bf16": translate(weights, *eval_b8, "--precision", "bf16"),
        "zoo eval b8 onnxruntime": translate(weights, *eval_b8, "--backend", "onnxruntime"),
        "zoo eval b8 .onnx file": translate(onnx_files["eval"], "--batch-size", "8"),
        "zoo eval b1 .onnx file": translate(onnx_files["eval"]),
    }
    import torch

    from pix2pix_zoo.devices import emulated_precision_note

    if note := emulated_precision_note(torch.device(args.device), "bf16"):
        del sides["zoo eval b8 bf16"]  # minutes a round, and no user's choice there
        print(f"zoo eval b8 bf16 left out: {note}", file=report)
    env = dict(os.environ)
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # the reference picks cuda:0 whenever torch sees one
    reference_env = dict(env)
    if args.reference_pythonpath:
        reference_env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.reference_pythonpath, env.get("PYTHONPATH")]))
    seconds: dict[str, list[float]] = {name: [] for name in (["reference test.py"] if args.reference else []) + list(sides)}
    for round_number in range(1, args.rounds + 1):
        order = list(seconds) if round_number % 2 else list(reversed(seconds))
        for name in order:
            log = work / "logs" / f"{name.replace(' ', '-')}-{round_number}.log"
            if name == "reference test.py":
                command = [sys.executable, "test.py", "--dataroot", str(images), "--name", "bench", "--model", "test",
                           *reference_network, "--norm", "batch", "--dataset_mode", "single",
                           "--num_test", str(args.images), "--checkpoints_dir", str(work / "checkpoints"),
                           "--results_dir", str(work / f"reference-results-{round_number}")]
                seconds[name].append(timed(command, log, cwd=Path(args.reference).resolve(), env=reference_env))
            else:
                output = work / f"{name.replace(' ', '-')}-{round_number}"
                seconds[name].append(timed([*sides[name], "-o", str(output)], log, env=env))
        print(f"round {round_number}: " + ", ".join(f"{name} {values[-1]:.1f} s" for name, values in seconds.items()),
              file=report)
    figures: dict[str, Any] = {"forward": forward, "seconds": seconds, "images": args.images, "size": args.size}
    if args.reference:
        ratios = {name: [ref / ours for ref, ours in zip(seconds["reference test.py"], values)]
                  for name, values in seconds.items() if name != "reference test.py"}
        figures["ratios"] = ratios
        best_eval, best_name = max((statistics.median(ratios[name]), name) for name in ratios if "eval" in name)
        paper, paper_name = max((statistics.median(ratios[name]), name) for name in ratios if "paper" in name)
        print(f"{args.images} images:", file=report)
        for name, values in ratios.items():
            print(f"  {name:24s} {statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f})", file=report)
        print(f"  best paper mode ({paper_name}) {paper:.2f}x, goal >= 2x: {'met' if paper >= 2 else 'not met'}; "
              f"best eval mode ({best_name}) {best_eval:.2f}x, goal >= 3x: {'met' if best_eval >= 3 else 'not met'}",
              file=report)
    print("(wall seconds from launch to exit; ratio = reference / ours; figures, not pass/fail)", file=report)
    if args.json:
        text = json.dumps(figures, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
