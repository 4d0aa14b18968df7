"""``zoo benchmark NAME|PATH``: a translator's speed, memory and agreement in each format it can run in."""

from __future__ import annotations

from typing import Optional

import typer

FORMAT_NAMES = "torch, torch-channels-last, torch-bf16, torchscript, onnxruntime"


def benchmark(
    model: str = typer.Argument(..., metavar="NAME|PATH", help="A catalog name, hf://ORG/NAME[@REVISION], a model.safetensors, its folder or a run directory."),
    formats: Optional[list[str]] = typer.Option(None, "--formats", help=f"Formats to time (repeatable; default all: {FORMAT_NAMES}; torch-bf16 only where bf16 is native)."),
    size: int = typer.Option(256, "--size", min=1, max=8192, help="Image side (rounded up to the size multiple)."),
    batch: Optional[list[int]] = typer.Option(None, "--batch", min=1, max=1024, help="Batch sizes (repeatable; default 1 and 8)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, mps, auto."),
    repeats: int = typer.Option(10, "--repeats", min=1, max=10000, help="Timed calls per format and batch size (the median is shown)."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON instead of the table."),
) -> None:
    """Time a translator in eval mode in each format: file size, ms per image, images/s, peak memory,
    and the largest difference from torch fp32 on the same batch.

    The exports are made in memory as `zoo export` makes them; onnxruntime needs the onnx extra.
    """
    from pix2pix_zoo.benchmarking import benchmark_translator, rows_as_dicts
    from pix2pix_zoo.cli.output import print_json, print_table
    from pix2pix_zoo.cpu_memory import keep_freed_memory
    from pix2pix_zoo.devices import emulated_precision_note, pick_device

    picked = pick_device(device)
    emulated = emulated_precision_note(picked, "bf16")
    if emulated and formats and "torch-bf16" in formats:  # before the wait it explains
        typer.echo(f"note: {emulated}", err=True)
    keep_freed_memory()  # as zoo translate runs
    rows = benchmark_translator(model, formats=formats or None, size=size, batches=batch or (1, 8),
                                device=picked, repeats=repeats)
    if emulated and not formats:  # native_formats left it out
        typer.echo(f"note: torch-bf16 left out: {emulated} (--formats torch-bf16 times it anyway)", err=True)
    if as_json:
        print_json(rows_as_dicts(rows))
        return
    print_table(f"{model}, {size} x {size}, eval mode, on {picked}",
                ["format", "batch", "MiB", "ms/img", "img/s", "peak MiB", "max diff"],
                [[row.format, str(row.batch), f"{row.file_mib:.1f}", f"{row.ms_per_image:.1f}",
                  f"{row.images_per_s:.2f}", f"{row.peak_mib:.0f}", f"{row.max_difference:.2g}"] for row in rows])
