"""Setting a run up: the checks and choices made before a run writes anything.

The trainer calls these in order (see :class:`~pix2pix_zoo.engine.trainer.Trainer`): the config a
resumed run was started with, the run directory claimed, the crop and batch sizes checked against
the generator and the data, the networks placed on the device (DDP, SyncBatchNorm, compile). Each
refuses in one line, before the run directory is touched.
"""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from pix2pix_zoo.data import parse_data
from pix2pix_zoo.data.augment import PairedAugment
from pix2pix_zoo.engine.config import ConfigFileError, TrainConfig
from pix2pix_zoo.engine.distributed import Ranks
from pix2pix_zoo.engine.loading import GuardedImages, with_skip_hint
from pix2pix_zoo.engine.rundir import CONFIG, RunExists, RunLock, check_replaceable, check_run_target, run_config
from pix2pix_zoo.errors import BadImageError, DataError, SpecError
from pix2pix_zoo.interfaces import ActivationCheckpointing
from pix2pix_zoo.plugins import missing_distributions_hint
from pix2pix_zoo.spec import Pix2Pix, Spec, resolve

VERSIONED_PACKAGES = ("pix2pix-zoo", "torch", "timm", "kornia", "safetensors", "pluggy", "typer")


def run_name(spec: str, data: str) -> str:
    """A file-name-safe run name from the canonical spec and the dataset."""
    return re.sub(r"[^A-Za-z0-9_+.=-]+", "_", f"{spec}-{parse_data(data)[0]}").strip("_")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def saved_config(run_dir: Path, max_steps: int | None, workers: int | str | None, device: str) -> TrainConfig:
    """The config a run to resume was started with (``max_steps`` and ``workers`` changed if given,
    on ``device``), checked key by key: a hand-edited config.json is refused in one line naming the key."""
    if not run_dir.is_dir() or run_dir.is_symlink():
        raise RunExists(f"cannot resume {run_dir}: it is not a run directory")
    try:
        saved = run_config(run_dir)
    except RunExists as error:
        raise ConfigFileError(f"cannot resume {run_dir}: {error}") from None
    where = str(run_dir / CONFIG)
    config = TrainConfig.from_dict(saved["config"], where)
    try:
        spec = str(resolve(config.spec))
    except SpecError as error:
        hint = missing_distributions_hint(saved.get("plugins"))
        raise ConfigFileError(f"'spec' in {where}: {error}{hint}") from None
    if spec != saved["canonical_spec"]:
        raise ConfigFileError(
            f"'spec' in {where} ({spec}) is not the run's spec ({saved['canonical_spec']}); a run's networks "
            "cannot change: start a new run for another spec"
        )
    if max_steps is not None:
        config.max_steps = max_steps
    if workers is not None:
        config.workers = workers
    config.device = device
    return config


def claim_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> tuple[RunLock | None, RunLock | None]:
    """Lock the run directory to resume, or check that a new run may be made or may replace what is
    there (locking the run it replaces); writes nothing but the lock. Returns (the run's lock, the
    replaced run's lock)."""
    check_run_target(run_dir)
    if resume:
        return RunLock(run_dir), None
    if not run_dir.exists():
        return None, None
    if not overwrite:
        raise RunExists(
            f"run directory {run_dir} already exists; pass --resume {run_dir} to continue it "
            "or --overwrite to start it again"
        )
    check_replaceable(run_dir)
    return None, (RunLock(run_dir) if any(run_dir.iterdir()) else None)


