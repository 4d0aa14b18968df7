"""``zoo train SPEC --data NAME``: the paper's experiment (or any spec) as a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from pix2pix_zoo.cli.output import print_evaluation, print_json
from pix2pix_zoo.engine.config import TrainConfig
from pix2pix_zoo.errors import SpecError

DEFAULTS = TrainConfig()
# What may be given with --resume: a resumed run keeps every other setting in its config.json.
RESUME_OPTIONS = ("resume", "max_steps", "device", "workers", "progress", "as_json")


def data_options(pairs: list[str]) -> dict[str, str]:
    """``--data-opt KEY=VALUE`` options as a dict (the dataset factory coerces the values)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SpecError(f"--data-opt {pair!r} is not KEY=VALUE")
        options[key.strip()] = value.strip()
    return options


# Each zoo train option that is a setting of the run, and the TrainConfig field it sets.
SETTING_OF_OPTION = {
    "data": "data", "data_opt": "data_options", "direction": "direction", "epochs": "epochs",
    "epochs_decay": "epochs_decay", "max_steps": "max_steps", "batch_size": "batch_size", "lr": "lr",
    "preprocess": "preprocess", "load_size": "load_size", "crop_size": "crop_size", "no_flip": "flip", "seed": "seed",
    "precision": "precision", "channels_last": "channels_last", "compile_": "compile", "cpu_tuning": "cpu_tuning",
    "activation_checkpointing": "activation_checkpointing",
    "optimizer": "optimizer_impl", "ema_decay": "ema_decay", "workers": "workers", "device": "device",
    "log_every": "log_every", "sample_every": "sample_every", "checkpoint_every": "checkpoint_every",
    "skip_bad": "skip_bad", "eval_split": "eval_split", "lpips_weights": "lpips_weights",
}


def config_from_options(spec: str, **options: Any) -> TrainConfig:
    """The run's settings from ``zoo train``'s options (by parameter name), checked."""
    values = {SETTING_OF_OPTION[name]: value for name, value in options.items()}
    values["data_options"] = data_options(values["data_options"])
    values["workers"] = workers_setting(values["workers"])
    values["flip"] = not values["flip"]  # the option is --no-flip
    if values.get("lpips_weights") is not None:
        values["lpips_weights"] = str(values["lpips_weights"])  # config.json holds the path as given
    return TrainConfig(spec=spec, **values).validate()


def workers_setting(text: str | int) -> int | str:
    """``--workers``: ``auto`` or a whole number of 0 or more."""
    if isinstance(text, int) or text == "auto":
        return text
    if not text.isdigit():
        raise SpecError(f"--workers must be auto or a whole number of 0 or more, not {text!r}")
    return int(text)


def typed_settings(ctx: typer.Context, config: TrainConfig) -> dict[str, Any]:
    """The settings of ``config`` whose options the user typed, by field name."""
    typed = set(given_options(ctx))
    return {field: getattr(config, field) for param in ctx.command.params
            if param.opts[0] in typed and (field := SETTING_OF_OPTION.get(param.name)) is not None}


def given_options(ctx: typer.Context) -> list[str]:
    """The options the user typed (not left at their defaults), as their flags."""
    from typer._click.core import ParameterSource  # typer carries its own click

    return [param.opts[0] for param in ctx.command.params
            if ctx.get_parameter_source(param.name) not in (None, ParameterSource.DEFAULT)]


