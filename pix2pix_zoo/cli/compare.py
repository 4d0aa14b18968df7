"""``zoo compare RUN|SWEEP...``: runs side by side, the best of each column marked."""

from __future__ import annotations

from pathlib import Path

import typer

from pix2pix_zoo.cli.output import print_json, print_table


def compare(
    runs: list[Path] = typer.Argument(..., metavar="RUN|SWEEP...", help="Run directories, or sweep folders (every run in them)."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
    markdown: bool = typer.Option(False, "--markdown", help="Print a Markdown table (for a README or a report)."),
) -> None:
    """Compare runs: spec, parameters, receptive field, steps, time, images/s, held-out L1/PSNR/SSIM."""
    from pix2pix_zoo.experiments.compare import compare_runs

    rows, notes = compare_runs(runs)
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    if as_json:
        print_json([row.as_dict() for row in rows])
        return
    if markdown:
        header = ["spec", "G params", "D params", "RF", "steps", "time", "img/s", "L1", "PSNR (dB)", "SSIM",
                  "L1 of the mean target"]
        typer.echo("| " + " | ".join(header) + " |")
        typer.echo("|" + "---|" * len(header))
        for row in rows:
            typer.echo("| " + " | ".join(cell.replace("|", "\\|") for cell in _cells(row, "**")) + " |")
        return
    # The terminal table keeps to what fits 80 columns; --markdown and --json have every column.
    header = ["spec", "RF", "steps", "img/s", "L1", "PSNR", "SSIM"]
    table = [[cells[0], cells[3], cells[4], cells[6], *cells[7:10]] for cells in (_cells(row, "*") for row in rows)]
    print_table("runs (* best of its group; --markdown for every column)", header, table, wrap=("spec",))


def _cells(row, bold: str) -> list[str]:
    def figure(column: str, form: str) -> str:
        value = row.translator.get(column)
        if value is None:
            return ""
        text = form.format(value)
        if column not in row.best:
            return text
        return f"{bold}{text}{bold}" if bold == "**" else f"{text}{bold}"

    def count(value: int | None) -> str:
        if value is None:
            return ""
        return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.1f}k" if value >= 1e3 else str(value)

    mean_target = row.baselines.get("mean training target", {}).get("l1")
    return [
        row.spec, count(row.generator_parameters), count(row.discriminator_parameters),
        "" if row.receptive_field is None else str(row.receptive_field), str(row.steps),
        "" if row.wall_seconds is None else f"{row.wall_seconds:.0f} s",
        "" if row.images_per_second is None else f"{row.images_per_second:.1f}",
        figure("l1", "{:.4f}"), figure("psnr", "{:.2f}"), figure("ssim", "{:.4f}"),
        "" if mean_target is None else f"{mean_target:.4f}",
    ]
