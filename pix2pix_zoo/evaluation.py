"""Evaluating translators on held-out pairs: per-image L1, PSNR and SSIM, their means, and, given
Inception weights, FID and KID of the outputs against the targets; given LPIPS weights (or finding
them, see :func:`~pix2pix_zoo.perceptual.load_lpips`), per-image LPIPS.

:func:`evaluate` runs a :class:`~pix2pix_zoo.translator.Translator` over a dataset split (``zoo
eval``); :func:`evaluate_batches` is the part it shares with the trainer, which adds its baselines
as further candidates.

Pairs are taken as the dataset stores them (the deterministic evaluation transform, no flips): at
their own size by default, the translator padding them to its size multiple and cropping back, or
resized to ``size`` x ``size`` as the trainer's evaluation does with ``--crop-size size``. For the
paper's datasets (256 x 256 pairs, crop 256) both are the trainer's held-out figures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from pix2pix_zoo.data import open_dataset
from pix2pix_zoo.data.augment import PairedAugment, collate_pairs, orient, uniform_batches
from pix2pix_zoo.errors import ZooError
from pix2pix_zoo.interfaces import PairedDataset
from pix2pix_zoo.metrics import (
    frechet_distance,
    image_metrics,
    inception_features,
    kernel_inception_distance,
    load_inception,
)
from pix2pix_zoo.perceptual import LPIPS, MIN_SIZE, load_lpips
from pix2pix_zoo.translator import Translator

Batches = Iterable[tuple[Tensor, Tensor, list[str]]]
"""(input, target, pair names) batches in [-1, 1]."""
Candidates = Callable[[Tensor, Tensor], dict[str, Tensor]]
"""(input, target) -> output per candidate; the one named ``"translator"`` also gets FID and KID."""
NO_LPIPS = ("LPIPS left out: no weights (give --lpips-weights FILE, or cache torchvision's AlexNet "
            "and install lpips)")


@dataclass
class Evaluation:
    """Means per candidate and metric, and each pair's figures; ``notes``: what was left out and
    why, one line each, for the caller to show (they are not part of the figures)."""

    split: str
    pairs: int
    means: dict[str, dict[str, float]]
    images: list[dict[str, Any]]
    setting: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """``{"split", "pairs", candidate: {metric: mean}}``: the trainer's ``eval.json``."""
        return {"split": self.split, "pairs": self.pairs, **self.means}

    def to_dict(self) -> dict[str, Any]:
        """The setting, the summary and the per-image records, ready for JSON."""
        return {**self.setting, **self.summary(), "images": self.images}


def check_output_file(path: Path) -> None:
    """Refuse, before evaluating, an --output file that could not be written: its folder must exist
    and it must not be a folder itself."""
    folder = path.parent
    if not folder.is_dir():
        problem = "is not a folder" if folder.exists() else "does not exist"
        raise ZooError(f"--output {str(path)!r}: its folder {str(folder)!r} {problem}")
    if path.is_dir():
        raise ZooError(f"--output {str(path)!r} is a folder; name a file")


def evaluate_batches(
    batches: Batches, candidates: Candidates, split: str, inception: torch.nn.Module | None = None,
    perceptual: torch.nn.Module | None = None,
) -> Evaluation:
    """Score every candidate's output against the target, pair by pair; with an Inception
    network (:func:`~pix2pix_zoo.metrics.load_inception`) add the translator's FID and KID, with an
    LPIPS network (:func:`~pix2pix_zoo.perceptual.load_lpips`) every candidate's LPIPS, unless a
    pair is too small for it: then LPIPS is left out, with a note."""
    per_image: dict[str, dict[str, list[float]]] = {}
    names: list[str] = []
    notes: list[str] = []
    features: dict[str, list[Tensor]] = {"real": [], "fake": []}
    for x, y, batch_names in batches:
        names += batch_names
        if perceptual is not None and min(y.shape[2:]) < MIN_SIZE:
            notes.append(f"LPIPS left out: {batch_names[0]!r} is {y.shape[3]} x {y.shape[2]} pixels, and LPIPS "
                         f"needs at least {MIN_SIZE} x {MIN_SIZE}")
            perceptual = None
            for metrics in per_image.values():
                metrics.pop("lpips", None)
        for candidate, output in candidates(x, y).items():
            figures = image_metrics(output, y)
            if perceptual is not None:
                with torch.no_grad():
                    figures["lpips"] = perceptual(output, y)
            for metric, values in figures.items():
                per_image.setdefault(candidate, {}).setdefault(metric, []).extend(values.tolist())
            if inception is not None and candidate == "translator":
                features["fake"].append(inception_features(inception, output))
                features["real"].append(inception_features(inception, y))
    means = {
        candidate: {metric: round(sum(values) / len(values), 5) for metric, values in metrics.items()}
        for candidate, metrics in per_image.items()
    }
    images = [
        {"name": name, **{c: {m: round(v[i], 5) for m, v in metrics.items()} for c, metrics in per_image.items()}}
        for i, name in enumerate(names)
    ]
    if inception is not None:
        real, fake = torch.cat(features["real"]), torch.cat(features["fake"])
        kid, kid_std = kernel_inception_distance(real, fake)
        fid = frechet_distance(real, fake)
        means["translator"].update(fid=round(fid, 5), kid=round(kid, 7), kid_std=round(kid_std, 7))
    return Evaluation(split, len(names), means, images, notes=notes)