def check_crop_size(config: TrainConfig, spec: Spec, size_multiple: int) -> None:
    """A training crop must be a multiple of the generator's size multiple."""
    crop = config.crop_size
    if "crop" in config.preprocess and crop % size_multiple:
        larger = (crop // size_multiple + 1) * size_multiple
        choices = f"{size_multiple} or {larger}" if crop > size_multiple else f"{size_multiple}"
        raise SpecError(
            f"crop size {crop} is not a multiple of {size_multiple}, the size multiple of "
            f"{spec.generator}; use --crop-size {choices}, or a generator with a smaller multiple"
        )


def check_batches_share_sizes(dataset: GuardedImages, augment: PairedAugment, config: TrainConfig) -> None:
    """With a preprocessing that keeps sizes (``none``, ``scale_width``), pairs that come out in
    different sizes cannot share a training batch: refuse before anything is written, naming two of
    them, rather than at some step of the run. Costs one header read per pair, and only then; the
    resizing modes (the default) batch pairs of any sizes."""
    if config.batch_size == 1 or not augment.keeps_sizes:
        return
    pairs = dataset.dataset
    first: tuple[int, tuple[int, int]] | None = None
    for index in range(len(pairs)):
        try:
            size = augment.output_size(*pairs.pair_size(index), train=True)
        except BadImageError as error:
            if config.skip_bad:
                continue
            raise with_skip_hint(error) from None
        if first is None:
            first = index, size
        elif size != first[1]:
            names = [pairs[i]["name"] for i in (first[0], index)]
            raise DataError(
                f"with --preprocess {config.preprocess} pairs keep their sizes, and {names[0]!r} and "
                f"{names[1]!r} come out {first[1][1]}x{first[1][0]} and {size[1]}x{size[0]}: they cannot share "
                f"a batch of {config.batch_size}; use --batch-size 1, or a preprocess mode that resizes "
                "them to one size (resize_and_crop, the default, or scale_width_and_crop)"
            )


@dataclass
class PlacedModels:
    """The networks as the training step calls them: wrapped for DDP and compiled where asked.
    ``judge`` is the discriminator the generator's loss asks (compiled, never DDP-wrapped)."""

    generator: nn.Module
    discriminator: nn.Module | None
    judge: nn.Module | None


def place_models(models: Pix2Pix, spec: Spec, config: TrainConfig, ranks: Ranks, device: torch.device,
                 echo: Callable[[str], None]) -> PlacedModels:
    """Move the networks to ``device`` (channels-last if asked), convert ``norm=syncbatch`` parts
    for DDP on CUDA, wrap them for DDP and compile them as the config says; enable the generator's
    activation checkpointing if asked (:func:`enable_activation_checkpointing`)."""
    enable_activation_checkpointing(models, spec, config, ranks, device)
    modules = [m for m in (models.generator, models.discriminator) if m is not None]
    if ranks.distributed:
        for part, module in zip(spec.parts, modules):
            if dict(part.options).get("norm") != "syncbatch":
                continue
            if device.type != "cuda":  # torch's SyncBatchNorm runs on GPUs only
                echo(f"{part}: norm=syncbatch needs CUDA; each process normalises its own batch")
                continue
            nn.SyncBatchNorm.convert_sync_batchnorm(module)  # in place: the root is never a norm
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    for module in modules:
        module.to(device, memory_format=memory_format)
    placed = PlacedModels(models.generator, models.discriminator, models.discriminator)
    if ranks.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        placed.generator = DDP(models.generator, device_ids=ids)
        if models.discriminator is not None:
            placed.discriminator = DDP(models.discriminator, device_ids=ids)
    if config.compile:
        placed.generator = torch.compile(placed.generator)
        if placed.discriminator is not None:
            placed.discriminator = torch.compile(placed.discriminator)
            placed.judge = torch.compile(models.discriminator)
    return placed


def enable_activation_checkpointing(models: Pix2Pix, spec: Spec, config: TrainConfig, ranks: Ranks,
                                    device: torch.device) -> None:
    """With ``--activation-checkpointing``, have the generator recompute its activations in the backward
    pass (:class:`~pix2pix_zoo.interfaces.ActivationCheckpointing`); refuse in one line a generator
    without that capability, and ``norm=syncbatch`` in a distributed run on CUDA, whose recomputed
    layers would gather statistics across processes again in the backward pass. It combines with
    the rest: the CPU tuning's kernels and channels-last change how layers compute, not what is
    recomputed (the tuning's kept freed memory would eat the savings, so the trainer asks
    ``tune_for_cpu(keep_memory=False)`` with it); DDP reduces the gradients the recomputation gives;
    under ``--compile`` the compiler plans the recomputation of the segments itself (see
    :func:`pix2pix_zoo.recompute.recompute`). Only the generator recomputes; the discriminator keeps
    its activations (``benchmarks/high_resolution.py`` shows how a step's memory divides)."""
    if not config.activation_checkpointing:
        return
    generator = models.generator
    if not isinstance(generator, ActivationCheckpointing):
        raise SpecError(
            f"generator {spec.generator} does not support activation checkpointing (it has no "
            "set_activation_checkpointing); train it without --activation-checkpointing"
        )
    if ranks.distributed and device.type == "cuda" and dict(spec.generator.options).get("norm") == "syncbatch":
        raise SpecError(
            f"--activation-checkpointing cannot recompute {spec.generator}'s norm=syncbatch layers (their "
            "statistics are gathered across processes); use norm=batch, or train without --activation-checkpointing"
        )
    generator.set_activation_checkpointing(True)
