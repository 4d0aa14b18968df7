"""``zoo compare RUN|SWEEP|TRANSLATOR...``: runs and translators side by side, the best of each column
marked; ``--html`` writes the comparison page."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from pix2pix_zoo.cli.output import print_json, print_table
from pix2pix_zoo.cli.train import data_options

# The terminal table keeps to what fits 80 columns; --markdown, --json and --html have every column.
TERMINAL_COLUMNS = ("spec", "RF", "steps", "img/s", "L1", "PSNR (dB)", "SSIM", "LPIPS", "FID", "KID")


def compare(
    names: list[str] = typer.Argument(..., metavar="RUN|SWEEP|TRANSLATOR...", help="Run directories, sweep folders (every run in them), catalog names, hf://ORG/NAME or translator files (with --data)."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Evaluate every row afresh on this dataset's split (needed for translators); default: each run's own held-out figures.", rich_help_panel="Evaluation"),
    data_opt: list[str] = typer.Option([], "--data-opt", help="Dataset option KEY=VALUE (repeatable), e.g. size=128.", rich_help_panel="Evaluation"),
    split: str = typer.Option("test", "--split", help="The split --data is evaluated on.", rich_help_panel="Evaluation"),
    size: Optional[int] = typer.Option(None, "--size", min=1, help="Resize --data's pairs to SIZE x SIZE (default: as they are).", rich_help_panel="Evaluation"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, mps.", rich_help_panel="Evaluation"),
    backend: str = typer.Option("auto", "--backend", help="torch, or onnxruntime (ONNX files always; weights files exported in memory in their mode); auto: by the file.", rich_help_panel="Evaluation"),
    lpips_weights: Optional[Path] = typer.Option(None, "--lpips-weights", help="LPIPS weights (AlexNet and linear heads) for an LPIPS column.", rich_help_panel="Evaluation"),
    inception_weights: Optional[Path] = typer.Option(None, "--inception-weights", help="Inception-v3 weights for FID and KID columns.", rich_help_panel="Evaluation"),
    html: Optional[Path] = typer.Option(None, "--html", help="Write the comparison page here: samples side by side, the table, the loss curves.", rich_help_panel="Output"),
    samples: int = typer.Option(4, "--samples", min=1, max=64, help="Held-out inputs in the page's figure.", rich_help_panel="Output"),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON.", rich_help_panel="Output"),
    markdown: bool = typer.Option(False, "--markdown", help="Print a Markdown table (for a README or a report).", rich_help_panel="Output"),
) -> None:
    """Compare runs and translators: spec, parameters, receptive field, steps, time, images/s, held-out
    L1/PSNR/SSIM (LPIPS, FID/KID with their weights) and the baselines."""
    from pix2pix_zoo.cpu_memory import keep_freed_memory
    from pix2pix_zoo.evaluation import check_output_file
    from pix2pix_zoo.experiments.compare import EvaluationSetting, compare, comparison_table

    if html is not None:
        check_output_file(html)
    setting = EvaluationSetting(data=data, split=split, data_options=data_options(data_opt), size=size,
                                device=device, lpips_weights=lpips_weights, inception_weights=inception_weights,
                                backend=backend)
    keep_freed_memory()  # the process is ours (see its docstring)
    rows, notes = compare(names, setting)
    if html is not None:
        from pix2pix_zoo.experiments.compare_page import write_compare_page

        notes += write_compare_page(html, rows, notes, setting, samples)
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    if html is not None:
        typer.echo(f"wrote {html}", err=True)
    if as_json:
        print_json([row.as_dict() for row in rows])
        return
    if markdown:
        header, table = comparison_table(rows)
        typer.echo("| " + " | ".join(header) + " |")
        typer.echo("|" + "---|" * len(header))
        for cells in table:
            typer.echo("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        return
    header, table = comparison_table(rows, ("", "*"))
    keep = [i for i, column in enumerate(header) if column in TERMINAL_COLUMNS]
    print_table("compared (* best of its group; --markdown for every column)", [header[i] for i in keep],
                [[cells[i] for i in keep] for cells in table], wrap=("spec",))
