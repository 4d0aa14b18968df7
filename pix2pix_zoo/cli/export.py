"""``zoo export NAME|PATH|RUN --format onnx|torchscript``: a translator as a file that runs without the zoo."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def export(
    model: str = typer.Argument(..., metavar="NAME|PATH|RUN", help="A catalog name, hf://ORG/NAME[@REVISION], a model.safetensors, its folder or a run directory."),
    export_format: str = typer.Option(..., "--format", "-f", help="onnx or torchscript."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="The file to write (default: beside the weights, model.onnx or model.pt)."),
    mode: str = typer.Option("eval", "--mode", help="eval (running statistics, batch norm folded), or paper (batch statistics and dropout, random)."),
    opset: Optional[int] = typer.Option(None, "--opset", min=7, max=30, help="ONNX opset (default 18)."),
    half: bool = typer.Option(False, "--half", help="fp16 weights, inputs and outputs (for GPU runtimes)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
) -> None:
    """Export a translator's generator to ONNX or TorchScript, its card inside; print the file written.

    The export takes a batch of images in [-1, 1] (NCHW) of any batch size and any height and width
    that are multiples of the card's size multiple, and returns the translated batch.
    """
    from pix2pix_zoo.errors import ZooError
    from pix2pix_zoo.export import FORMATS, SUFFIXES, export_generator
    from pix2pix_zoo.translator import load_generator, locate, read_card

    if export_format not in FORMATS:
        raise ZooError(f"--format {export_format!r} is not one of: {', '.join(FORMATS)}")
    path = locate(model)
    if path.suffix.lower() != ".safetensors":
        raise ZooError(f"{str(path)!r} is not a translator weights file (model.safetensors): export from the weights")
    target = output if output is not None else path.with_name(f"model{SUFFIXES[export_format]}")
    if target.is_dir():
        raise ZooError(f"--output {str(target)!r} is a folder: name the file to write")
    if target.exists() and not overwrite:
        raise ZooError(f"{str(target)!r} exists: pass --overwrite to replace it")
    if target.resolve() == path.resolve():
        raise ZooError(f"--output {str(target)!r} would replace the translator it exports")
    card = read_card(path)
    written = export_generator(load_generator(path, card), card, target, export_format, mode=mode, opset=opset, half=half)
    typer.echo(str(written))
