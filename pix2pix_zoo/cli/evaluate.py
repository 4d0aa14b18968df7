"""``zoo eval NAME|PATH --data DATASET``: a translator's L1, PSNR and SSIM (and LPIPS, FID/KID) on a split."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from pix2pix_zoo.cli.output import note_emulated_precision, print_evaluation, print_json
from pix2pix_zoo.cli.train import data_options


def evaluate(
    model: str = typer.Argument(..., metavar="NAME|PATH", help="A catalog name, hf://ORG/NAME[@REVISION], a model.safetensors, its folder, a run directory or a .onnx export."),
    data: str = typer.Option(..., "--data", "-d", help="Dataset name or SCHEME:PATH, e.g. facades, folder:./pairs."),
    data_opt: list[str] = typer.Option([], "--data-opt", help="Dataset option KEY=VALUE (repeatable), e.g. size=128."),
    split: str = typer.Option("test", "--split", help="The split to evaluate on."),
    mode: Optional[str] = typer.Option(None, "--mode", help="eval, or paper (batch statistics, dropout); default: the card's."),
    seed: int = typer.Option(0, "--seed", help="Seed for paper mode's dropout."),
    size: Optional[int] = typer.Option(None, "--size", min=1, help="Resize pairs to SIZE x SIZE (default: as they are)."),
    batch_size: int = typer.Option(1, "--batch-size", "-b", min=1, help="Pairs per batch (paper mode: per batch statistics)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, mps."),
    backend: str = typer.Option("auto", "--backend", help="torch, or onnxruntime (ONNX files always; a weights file is exported in memory in the mode run); auto: by the file."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, or bf16 / fp16 (autocast: faster where the hardware has them, outputs a few levels apart)."),
    inception_weights: Optional[Path] = typer.Option(
        None, "--inception-weights", help="Inception-v3 weights (safetensors or a weights-only .pth) for FID and KID."
    ),
    lpips_weights: Optional[Path] = typer.Option(
        None, "--lpips-weights",
        help="LPIPS heads, with or without AlexNet (safetensors or a weights-only .pth); default: torchvision's cached "
             "AlexNet and the heads of an installed lpips package.",
    ),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Also write the JSON (means and every pair) here."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON (means and every pair) instead of the table."),
) -> None:
    """Score a translator on a dataset split: per-pair L1, PSNR, SSIM and their means.

    LPIPS (AlexNet, v0.1) is added where its weights are found (--lpips-weights, or torchvision's cache
    and the lpips package), else left out with a note; FID and KID are added with --inception-weights.
    All three depend on those exact weights, so compare them only with figures from the same files.
    """
    from pix2pix_zoo.atomic import write_json_atomic
    from pix2pix_zoo.cpu_memory import keep_freed_memory
    from pix2pix_zoo.evaluation import check_output_file
    from pix2pix_zoo.evaluation import evaluate as evaluate_translator
    from pix2pix_zoo.translator import Translator

    if output is not None:
        check_output_file(output)
    keep_freed_memory()  # the process is ours (see its docstring)
    translator = Translator.from_pretrained(model, device=device, mode=mode, seed=seed, backend=backend,
                                            precision=precision)
    note_emulated_precision(translator.device, precision)
    evaluation = evaluate_translator(
        translator, data, split, data_options=data_options(data_opt), batch_size=batch_size, size=size,
        inception_weights=inception_weights, lpips_weights=lpips_weights,
    )
    for note in evaluation.notes:
        typer.echo(f"note: {note}", err=True)
    evaluation.setting = {"model": model, **evaluation.setting}
    if output is not None:
        write_json_atomic(output, evaluation.to_dict())
        typer.echo(f"wrote {output}", err=True)
    if as_json:
        print_json(evaluation.to_dict())
    else:
        print_evaluation(evaluation.summary(), f"{data} {split} split, {translator.mode} mode")
