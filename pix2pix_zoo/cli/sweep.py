"""``zoo sweep GRID --data NAME [every zoo train option]``: many ordinary runs from one grid or file."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Any, Optional

import typer

from pix2pix_zoo.cli import train as train_command
from pix2pix_zoo.cli.output import print_json, print_table
from pix2pix_zoo.errors import SpecError, ZooError

# zoo train's options that are not a sweep's: each run has its own spec and folder, and a sweep
# resumes and skips by itself.
NOT_FOR_SWEEPS = ("ctx", "spec", "name", "resume", "overwrite", "as_json")


def sweep(
    ctx: typer.Context,
    grid: Optional[str] = typer.Argument(None, metavar="GRID", help="A spec with {a,b} alternatives, e.g. 'unet+{patch16,patch70}+l1cgan'."),
    sweep_file: Optional[Path] = typer.Option(None, "--sweep", help="A TOML file listing the runs, instead of a GRID.", rich_help_panel="Sweep"),
    recipe: Optional[str] = typer.Option(None, "--recipe", help="A named sweep, e.g. paper-objectives (--list-recipes); typed options override its settings.", rich_help_panel="Sweep"),
    list_recipes: bool = typer.Option(False, "--list-recipes", help="List the recipes (shipped and plugins') and exit.", rich_help_panel="Sweep"),
    name: Optional[str] = typer.Option(None, "--name", help="The sweep's folder under --runs (default: from the grid or the file).", rich_help_panel="Sweep"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the runs and write nothing.", rich_help_panel="Sweep"),
    shard: Optional[str] = typer.Option(None, "--shard", help="K/N: run the K-th of N shares (a scheduler's array job).", rich_help_panel="Sweep"),
    devices: Optional[str] = typer.Option(None, "--devices", help="Comma-separated devices, one run on each at once, e.g. cuda:0,cuda:1.", rich_help_panel="Sweep"),
    as_json: bool = typer.Option(False, "--json", help="Print the runs (and their held-out figures) as JSON."),
    **options: Any,
) -> None:
    """Train every run of a grid or sweep file; finished runs are skipped, interrupted ones resumed."""
    from pix2pix_zoo.experiments.recipes import find_recipe
    from pix2pix_zoo.experiments.sweep import (
        check_sweep,
        file_sweep,
        grid_sweep,
        parse_shard,
        run_sweep,
        shard_of,
        text_sweep,
        write_manifest,
    )

    if list_recipes:
        _print_recipes(as_json)
        return
    if sum(source is not None for source in (grid, sweep_file, recipe)) != 1:
        raise SpecError("give one of a GRID (e.g. 'unet+{patch16,patch70}+l1cgan'), --sweep FILE or --recipe NAME")
    settings = {key: value for key, value in options.items() if key in train_command.SETTING_OF_OPTION}
    base = train_command.config_from_options(spec=train_command.DEFAULTS.spec, **settings)
    typed = train_command.typed_settings(ctx, base)
    if grid is not None:
        plan = grid_sweep(grid, base, name)
    elif sweep_file is not None:
        plan = file_sweep(sweep_file, base, name, overrides=typed)
    else:
        found = find_recipe(recipe)
        plan = text_sweep(found.text, f"recipe {found.name}", found.name, base, name, overrides=typed)
    chosen = shard_of(plan.runs, parse_shard(shard) if shard else None)
    device_list = [d.strip() for d in devices.split(",") if d.strip()] if devices else None
    if devices is not None and not device_list:
        raise SpecError("--devices must name at least one device, e.g. cuda:0,cuda:1")
    runs_dir: Path = options["runs"]
    if dry_run:
        rows = [{**run.record(), "folder": str(plan.folder(runs_dir) / run.name)} for run in chosen]
        if as_json:
            print_json({"sweep": plan.name, "runs": rows})
        else:
            print_table(f"{len(rows)} of {len(plan.runs)} runs, in {plan.folder(runs_dir)}/", ["spec", "run folder"],
                        [[row["spec"], row["name"]] for row in rows], wrap=("spec", "run folder"))
        return
    check_sweep(plan, runs_dir, device_list)
    manifest = write_manifest(plan, runs_dir)
    typer.echo(f"sweep {plan.name}: {len(chosen)} of {len(plan.runs)} runs here; manifest {manifest}", err=True)
    outcomes = run_sweep(chosen, plan.folder(runs_dir), devices=device_list, progress=options["progress"],
                         echo=lambda line: typer.echo(line, err=True))
    if as_json:
        print_json([outcome.as_dict() for outcome in outcomes])
    else:
        print_table(f"sweep {plan.name}: held-out figures of each run", ["spec", "outcome", "L1", "PSNR (dB)", "SSIM"], [
            [o.spec, o.error and f"failed: {o.error}" or o.outcome,
             *(_figure(o.evaluation, key) for key in ("l1", "psnr", "ssim"))] for o in outcomes
        ], wrap=("spec", "outcome"))
    failed = [o.name for o in outcomes if o.outcome == "failed"]
    if failed:
        raise ZooError(f"{len(failed)} of {len(outcomes)} runs failed ({', '.join(failed)}); run the same command "
                       "again to retry them (finished runs are skipped)")


def _print_recipes(as_json: bool) -> None:
    from pix2pix_zoo.experiments.recipes import list_recipes

    recipes = list_recipes().values()
    if as_json:
        print_json([{"name": r.name, "runs": r.runs, "summary": r.summary, "origin": r.origin} for r in recipes])
        return
    print_table("recipes (zoo sweep --recipe NAME)", ["name", "runs", "from", "summary"],
                [[r.name, str(r.runs), r.origin, r.summary] for r in recipes], wrap=("summary",))


def _figure(evaluation: dict[str, Any] | None, key: str) -> str:
    value = ((evaluation or {}).get("translator") or {}).get(key)
    return "" if value is None else f"{value:.4f}" if key != "psnr" else f"{value:.2f}"


def _with_train_options(command):
    """``command`` taking zoo train's setting options too, as declared there (one list of options)."""
    hints = typing.get_type_hints(train_command.train)
    own = [p for p in inspect.signature(command).parameters.values() if p.kind is not p.VAR_KEYWORD]
    shared = [p.replace(annotation=hints[p.name], kind=p.KEYWORD_ONLY)
              for p in inspect.signature(train_command.train).parameters.values() if p.name not in NOT_FOR_SWEEPS]
    command.__signature__ = inspect.Signature([*own, *shared])
    command.__annotations__ = {**typing.get_type_hints(command), **{p.name: p.annotation for p in shared}}
    return command


sweep = _with_train_options(sweep)