def train(
    ctx: typer.Context,
    spec: Optional[str] = typer.Argument(None, metavar="SPEC", help="e.g. unet_256+patch70+l1cgan (not with --resume)."),
    data: str = typer.Option(DEFAULTS.data, "--data", "-d", help="Dataset name or SCHEME:PATH, e.g. facades, folder:./pairs.", rich_help_panel="Data"),
    data_opt: list[str] = typer.Option([], "--data-opt", help="Dataset option KEY=VALUE (repeatable), e.g. size=128.", rich_help_panel="Data"),
    direction: Optional[str] = typer.Option(None, "--direction", help="AtoB or BtoA (default: the dataset's own).", rich_help_panel="Data"),
    epochs: int = typer.Option(DEFAULTS.epochs, "--epochs", help="Epochs at the initial learning rate.", rich_help_panel="Schedule"),
    epochs_decay: int = typer.Option(DEFAULTS.epochs_decay, "--epochs-decay", help="Epochs of linear decay to zero.", rich_help_panel="Schedule"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after this many steps (also with --resume).", rich_help_panel="Schedule"),
    batch_size: int = typer.Option(DEFAULTS.batch_size, "--batch-size", "-b", help="Pairs per step (the paper: 1).", rich_help_panel="Schedule"),
    lr: float = typer.Option(DEFAULTS.lr, "--lr", help="Adam learning rate (betas 0.5, 0.999).", rich_help_panel="Schedule"),
    preprocess: str = typer.Option(DEFAULTS.preprocess, "--preprocess", help="resize_and_crop, crop, scale_width, scale_width_and_crop or none.", rich_help_panel="Data"),
    load_size: int = typer.Option(DEFAULTS.load_size, "--load-size", help="Side to resize to before cropping.", rich_help_panel="Data"),
    crop_size: int = typer.Option(DEFAULTS.crop_size, "--crop-size", help="Side of the training crop (a multiple of the generator's size multiple).", rich_help_panel="Data"),
    no_flip: bool = typer.Option(False, "--no-flip", help="No random horizontal flips.", rich_help_panel="Data"),
    seed: int = typer.Option(DEFAULTS.seed, "--seed", help="Seeds the weights, the data order and the jitter.", rich_help_panel="Schedule"),
    precision: str = typer.Option(DEFAULTS.precision, "--precision", help="fp32, bf16 or fp16 (autocast).", rich_help_panel="Speed"),
    channels_last: bool = typer.Option(False, "--channels-last", help="channels_last memory format.", rich_help_panel="Speed"),
    compile_: bool = typer.Option(False, "--compile", help="torch.compile the networks.", rich_help_panel="Speed"),
    cpu_tuning: bool = typer.Option(True, "--cpu-tuning/--no-cpu-tuning", help="On a CPU in fp32: native kernels for small maps, channels-last activations in D, Winograd for wide stride-1 4x4 convolutions, freed memory kept (faster, same results to rounding).", rich_help_panel="Speed"),
    activation_checkpointing: bool = typer.Option(False, "--activation-checkpointing", help="Recompute the generator's activations in the backward pass instead of keeping them: less memory for large images, for up to one more generator forward pass a step (same results to rounding).", rich_help_panel="Memory"),
    optimizer: str = typer.Option(DEFAULTS.optimizer_impl, "--optimizer", help="Adam kernel: auto, fused, foreach or plain.", rich_help_panel="Speed"),
    ema_decay: float = typer.Option(DEFAULTS.ema_decay, "--ema-decay", help="EMA of the generator (0: off), e.g. 0.999.", rich_help_panel="Schedule"),
    workers: str = typer.Option(DEFAULTS.workers, "--workers", help="Data-loading processes per training process, or auto: from the cores and the device (one on a 2-core CPU).", rich_help_panel="Data"),
    device: str = typer.Option(DEFAULTS.device, "--device", help="auto, cpu, cuda, cuda:1, mps.", rich_help_panel="Speed"),
    log_every: int = typer.Option(DEFAULTS.log_every, "--log-every", help="Steps between loss reads (host syncs).", rich_help_panel="Speed"),
    sample_every: int = typer.Option(DEFAULTS.sample_every, "--sample-every", help="Steps between sample grids.", rich_help_panel="Run directory"),
    checkpoint_every: int = typer.Option(DEFAULTS.checkpoint_every, "--checkpoint-every", help="Steps between checkpoints (0: each epoch).", rich_help_panel="Run directory"),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip and count unreadable images.", rich_help_panel="Data"),
    eval_split: Optional[str] = typer.Option(DEFAULTS.eval_split, "--eval-split", help="Held-out split evaluated at the end (default: test, else val).", rich_help_panel="Evaluation"),
    lpips_weights: Optional[Path] = typer.Option(None, "--lpips-weights", help="LPIPS weights (the heads, with AlexNet or with torchvision's cached AlexNet; safetensors or a weights-only .pth): LPIPS in the held-out figures.", rich_help_panel="Evaluation"),
    runs: Path = typer.Option(Path("runs"), "--runs", help="Folder of run directories.", rich_help_panel="Run directory"),
    name: Optional[str] = typer.Option(None, "--name", help="Run name (default: from the spec and the dataset).", rich_help_panel="Run directory"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue this run directory.", rich_help_panel="Run directory"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run directory.", rich_help_panel="Run directory"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the final evaluation as JSON."),
) -> None:
    """Train a translator; ends by printing held-out L1, PSNR and SSIM beside two baselines."""
    from pix2pix_zoo.engine.trainer import Trainer, run_name
    from pix2pix_zoo.spec import canonical

    if resume is not None:
        if spec is not None:
            raise SpecError("--resume continues a run with its saved settings; give no SPEC with it")
        allowed = {param.opts[0] for param in ctx.command.params if param.name in RESUME_OPTIONS}
        given = given_options(ctx)
        refused = [flag for flag in given if flag not in allowed]
        if refused:
            raise SpecError(
                f"{', '.join(refused)} cannot be changed with --resume: a run continues with the settings in its "
                "config.json (only --max-steps, --device, --workers, --progress/--no-progress and --json apply)"
            )
        trainer = Trainer(TrainConfig(device=device).validate(), resume, resume=True, max_steps=max_steps,
                          workers=workers_setting(workers) if "--workers" in given else None, progress=progress,
                          count_process_start=True)
    else:
        if spec is None:
            raise SpecError("give a SPEC, e.g. zoo train unet_256+patch70+l1cgan --data facades")
        settings = {key: value for key, value in locals().items() if key in SETTING_OF_OPTION}
        config = config_from_options(spec=canonical(spec), **settings)
        if runs.exists() and not runs.is_dir():
            raise SpecError(f"--runs {runs} is a file, not a folder of run directories")
        run_dir = runs / (name or run_name(config.spec, config.data))
        trainer = Trainer(config, run_dir, overwrite=overwrite, progress=progress, count_process_start=True)
    result = trainer.fit()
    if not result.main_process:
        return
    typer.echo(f"run {result.run_dir}: step {result.step}; translator in {result.run_dir / 'translator'}", err=True)
    evaluation = result.evaluation
    if as_json:
        print_json(evaluation)
    elif evaluation:
        print_evaluation(evaluation, f"held-out {evaluation['split']} split")
