"""``zoo translate NAME|PATH INPUT... -o OUT``: run a translator over image files, folders and globs."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any, Optional

import typer

from pix2pix_zoo.errors import BadImageError, DataError, ZooError

_GLOB_CHARACTERS = frozenset("*?[")


def gather_inputs(arguments: list[str]) -> list[tuple[Path, Path]]:
    """(image file, output name) for every input: a file keeps its name, a folder's images (found
    recursively) and a glob's matches keep their paths below the folder or the glob's fixed part."""
    from pix2pix_zoo.data.images import is_image_file, list_images

    found: list[tuple[Path, Path]] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found += [(image, image.relative_to(path)) for image in list_images(path)]
        elif path.is_file():
            found.append((path, Path(path.name)))
        elif _GLOB_CHARACTERS & set(argument):
            base = Path()
            for part in path.parts:
                if _GLOB_CHARACTERS & set(part):
                    break
                base /= part
            matches = sorted(Path(match) for match in glob.glob(argument, recursive=True))
            found += [(match, match.relative_to(base)) for match in matches if match.is_file() and is_image_file(match)]
        else:
            raise DataError(f"no such file, folder or glob match: {argument!r}")
    if not found:
        raise DataError(f"no image files in {' '.join(arguments)}")
    outputs: dict[Path, Path] = {}
    for image, name in found:
        target = name.with_suffix(".png")
        if outputs.setdefault(target, image) != image:
            raise DataError(f"{str(outputs[target])!r} and {str(image)!r} would both be written as {str(target)!r}")
    return [(image, name.with_suffix(".png")) for image, name in found]


def check_output_folder(output: Path, jobs: list[tuple[Path, Path]]) -> None:
    """Refuse, before anything is written, an --output that is not a folder or that would replace
    an input (compared as resolved paths, so ``in/../in`` and symlinks are caught too)."""
    from pix2pix_zoo.home import nearest_existing

    existing = nearest_existing(output)
    if not existing.is_dir():
        raise DataError(f"--output {str(output)!r} must be a folder, but {str(existing)!r} is a file")
    for source, name in jobs:
        target = output / name
        if target.resolve() == source.resolve() or (target.exists() and target.samefile(source)):
            raise DataError(f"--output {str(output)!r} would replace the input {str(source)!r}: choose another folder")


def translate(
    model: str = typer.Argument(..., metavar="NAME|PATH", help="A catalog name, hf://ORG/NAME[@REVISION], a model.safetensors, its folder, a run directory or a .onnx export."),
    inputs: list[str] = typer.Argument(..., metavar="INPUT...", help="Image files, folders (searched recursively) or globs."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the outputs (PNG, keeping relative names)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, mps."),
    backend: str = typer.Option("auto", "--backend", help="torch, or onnxruntime (ONNX files always; a weights file is exported in memory in the mode run); auto: by the file."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, or bf16 / fp16 (autocast: faster where the hardware has them, outputs a few levels apart)."),
    mode: Optional[str] = typer.Option(None, "--mode", help="eval, or paper (batch statistics, dropout); default: the card's."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for paper mode's dropout: repeatable output."),
    batch_size: int = typer.Option(1, "--batch-size", "-b", min=1, help="Images of the same size run together."),
    side_by_side: bool = typer.Option(False, "--side-by-side", help="Write input | output sheets."),
    tile: int = typer.Option(1024, "--tile", min=0, help="Translate larger images in overlapping tiles of this side (0: never)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar."),
) -> None:
    """Translate images of any size; print the files written.

    Unreadable images are named on stderr and skipped, and the exit code is then 1 (a lone
    unreadable input is the one error line).
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from pix2pix_zoo.cpu_memory import keep_freed_memory
    from pix2pix_zoo.onnx_translator import OnnxTranslator

    jobs = gather_inputs(inputs)
    check_output_folder(output, jobs)
    keep_freed_memory()  # the process is ours (see its docstring)
    translator: Any = None
    if OnnxTranslator.runs(Path(model), backend=backend, device=device, precision=precision, side_by_side=side_by_side):
        translator = OnnxTranslator.from_file(Path(model), mode=mode, seed=seed, tile=tile or None)  # no torch
    if translator is None:
        from pix2pix_zoo.cli.output import note_emulated_precision
        from pix2pix_zoo.translator import Translator

        translator = Translator.from_pretrained(model, device=device, mode=mode, seed=seed, tile=tile or None,
                                                backend=backend, precision=precision)
        note_emulated_precision(translator.device, precision)
    errors = Console(stderr=True)
    written: list[Path] = []
    with Progress(
        TextColumn("translating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=errors, disable=not progress,
    ) as bar:
        task = bar.add_task("translate", total=len(jobs))
        for _, result in translator.translate_files(jobs, output, batch_size=batch_size, side_by_side=side_by_side):
            if isinstance(result, BadImageError):
                if len(jobs) == 1:  # the one input: its error is the command's
                    raise result
                bar.console.print(f"error: {result}", markup=False, highlight=False, soft_wrap=True)  # one line, however long
            else:
                written.append(result)
            bar.advance(task)
    for path in written:
        typer.echo(str(path))
    if len(written) < len(jobs):
        raise ZooError(f"{len(jobs) - len(written)} of {len(jobs)} images could not be read; "
                       f"the other {len(written)} were translated")
