"""The trainer: the paper's experiment as a run directory, on one CPU, one GPU or many (torchrun).

A run directory holds everything about a run::

    config.json            the resolved config, canonical spec, dataset facts, package versions
    metrics.jsonl          one line per logged step (losses, learning rate, images/s)
    samples/step-*.png     input | output | target grids of fixed held-out pairs
    checkpoints/           safetensors + JSON, written atomically (see checkpoint.py)
    report.html            settings, held-out figures, charts of the metrics, the newest grids; self-contained
    translator/            the exported generator (model.safetensors with its card)
    eval.json              held-out L1/PSNR/SSIM (LPIPS with --lpips-weights) of the translator and two baselines
    .pix2pix-zoo-run       the marker that says zoo train made the folder (and its .lock)

Randomness is reseeded from (seed, step, rank) at every step, for the augmentation on the device and
for dropout alike, so a resumed run draws exactly what an uninterrupted one would: N steps, stop,
resume, N steps equals 2N steps straight. Losses stay on the device and are read every
``log_every`` steps (the only host synchronisation in the loop); a loss that is not finite stops
the run before anything else is written, leaving the last good checkpoint.

Nothing is written before every setting, the data and the networks have been checked; one process
at a time holds a run directory (see rundir.py), and ``overwrite`` replaces only a run the zoo made,
once the new one is set up.

This module is the loop and what it orchestrates; the phases live beside it: ``setup.py`` (the
checks and choices before anything is written), ``loading.py`` (loader workers and the resumable
sampler), ``gan_step.py`` (one step), ``checkpoint.py``, ``finish.py`` (the held-out evaluation)
and ``report.py``.
"""

from __future__ import annotations

import functools
import io
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler

from pix2pix_zoo import charts
from pix2pix_zoo.atomic import write_bytes_atomic, write_json_atomic
from pix2pix_zoo.data import open_dataset
from pix2pix_zoo.data.augment import PairedAugment, orient, uniform_batches
from pix2pix_zoo.engine import distributed
from pix2pix_zoo.engine.checkpoint import (
    CheckpointError,
    CheckpointWriter,
    load_newest_checkpoint,
    newest_verified_checkpoint,
    take_snapshot,
)
from pix2pix_zoo.engine.config import TrainConfig
from pix2pix_zoo.engine.cpu_tuning import tune_for_cpu
from pix2pix_zoo.engine.finish import (
    EVALUATION,
    NO_HELD_OUT,
    evaluate_held_out,
    evaluation_summary,
    held_out_lpips,
    open_held_out,
)
from pix2pix_zoo.engine.gan_step import OPTIMIZER_IMPORTS, Amp, gan_step, make_optimizers
from pix2pix_zoo.engine.loading import (
    GuardedImages,
    SkippingSampler,
    collate_guarded,
    loader_workers,
    raise_loader_error,
)
from pix2pix_zoo.engine.phases import PhaseClock, describe, import_beside, process_age
from pix2pix_zoo.engine.report import write_report
from pix2pix_zoo.engine.rundir import (
    CONFIG,
    METRICS,
    TRANSLATOR,
    RunExists,
    RunLock,
    install_run,
    read_metrics,
    run_config,
    trim_metrics,
)
from pix2pix_zoo.engine.setup import (
    check_batches_share_sizes,
    check_crop_size,
    claim_run_dir,
    package_versions,
    place_models,
    run_name,
    saved_config,
)
from pix2pix_zoo.devices import emulated_precision_note
from pix2pix_zoo.errors import DataError, SpecError, ZooError
from pix2pix_zoo.interfaces import PairedDataset
from pix2pix_zoo.pictures import open_codec, picture, sample_grid
from pix2pix_zoo.spec import Pix2Pix, resolve, spec_distributions
from pix2pix_zoo.translator import inference_mode
from pix2pix_zoo.translator_file import Card, save_translator

# Importable from here, where the command line and tests have always found them.
__all__ = ["RunExists", "TrainResult", "Trainer", "TrainingDiverged", "run_name", "step_seed"]

SAMPLE_COUNT = 4


class TrainingDiverged(ZooError):
    """A loss became NaN or infinite."""


