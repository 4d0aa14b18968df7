"""Image-quality figures for translators and baselines: L1, PSNR and SSIM (kornia), in [0, 1] units."""

from __future__ import annotations

import kornia.metrics
import torch
from torch import Tensor


def to_unit(images: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1], clamped (a generator's tanh output may touch the ends)."""
    return ((images.float() + 1) / 2).clamp(0, 1)


def image_metrics(output: Tensor, target: Tensor) -> dict[str, Tensor]:
    """Per-image L1, PSNR (dB, max 1) and SSIM (11x11 Gaussian window) of [-1, 1] batches."""
    a, b = to_unit(output), to_unit(target)
    l1 = (a - b).abs().flatten(1).mean(1)
    mse = (a - b).square().flatten(1).mean(1)
    psnr = 10 * torch.log10(1.0 / mse.clamp_min(1e-10))
    ssim = kornia.metrics.ssim(a, b, window_size=11).flatten(1).mean(1)
    return {"l1": l1, "psnr": psnr, "ssim": ssim}
