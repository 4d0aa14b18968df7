"""Image-quality figures for translators and baselines: per-image L1, PSNR and SSIM (kornia), in
[0, 1] units; FID and KID of whole sets on Inception-v3 features."""

from __future__ import annotations

from pathlib import Path

import kornia.metrics
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pix2pix_zoo.errors import ZooError
from pix2pix_zoo.pictures import to_unit
from pix2pix_zoo.weights import read_weights


def image_metrics(output: Tensor, target: Tensor) -> dict[str, Tensor]:
    """Per-image L1, PSNR (dB, max 1) and SSIM (11x11 Gaussian window) of [-1, 1] batches."""
    a, b = to_unit(output), to_unit(target)
    l1 = (a - b).abs().flatten(1).mean(1)
    mse = (a - b).square().flatten(1).mean(1)
    psnr = 10 * torch.log10(1.0 / mse.clamp_min(1e-10))
    ssim = kornia.metrics.ssim(a, b, window_size=11).flatten(1).mean(1)
    return {"l1": l1, "psnr": psnr, "ssim": ssim}


# -- distribution figures: FID and KID on Inception-v3 pool features ---------------------------------
#
# Both compare the *sets* of outputs and targets, not pairs. They depend on the exact Inception
# weights: torchvision's ImageNet weights, the TF-ported weights of pytorch-fid and a random network
# all give different numbers, so compare figures only with figures from the same weights file.

INCEPTION_SIZE = 299
KID_SUBSET_SIZE = 1000  # the KID paper's subset size; smaller sets are used whole
KID_SUBSETS = 100


def load_inception(path: Path, device: torch.device) -> nn.Module:
    """torchvision's Inception-v3 with the weights in ``path`` (safetensors, or a ``.pth`` of a flat
    tensor dict read weights-only), returning 2048-d pool features; nothing is downloaded."""
    from torchvision.models import inception_v3


    if not path.is_file():
        raise ZooError(f"no Inception weights at {str(path)!r}")
    state = read_weights(path)
    # The auxiliary classifier only matters in training; torchvision's own checkpoints include it.
    state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}
    network = inception_v3(weights=None, aux_logits=False, init_weights=False)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ZooError(f"{path}: the weights do not fit torchvision's Inception-v3: {error}") from None
    network.fc = nn.Identity()  # keep the pool features, drop the classifier
    return network.eval().to(device)


def inception_features(network: nn.Module, images: Tensor) -> Tensor:
    """Pool features (float64, on the CPU) of [-1, 1] images with 1 or 3 channels.

    torchvision's ImageNet Inception normalises with the ImageNet mean and std and then, through
    ``transform_input``, maps back to ``(x - 0.5) / 0.5``: that is [-1, 1] input, which these are.
    """
    if images.shape[1] not in (1, 3):
        raise ZooError(f"FID and KID need 1- or 3-channel images, not {images.shape[1]} channels")
    images = images.float().clamp(-1, 1).expand(-1, 3, -1, -1)
    images = F.interpolate(images, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
    with torch.no_grad():
        return network(images).double().cpu()


def frechet_distance(real: Tensor, fake: Tensor) -> float:
    """FID: ``|mu_r - mu_f|^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2))`` of two feature sets, in float64.

    Tr((S_r S_f)^(1/2)) is the sum of the square roots of the eigenvalues of S_r S_f. With fewer
    images than feature dimensions it is taken from the small matrix of centred features instead:
    the nuclear norm of X_r X_f^T / sqrt((n_r - 1)(n_f - 1)), which has the same non-zero spectrum.
    """
    if min(len(real), len(fake)) < 2:
        raise ZooError("FID needs at least 2 images in each set")
    real, fake = real.double(), fake.double()
    centred_real, centred_fake = real - real.mean(0), fake - fake.mean(0)
    if min(len(real), len(fake)) <= real.shape[1]:
        scale = ((len(real) - 1) * (len(fake) - 1)) ** 0.5
        cross_trace = torch.linalg.svdvals(centred_real @ centred_fake.T).sum() / scale
    else:
        cov_real = centred_real.T @ centred_real / (len(real) - 1)
        cov_fake = centred_fake.T @ centred_fake / (len(fake) - 1)
        values, vectors = torch.linalg.eigh(cov_real)
        root = vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T  # S_r^(1/2), symmetric
        # S_r^(1/2) S_f S_r^(1/2) is symmetric with the spectrum of S_r S_f.
        cross_trace = torch.linalg.eigvalsh(root @ cov_fake @ root).clamp_min(0).sqrt().sum()
    mean_term = (real.mean(0) - fake.mean(0)).square().sum()
    trace_real = centred_real.square().sum() / (len(real) - 1)
    trace_fake = centred_fake.square().sum() / (len(fake) - 1)
    return (mean_term + trace_real + trace_fake - 2 * cross_trace).item()


def kernel_inception_distance(real: Tensor, fake: Tensor, seed: int = 0) -> tuple[float, float]:
    """KID: the unbiased MMD^2 with the kernel ``(x.y / d + 1)^3``, mean and standard deviation over
    ``KID_SUBSETS`` random subsets of ``KID_SUBSET_SIZE`` images (one subset of all when fewer)."""
    size = min(len(real), len(fake), KID_SUBSET_SIZE)
    if size < 2:
        raise ZooError("KID needs at least 2 images in each set")
    whole = size == len(real) == len(fake)
    draws = torch.Generator().manual_seed(seed)
    estimates = []
    for _ in range(1 if whole else KID_SUBSETS):
        x = real[torch.randperm(len(real), generator=draws)[:size]].double()
        y = fake[torch.randperm(len(fake), generator=draws)[:size]].double()
        estimates.append(_unbiased_mmd2(x, y))
    values = torch.stack(estimates)
    return values.mean().item(), (values.std().item() if len(values) > 1 else 0.0)


def _unbiased_mmd2(x: Tensor, y: Tensor) -> Tensor:
    dim, count = x.shape[1], len(x)

    def kernel(a: Tensor, b: Tensor) -> Tensor:
        return (a @ b.T / dim + 1) ** 3

    k_xx, k_yy = kernel(x, x), kernel(y, y)
    within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (count * (count - 1))
    return within - 2 * kernel(x, y).mean()