def step_seed(seed: int, step: int, rank: int) -> int:
    """The seed of one step on one rank (distinct for every (seed, step, rank) in practice)."""
    return (seed * 1_000_003 + step) * 1_009 + rank & 0x7FFF_FFFF_FFFF_FFFF


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    epoch: int
    evaluation: dict[str, Any] | None
    main_process: bool = True  # False on the other ranks of a torchrun launch, which report nothing


class Trainer:
    """Builds everything a run needs from a :class:`TrainConfig` and runs it.

    ``resume=True`` continues ``run_dir`` from its latest checkpoint with the config saved there.
    Only ``max_steps`` (e.g. to extend a run that was stopped early on purpose) and where the run
    computes, ``config.device`` and ``workers``, apply: they change no result, as every step
    reseeds its own randomness.
    The run directory stays locked to this process until :meth:`fit` ends.
    ``count_process_start`` times the process's start-up as the run's ``start`` phase (see
    :mod:`~pix2pix_zoo.engine.phases`), for a process started to make this one trainer (``zoo train``).
    """

    def __init__(
        self,
        config: TrainConfig,
        run_dir: Path,
        *,
        resume: bool = False,
        max_steps: int | None = None,
        workers: int | str | None = None,
        overwrite: bool = False,
        progress: bool = True,
        echo: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
        count_process_start: bool = False,
    ) -> None:
        self.ranks, self.device = distributed.start(config.device)
        self.run_dir = Path(run_dir)
        self.echo = echo if self.ranks.is_main else (lambda line: None)
        self.show_progress = progress and self.ranks.is_main
        self._lock: RunLock | None = None  # rank 0's lock of the run directory
        self._old_lock: RunLock | None = None  # with overwrite: the lock of the run being replaced
        self.clock = PhaseClock()
        age = process_age() if count_process_start else None
        if age is not None:
            self.clock.add("start", age)
        try:
            with self.clock.timing("set_up"):
                self._set_up(config, resume, max_steps, workers, overwrite)
        except BaseException:
            self._release()
            raise

    def _set_up(self, config: TrainConfig, resume: bool, max_steps: int | None, workers: int | str | None,
                overwrite: bool) -> None:
        if resume:
            config = saved_config(self.run_dir, max_steps, workers, device=config.device)
        self.config = config.validate()
        self.spec = resolve(config.spec)
        if self.ranks.is_main:
            self._lock, self._old_lock = claim_run_dir(self.run_dir, resume, overwrite)

        dataset = open_dataset(config.data, "train", **config.data_options)
        self.dataset = GuardedImages(dataset, config.skip_bad)
        self.info = dataset.info
        self.direction = config.direction or self.info.default_direction
        in_channels, out_channels = (
            (self.info.a_channels, self.info.b_channels)
            if self.direction == "AtoB"
            else (self.info.b_channels, self.info.a_channels)
        )
        # A codec describes the default direction's input and output; reversed, show channels as they are.
        self.codec_name = self.info.codec if self.direction == self.info.default_direction else ""
        self.codec = open_codec(self.codec_name)
        # Beside the networks' building, which runs torch's kernels: what the optimisers and the report import.
        import_beside([*([] if config.compile else OPTIMIZER_IMPORTS), *(charts.MODULES if self.ranks.is_main else ())])
        torch.manual_seed(config.seed)  # the same initial weights for the same seed, on every rank
        self.models: Pix2Pix = self.spec.build(in_channels, out_channels)
        check_crop_size(config, self.spec, self.models.generator.size_multiple)
        self.perceptual = held_out_lpips(config, out_channels, self.device) if self.ranks.is_main else None
        try:
            self.augment = PairedAugment(
                preprocess=config.preprocess, load_size=config.load_size, crop_size=config.crop_size,
                flip=config.flip, size_multiple=self.models.generator.size_multiple,
            )
        except ValueError as error:
            raise SpecError(str(error)) from None
        check_batches_share_sizes(self.dataset, self.augment, config)
        self._check_a_batch_fits()
        self.cpu_tuning = self._tune_for_cpu()
        placed = place_models(self.models, self.spec, config, self.ranks, self.device, self.echo)
        self.train_generator, self.train_discriminator, self.judge = placed.generator, placed.discriminator, placed.judge
        self.optimizer_g, self.optimizer_d = make_optimizers(
            self.models, config.lr, (config.beta1, config.beta2), config.optimizer_impl
        )
        self.amp = Amp(config.precision, self.device.type)
        if note := emulated_precision_note(self.device, config.precision):
            self.echo(f"note: {note}")
        self.ema = None
        if config.ema_decay > 0:
            from timm.utils import ModelEmaV3

            self.ema = ModelEmaV3(self.models.generator, decay=config.ema_decay)
        self.step, self.epoch, self.step_in_epoch = 0, 1, 0
        if resume:
            self._load_latest()
        self._saved_step = self.step if resume else None  # the step whose checkpoint exists
        self._resumed_from = self.step if resume else None
        self._writer = CheckpointWriter(self.run_dir / "checkpoints", config.keep_checkpoints)
        self.sampler = DistributedSampler(
            self.dataset,
            num_replicas=self.ranks.world_size,
            rank=self.ranks.rank,
            shuffle=True,
            seed=config.seed,
            drop_last=True,
        )
        self.batches_per_epoch = len(self.sampler) // config.batch_size
        if self.batches_per_epoch == 0:
            raise DataError(
                f"dataset {config.data!r} has {len(self.dataset)} training pairs: too few for --batch-size "
                f"{config.batch_size} on {self.ranks.world_size} process(es)"
            )
        self.skipping = SkippingSampler(self.sampler)
        self.workers = loader_workers(config.workers, self.device.type, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        self.loader = DataLoader(
            self.dataset,
            batch_size=config.batch_size,
            sampler=self.skipping,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=self.workers > 0,
            collate_fn=collate_guarded,
            drop_last=True,
        )
        self.skipped: set[str] = set()
        self._sums: dict[str, Tensor] = {}
        self._count = 0
        if self.ranks.is_main:
            self._announce_held_out()
        self._samples = self._sample_batch() if self.ranks.is_main else None
        self._sampled_step: int | None = None
        # Everything that can be wrong with the settings or the data has been checked: now write.
        self._prepare_run_dir(resume)
        self._tensorboard = self._open_tensorboard()
        self._window_start = time.perf_counter()

    # -- set-up ----------------------------------------------------------------------------------
    def _prepare_run_dir(self, resume: bool) -> None:
        """Make the run directory (replacing the old one only now), or trim a resumed run's metrics
        to its checkpoint."""
        if not self.ranks.is_main:
            return
        if resume:
            (self.run_dir / "samples").mkdir(exist_ok=True)
            trim_metrics(self.run_dir / METRICS, self.step)
            return
        self._lock = install_run(self.run_dir, self._write_new_run, replacing=self._old_lock)
        self._old_lock = None

    def _write_new_run(self, folder: Path) -> None:
        (folder / "samples").mkdir()
        write_json_atomic(folder / CONFIG, {
            "config": self.config.to_dict(),
            "canonical_spec": str(self.spec),
            "plugins": spec_distributions(self.spec),
            "versions": package_versions(),
            "world_size": self.ranks.world_size,
            "device": str(self.device),
            "cpu_tuning": self.cpu_tuning,
            "loader_workers": self.workers,  # what --workers (auto by default) came to on this machine
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        })

    def _release(self) -> None:
        for lock in (self._lock, self._old_lock):
            if lock is not None:
                lock.release()

    def _check_a_batch_fits(self) -> None:
        """Augment one training batch now, so that a --load-size too large for memory is refused
        before anything is written rather than at the first step."""
        count = min(self.config.batch_size, len(self.dataset))
        batch = collate_guarded([self.dataset[index] for index in range(count)])
        generator = torch.Generator(self.device).manual_seed(self.config.seed)
        try:
            self._prepare(batch, generator, train=True)
        except (RuntimeError, MemoryError) as error:
            if not isinstance(error, (MemoryError, torch.cuda.OutOfMemoryError)) and "alloc" not in str(error):
                raise
            raise SpecError(
                f"--load-size {self.config.load_size} is too large: one training batch resized to it does not "
                f"fit in the memory of {self.device}; use a smaller --load-size or --batch-size"
            ) from None

    def _tune_for_cpu(self) -> dict[str, Any] | None:
        """On a CPU in fp32 eager mode, :mod:`~pix2pix_zoo.engine.cpu_tuning`'s speed-ups (for the
        shape of the first training pair); what was done, or None where they do not apply."""
        config = self.config
        if not config.cpu_tuning or self.device.type != "cpu" or config.precision != "fp32":
            return None
        if config.compile or config.channels_last:  # those bring their own kernels
            return None
        x, y = self._prepare(collate_guarded([self.dataset[0]]), None, train=False)
        # Recomputing activations is for memory: the tuning's kept heap would take back what it saves.
        return tune_for_cpu(self.models, x, y, keep_memory=not config.activation_checkpointing)

    def _open_tensorboard(self) -> Any:
        if not self.ranks.is_main:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # the tensorboard package is optional
            return None
        return SummaryWriter(str(self.run_dir / "tensorboard"))

    def _prepare(self, batch: dict, generator: torch.Generator | None, train: bool) -> tuple[Tensor, Tensor]:
        """uint8 pairs from the loader -> one augmented float batch on the device.

        Pairs of several sizes are prepared one size at a time and then batched, which the
        preprocessing allows unless it keeps sizes (checked at set-up for training).
        """
        groups = self._prepare_groups(batch, generator, train)
        if len(groups) == 1:
            return groups[0][0], groups[0][1]
        sizes = {tuple(x.shape[2:]) for x, _, _ in groups}
        if len(sizes) > 1:
            first, other = groups[0], next(group for group in groups if group[0].shape != groups[0][0].shape)
            raise DataError(
                f"pairs {first[2][0]!r} and {other[2][0]!r} come out of --preprocess {self.config.preprocess} in "
                "different sizes and cannot share a batch; use --batch-size 1 or a preprocess mode that resizes"
            )
        return torch.cat([x for x, _, _ in groups]), torch.cat([y for _, y, _ in groups])

    def _prepare_groups(
        self, batch: dict, generator: torch.Generator | None, train: bool
    ) -> list[tuple[Tensor, Tensor, list[str]]]:
        """(input, target, names) of each size in a loader batch, augmented on the device."""
        raise_loader_error(batch)
        prepared = []
        for group in uniform_batches(batch):
            a = group["a"].to(self.device, non_blocking=True)
            b = group["b"].to(self.device, non_blocking=True)
            a, b = self.augment(a, b, generator=generator, train=train)
            x, y = orient({"a": a, "b": b}, self.direction)
            if self.config.channels_last:
                x, y = x.contiguous(memory_format=torch.channels_last), y.contiguous(memory_format=torch.channels_last)
            prepared.append((x, y, group["name"]))
        return prepared

    @functools.cached_property
    def _held_out_split(self) -> tuple[str, PairedDataset] | None:
        """The held-out split and its pairs, opened once (see :func:`~pix2pix_zoo.engine.finish.open_held_out`)."""
        return open_held_out(self.config, self.info)

    def _announce_held_out(self) -> None:
        """Say at the start when the run will not be evaluated (it is said in report.html too)."""
        if self._held_out is None:
            self.echo(f"note: {NO_HELD_OUT.format(data=self.config.data)}")

    @property
    def held_out_split(self) -> str | None:
        """The split the run is evaluated on; None when it is not evaluated (see ``NO_HELD_OUT``)."""
        return self._held_out_split[0] if self._held_out_split is not None else None

    @property
    def _held_out(self) -> PairedDataset | None:
        return self._held_out_split[1] if self._held_out_split is not None else None

    def _sample_batch(self) -> tuple[Tensor, Tensor]:
        """Fixed pairs for the sample grids: the first held-out ones, else the first training ones."""
        held_out = self._held_out
        source = GuardedImages(held_out, self.config.skip_bad) if held_out is not None else self.dataset
        items = [source[i] for i in range(min(SAMPLE_COUNT, len(source)))]
        groups = self._prepare_groups(collate_guarded(items), None, train=False)
        # One grid holds pairs of one size: with a preprocessing that keeps sizes, the first pair's.
        kept = [(x, y) for x, y, _ in groups if x.shape[2:] == groups[0][0].shape[2:]]
        return torch.cat([x for x, _ in kept]), torch.cat([y for _, y in kept])

    # -- checkpoints -------------------------------------------------------------------------------
    def _checkpoint_parts(self) -> tuple[dict[str, nn.Module], dict[str, torch.optim.Optimizer]]:
        modules: dict[str, nn.Module] = {"generator": self.models.generator}
        optimizers: dict[str, torch.optim.Optimizer] = {"optimizer_g": self.optimizer_g}
        if self.models.discriminator is not None and self.optimizer_d is not None:
            modules["discriminator"] = self.models.discriminator
            optimizers["optimizer_d"] = self.optimizer_d
        if self.ema is not None:
            modules["generator_ema"] = self.ema.module
        return modules, optimizers

    def _save(self, last: bool = False) -> None:
        """Checkpoint the run at this step (written beside the next steps), and redraw report.html
        once it is written, unless this is the ``last`` checkpoint: the run's end draws it anyway,
        and matplotlib on the writer's thread would hold the GIL against the end's own work."""
        if self._saved_step == self.step:  # e.g. the end of an epoch right after a periodic save
            return
        self._flush()  # never write a checkpoint after a non-finite loss
        self._saved_step = self.step
        if not self.ranks.is_main:
            return
        try:
            if last:  # the end's sample grid: drawn beside the write, its kernels would share the cores with hashing
                self._write_samples()
        finally:  # and the checkpoint written whatever happened to it
            self._submit_checkpoint(last)

    def _submit_checkpoint(self, last: bool) -> None:
        with self.clock.timing("checkpoints"):
            modules, optimizers = self._checkpoint_parts()
            state = {
                "epoch": self.epoch,
                "step_in_epoch": self.step_in_epoch,
                "lr_factor": self.config.lr_factor(self.epoch),
                "amp": self.amp.state_dict(),
                "rng": "reseeded from (seed, step, rank) at every step",
            }
            snapshot = take_snapshot(self.step, modules, optimizers, state)
            summary = self._summary()
            # The disk's work, and the report that shows the run so far, go on beside the next steps.
            redraw = (lambda: None) if last else (lambda: write_report(self.run_dir, str(self.spec), summary))
            self._writer.submit(snapshot, then=redraw)

    def _load_latest(self) -> None:
        modules, optimizers = self._checkpoint_parts()
        state = load_newest_checkpoint(self.run_dir / "checkpoints", modules, optimizers, warn=self.echo)
        if state is None:
            progress = [name for name, made in (("metrics.jsonl", read_metrics(self.run_dir / METRICS)),
                                                (f"{TRANSLATOR}/", (self.run_dir / TRANSLATOR).exists()),
                                                ("eval.json", (self.run_dir / "eval.json").exists())) if made]
            if progress:
                raise CheckpointError(
                    f"cannot resume {self.run_dir}: it has {', '.join(progress)} but no checkpoint to continue "
                    "from; start it again with the same settings and --overwrite"
                )
            self.echo(f"{self.run_dir} has no checkpoint yet; starting from step 0")
            return
        self.amp.load_state_dict(state.get("amp", {}))
        self.step, self.epoch, self.step_in_epoch = state["step"], state["epoch"], state["step_in_epoch"]
        self.echo(f"resuming {self.run_dir} at step {self.step} (epoch {self.epoch})")

    # -- logging -----------------------------------------------------------------------------------
    def _accumulate(self, losses: dict[str, Tensor]) -> None:
        for key, value in losses.items():
            self._sums[key] = self._sums[key] + value if key in self._sums else value.clone()
        self._count += 1

    def _flush(self) -> dict[str, float] | None:
        """Read the accumulated losses (one host sync), check them, append a metrics line."""
        if not self._count:
            return None
        keys = sorted(self._sums)
        means = distributed.mean_across_ranks(torch.stack([self._sums[k] for k in keys]) / self._count, self.ranks)
        values = dict(zip(keys, means.tolist()))
        elapsed = time.perf_counter() - self._window_start
        images = self._count * self.config.batch_size * self.ranks.world_size
        self._sums, self._count, self._window_start = {}, 0, time.perf_counter()
        bad = [k for k, v in values.items() if v != v or v in (float("inf"), float("-inf"))]
        if bad:
            self._writer.join()  # a checkpoint being written holds finite losses: it counts once written
            last = newest_verified_checkpoint(self.run_dir / "checkpoints")
            kept = f"the last good checkpoint is {last}" if last else "there is no checkpoint that verifies"
            raise TrainingDiverged(f"loss {', '.join(bad)} became {values[bad[0]]} by step {self.step}; {kept}")
        record = {
            "step": self.step,
            "epoch": self.epoch,
            "lr": self.optimizer_g.param_groups[0]["lr"],
            **values,
            "img_per_s": images / elapsed if elapsed > 0 else None,
        }
        if self.config.skip_bad:
            record["skipped_images"] = len(self.skipped)
        if self.ranks.is_main:
            with open(self.run_dir / METRICS, "a") as stream:
                stream.write(json.dumps(record) + "\n")
            if self._tensorboard is not None:
                for key, value in record.items():
                    if isinstance(value, float) and key != "epoch":
                        self._tensorboard.add_scalar(key, value, self.step)
        return record

    def _write_samples(self) -> None:
        """The sample grid of this step (once: the end of a run may ask again)."""
        if self._samples is None or self._sampled_step == self.step:
            return
        self._sampled_step = self.step
        with self.clock.timing("samples"):
            self._draw_samples(*self._samples)

    def _draw_samples(self, x: Tensor, y: Tensor) -> None:
        generator = self.ema.module if self.ema is not None else self.models.generator
        torch.manual_seed(self.config.seed)
        with inference_mode(generator, "paper"):
            fake = self._translate(generator, x)
        views = picture(self.codec, x), picture(self.codec, x, fake), picture(self.codec, x, y)
        encoded = io.BytesIO()
        sample_grid(*views).save(encoded, format="PNG")
        # Whole or not at all: the report may be drawn from the folder on the checkpoint writer's thread.
        write_bytes_atomic(self.run_dir / "samples" / f"step-{self.step:09d}.png", encoded.getvalue())

    def _translate(self, generator: nn.Module, x: Tensor) -> Tensor:
        """Generate in chunks of the training batch size: in paper mode batch norm uses the batch's
        statistics, which should come from as many images as in training (the reference tests with 1)."""
        with self.amp.autocast():
            return torch.cat([generator(chunk).float() for chunk in x.split(self.config.batch_size)])

    def _summary(self) -> dict[str, Any]:
        return {
            "spec": str(self.spec),
            "data": self.config.data,
            "direction": self.direction,
            "step": self.step,
            "epoch": self.epoch,
            "batch size": self.config.batch_size,
            "processes": self.ranks.world_size,
            "device": str(self.device),
        }

    # -- the loop ------------------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        """Train until the schedule (or ``max_steps``) ends; export and evaluate the translator."""
        try:
            result = self._fit()
            # The other ranks wait for rank 0's export and evaluation: a rank that tears down its
            # process group while a peer is still working can abort the peer's gloo threads.
            distributed.wait_for_all(self.ranks)
            return result
        finally:
            self._writer.join()  # the run directory stays locked until the last checkpoint is on disk
            if self._tensorboard is not None:
                self._tensorboard.close()
            distributed.stop()
            self._release()

    def _fit(self) -> TrainResult:
        config = self.config
        total_steps = config.total_epochs * self.batches_per_epoch
        if config.max_steps is not None:
            total_steps = min(total_steps, config.max_steps)
        progress = self._progress(total_steps)
        generator_rng = torch.Generator(self.device)
        base_lr = config.lr
        with progress:
            task = progress.add_task("training", total=total_steps, completed=self.step, status="")
            while self.step < total_steps and self.epoch <= config.total_epochs:
                if self.step_in_epoch >= self.batches_per_epoch:
                    self.epoch, self.step_in_epoch = self.epoch + 1, 0
                    continue
                for optimizer in (self.optimizer_g, self.optimizer_d):
                    if optimizer is not None:
                        for group in optimizer.param_groups:
                            group["lr"] = base_lr * config.lr_factor(self.epoch)
                self.sampler.set_epoch(self.epoch)
                self.skipping.skip = self.step_in_epoch * config.batch_size
                started = time.perf_counter()
                for batch in self.loader:
                    seed = step_seed(config.seed, self.step, self.ranks.rank)
                    torch.manual_seed(seed)  # dropout
                    generator_rng.manual_seed(seed)  # augmentation
                    x, y = self._prepare(batch, generator_rng, train=True)
                    self.skipped.update(batch["skipped"])
                    losses = gan_step(
                        self.models, self.optimizer_g, self.optimizer_d, x, y, self.amp,
                        generator=self.train_generator, discriminator=self.train_discriminator, judge=self.judge,
                    )
                    if self.ema is not None:
                        self.ema.update(self.models.generator, step=self.step)
                    self._accumulate(losses)
                    self.step += 1
                    self.step_in_epoch += 1
                    progress.update(task, advance=1, description=f"epoch {self.epoch}/{config.total_epochs}")
                    if self.step % config.log_every == 0:
                        record = self._flush()
                        if record is not None:
                            progress.update(task, status=self._status(record))
                    self._time_step(time.perf_counter() - started)
                    if self.step % config.sample_every == 0 and self.ranks.is_main:
                        self._write_samples()
                    self._writer.check()  # a checkpoint that could not be written stops the run here
                    if config.checkpoint_every and self.step % config.checkpoint_every == 0:
                        self._save(last=self.step >= total_steps)
                    if self.step >= total_steps:
                        break
                    started = time.perf_counter()
                if self.step_in_epoch >= self.batches_per_epoch or self.step >= total_steps:
                    self._save(last=self.step >= total_steps)
        self._flush()
        evaluation = None
        if self.ranks.is_main:
            self._write_samples()
            evaluation = self._finish()
        return TrainResult(self.run_dir, self.step, self.epoch, evaluation, self.ranks.is_main)

    def _time_step(self, seconds: float) -> None:
        """Count a step's time as the session's first step or as one of its steady ones."""
        if "first_step" not in self.clock.seconds:
            if self.device.type == "cuda":  # once: the first step's kernels are queued, not yet run
                torch.cuda.synchronize(self.device)
            self.clock.add("first_step", seconds)
            return
        self.clock.add("steps", seconds)
        self.clock.images_in_steps += self.config.batch_size * self.ranks.world_size

    def _status(self, record: dict[str, Any]) -> str:
        losses = " ".join(f"{k}={record[k]:.3f}" for k in ("d", "g_gan", "g_l1") if k in record)
        speed = f"{record['img_per_s']:.1f} img/s" if record.get("img_per_s") else ""
        return f"{speed} {losses}".strip()

    def _progress(self, total: int) -> Any:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=Console(stderr=True),
            disable=not self.show_progress,
        )

    # -- the end ---------------------------------------------------------------------------------------
    def _finish(self) -> dict[str, Any] | None:
        generator = self.ema.module if self.ema is not None else self.models.generator
        # The end's work goes on beside the last checkpoint's write, waited for only once it is done.
        with self.clock.timing("evaluation"):
            evaluation = self.evaluate(generator)
        card = Card(
            spec=str(self.spec),
            in_channels=self.models.in_channels,
            out_channels=self.models.out_channels,
            direction=self.direction,
            codec=self.codec_name,
            size_multiple=self.models.generator.size_multiple,
            inference_mode="paper",
            dataset=self.config.data,
            task=self.info.task,
            metrics=evaluation["translator"] if evaluation else {},
            license=self.info.license,
            plugins=spec_distributions(self.spec),
            provenance={"run": str(self.run_dir), "step": self.step, "ema": self.ema is not None,
                        "versions": package_versions()},
        )
        with self.clock.timing("export"):
            save_translator(self.run_dir / TRANSLATOR, generator, card)
        if evaluation is not None:
            write_json_atomic(self.run_dir / EVALUATION, evaluation)
        with self.clock.timing("report"):
            write_report(self.run_dir, str(self.spec), {**self._summary(), **evaluation_summary(evaluation, self.config.data)})
        self._writer.wait()
        if self._writer.writes:
            self.clock.add("checkpoint_writes", self._writer.seconds_writing, self._writer.writes)
        self._record_timings()
        return evaluation

    def _record_timings(self) -> None:
        """Add this session's :mod:`~pix2pix_zoo.engine.phases` to config.json and say them in one line."""
        record = self.clock.record(resumed_from_step=self._resumed_from, last_step=self.step)
        saved = run_config(self.run_dir)
        earlier = saved.get("timings") if isinstance(saved.get("timings"), list) else []
        write_json_atomic(self.run_dir / CONFIG, {**saved, "timings": [*earlier, record]})
        self.echo(describe(record))

    def evaluate(self, generator: nn.Module) -> dict[str, Any] | None:
        """The held-out evaluation of ``generator`` (see :func:`~pix2pix_zoo.engine.finish.evaluate_held_out`);
        None when the run has no held-out split."""
        if self._held_out_split is None:
            return None
        return evaluate_held_out(generator, self._held_out_split, self.dataset, self.config,
                                 lambda batch: self._prepare_groups(batch, None, train=False), self._translate,
                                 self.workers,
                                 perceptual=self.perceptual, echo=self.echo)