def evaluate(
    translator: Translator,
    data: str,
    split: str = "test",
    *,
    data_options: dict[str, Any] | None = None,
    batch_size: int = 1,
    size: int | None = None,
    inception_weights: Path | None = None,
    lpips_weights: Path | None = None,
) -> Evaluation:
    """L1, PSNR and SSIM (and FID/KID with ``inception_weights``) of ``translator`` on a split, and
    LPIPS with ``lpips_weights`` or, without them, the weights :func:`~pix2pix_zoo.perceptual.load_lpips`
    finds; where it finds none, LPIPS is left out with a line in ``notes`` (``NO_LPIPS``).

    The direction is the card's. ``batch_size`` 1 is the reference test script's: in paper mode
    batch norm uses each batch's own statistics.
    """
    dataset = open_dataset(data, split, **(data_options or {}))
    card, info = translator.card, dataset.info
    channels = orient({"a": info.a_channels, "b": info.b_channels}, card.direction)
    if channels != (card.in_channels, card.out_channels):
        raise ZooError(
            f"the translator maps {card.in_channels} to {card.out_channels} channels ({card.direction}), "
            f"but {data!r} pairs {channels[0]} with {channels[1]} channels in that direction"
        )
    inception = load_inception(inception_weights, translator.device) if inception_weights else None
    perceptual, notes = _perceptual(lpips_weights, card.out_channels, translator.device)
    batches = prepared_batches(dataset, size, card.direction, translator.device, batch_size)
    evaluation = evaluate_batches(batches, lambda x, y: {"translator": translator.translate(x)}, split, inception,
                                  perceptual)
    evaluation.setting = {"data": data, "direction": card.direction, "mode": translator.mode,
                          "precision": translator.precision, "spec": card.spec}
    evaluation.notes = notes + evaluation.notes
    return evaluation


def prepared_batches(dataset: PairedDataset, size: int | None, direction: str, device: torch.device,
                     batch_size: int = 1) -> Batches:
    """A split's pairs as evaluation takes them, in order: the deterministic transform (no flips),
    at their own size (``size`` None) or resized to ``size`` x ``size``, one size per batch, oriented
    to ``direction``, on ``device``."""
    augment = (
        PairedAugment(preprocess="resize_and_crop", load_size=size, crop_size=size, flip=False)
        if size
        else PairedAugment(preprocess="none", size_multiple=1, flip=False)  # the pairs as they are
    )
    for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=collate_pairs):
        for group in uniform_batches(batch):  # pairs of one size at a time
            a, b = augment(group["a"].to(device), group["b"].to(device), train=False)
            x, y = orient({"a": a, "b": b}, direction)
            yield x, y, group["name"]


def _perceptual(weights: Path | None, channels: int, device: torch.device) -> tuple[LPIPS | None, list[str]]:
    """The LPIPS network for images of ``channels`` channels, and the note saying why there is none."""
    if channels not in (1, 3):
        if weights is not None:
            raise ZooError(f"--lpips-weights: LPIPS needs 1- or 3-channel images, and the translator makes {channels}")
        return None, [f"LPIPS left out: it needs 1- or 3-channel images, and the translator makes {channels}"]
    perceptual = load_lpips(weights, device)
    return perceptual, ([] if perceptual is not None else [NO_LPIPS])
