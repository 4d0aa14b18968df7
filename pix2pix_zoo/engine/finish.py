"""The end of a run: the held-out split it is evaluated on, and its evaluation against two baselines.

The trainer evaluates its translator on the held-out split (``--eval-split``, else test, else val)
with :func:`pix2pix_zoo.evaluation.evaluate_batches`, the code ``zoo eval`` uses, adding two
baselines on the same pairs: the input returned unchanged (where channels allow) and the mean
training target, with LPIPS for all three where ``--lpips-weights`` is set (its file checked at
set-up, :func:`held_out_lpips`); then it exports the translator with these figures on its card.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from pix2pix_zoo.data import open_dataset
from pix2pix_zoo.engine.config import TrainConfig, option_flag
from pix2pix_zoo.engine.loading import GuardedImages, collate_guarded
from pix2pix_zoo.errors import DataError, SpecError
from pix2pix_zoo.evaluation import evaluate_batches
from pix2pix_zoo.interfaces import DatasetInfo, PairedDataset
from pix2pix_zoo.perceptual import LPIPS, MIN_SIZE, load_lpips
from pix2pix_zoo.translator import inference_mode

NO_HELD_OUT = ("{data!r} has no held-out split (test or val), so this run is not evaluated and writes no "
               "eval.json; pass --eval-split SPLIT to evaluate on another split")
EVAL_SPLITS = ("test", "val")
EVALUATION = "eval.json"

PreparedGroups = Callable[[dict], list[tuple[Tensor, Tensor, list[str]]]]
"""A loader batch -> (input, target, names) of each size in it, prepared for evaluation on the device."""
Translate = Callable[[nn.Module, Tensor], Tensor]
"""How the run generates: (generator, inputs) -> outputs (in chunks of the training batch size)."""


def open_held_out(config: TrainConfig, info: DatasetInfo) -> tuple[str, PairedDataset] | None:
    """The held-out split (``--eval-split``, else test, else val) and its pairs; None when the
    dataset has neither test nor val (a folder of your files may have only some). An
    ``--eval-split`` that does not open is an error, not a run left unevaluated."""
    if config.eval_split:
        try:
            return config.eval_split, open_dataset(config.data, config.eval_split, **config.data_options)
        except DataError as error:
            raise DataError(f"--eval-split {config.eval_split}: {error}") from None
    for split in (s for s in EVAL_SPLITS if s in info.splits):
        try:
            return split, open_dataset(config.data, split, **config.data_options)
        except DataError:
            continue
    return None


def held_out_lpips(config: TrainConfig, out_channels: int, device: torch.device) -> LPIPS | None:
    """The LPIPS network of ``config.lpips_weights`` (None where it is not set), checked at set-up:
    the file, and that the held-out outputs are images LPIPS scores (1 or 3 channels; a side of at
    least ``MIN_SIZE`` where the preprocessing fixes the size)."""
    if config.lpips_weights is None:
        return None
    flag = option_flag("lpips_weights")
    if out_channels not in (1, 3):
        raise SpecError(f"{flag}: LPIPS needs 1- or 3-channel images, and this run's translator makes {out_channels}")
    if config.preprocess != "none" and config.crop_size < MIN_SIZE:
        raise SpecError(f"{flag}: LPIPS needs images of at least {MIN_SIZE} x {MIN_SIZE} pixels, and this run "
                        f"is evaluated at {option_flag('crop_size')} {config.crop_size}")
    return load_lpips(Path(config.lpips_weights), device)


def evaluate_held_out(generator: nn.Module, held_out: tuple[str, PairedDataset], training: GuardedImages,
                      config: TrainConfig, prepare: PreparedGroups, translate: Translate, workers: int,
                      perceptual: LPIPS | None = None,
                      echo: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Held-out L1, PSNR and SSIM (and LPIPS with ``perceptual``, see :func:`held_out_lpips`) of the
    translator and of two baselines on the same pairs: the input returned unchanged (when channels
    allow) and the mean training target. What is left out is said through ``echo``."""
    split, pairs = held_out
    loader = DataLoader(GuardedImages(pairs, config.skip_bad), batch_size=8, collate_fn=collate_guarded)
    mean_target = mean_training_target(training, workers, prepare)

    def candidates(x: Tensor, y: Tensor) -> dict[str, Tensor]:
        outputs = {"translator": translate(generator, x),
                   "mean training target": resized(mean_target, y.shape[2:]).expand_as(y)}
        if x.shape == y.shape:
            outputs["input unchanged"] = x
        return outputs

    # Pairs of one size at a time: a preprocessing that keeps sizes evaluates each at its own.
    batches = (group for batch in loader for group in prepare(batch))
    torch.manual_seed(config.seed)
    with inference_mode(generator, "paper"):
        evaluation = evaluate_batches(batches, candidates, split, perceptual=perceptual)
    for note in evaluation.notes:
        echo(f"note: {note}")
    return evaluation.summary()


def mean_training_target(training: GuardedImages, workers: int, prepare: PreparedGroups) -> Tensor:
    """The per-pixel mean of the training targets (prepared as for evaluation). Where the
    preprocessing keeps sizes, targets are resized to the first one's size to be averaged, and
    the mean to each held-out target's size to be compared."""
    loader = DataLoader(training, batch_size=16, num_workers=workers, collate_fn=collate_guarded)
    total, count = None, 0
    for batch in loader:
        for _, y, _ in prepare(batch):
            total = y.sum(0) if total is None else total + resized(y, total.shape[1:]).sum(0)
            count += y.shape[0]
    return (total / count).unsqueeze(0)


def resized(images: Tensor, size: torch.Size) -> Tensor:
    """``images`` at ``size`` (H, W): themselves when they have it, else resized bilinearly."""
    if images.shape[2:] == size:
        return images
    return F.interpolate(images, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)


def evaluation_summary(evaluation: dict[str, Any] | None, data: str) -> dict[str, Any]:
    """The held-out figures as report.html's summary shows them, or why there are none."""
    if not evaluation:
        return {"evaluation": NO_HELD_OUT.format(data=data)}
    return {f"{name} ({evaluation['split']})": figures for name, figures in evaluation.items()
            if isinstance(figures, dict)}


def saved_evaluation(run_dir: Path) -> dict[str, Any] | None:
    """A finished run's held-out figures (its eval.json); None where it has none or they do not read."""
    try:
        evaluation = json.loads((run_dir / EVALUATION).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return evaluation if isinstance(evaluation, dict) else None
