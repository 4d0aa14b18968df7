"""The paper's objectives: L1, GAN, cGAN and their sums (Isola et al. 2017, eq. 1-4).

One class covers the grid: ``conditional`` decides what the discriminator sees (x and y
concatenated, or y alone), ``gan_mode`` the adversarial loss (None: no discriminator), and
``lambda_l1`` the weight of the L1 term (0: none).

Losses follow the paper and the reference implementation: the discriminator's loss is halved
("we divide the objective by 2 while optimizing D"), the generator uses the non-saturating loss
(maximise log D(x, G(x)) instead of minimising log(1 - D(x, G(x)))), and every loss is the mean
over the discriminator's patch map and the batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pix2pix_zoo.interfaces import GeneratorLoss, Objective

if TYPE_CHECKING:  # torch is imported where a loss is computed: resolving a spec builds the objective without it
    from torch import Tensor

GanMode = Literal["vanilla", "lsgan", "hinge"]


def _real_loss(logits: Tensor, mode: GanMode) -> Tensor:
    """Loss that pushes logits towards 'real'."""
    import torch.nn.functional as F

    if mode == "vanilla":
        return F.softplus(-logits).mean()  # = BCE-with-logits against 1, without a target tensor
    if mode == "lsgan":
        return (logits - 1).square().mean()
    return F.relu(1 - logits).mean()


def _fake_loss(logits: Tensor, mode: GanMode) -> Tensor:
    """Loss that pushes logits towards 'fake'."""
    import torch.nn.functional as F

    if mode == "vanilla":
        return F.softplus(logits).mean()  # = BCE-with-logits against 0
    if mode == "lsgan":
        return logits.square().mean()
    return F.relu(1 + logits).mean()


class Pix2PixObjective(Objective):
    """L1 and/or an (un)conditional GAN loss, as in the paper's ablation (Table 1)."""

    def __init__(self, *, conditional: bool, gan_mode: GanMode | None, lambda_l1: float) -> None:
        if gan_mode is None and lambda_l1 <= 0:
            raise ValueError("an objective needs an L1 term, a GAN term or both")
        if lambda_l1 < 0:
            raise ValueError(f"lambda_l1 must be >= 0, not {lambda_l1}")
        self.conditional = conditional
        self.gan_mode = gan_mode
        self.lambda_l1 = lambda_l1
        self.uses_discriminator = gan_mode is not None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(conditional={self.conditional}, gan_mode={self.gan_mode!r}, "
            f"lambda_l1={self.lambda_l1})"
        )

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        if self.gan_mode is None:
            raise RuntimeError("this objective trains no discriminator")
        return 0.5 * (_real_loss(real_logits, self.gan_mode) + _fake_loss(fake_logits, self.gan_mode))

    def generator_loss(self, fake: Tensor, target: Tensor, fake_logits: Tensor | None) -> GeneratorLoss:
        import torch.nn.functional as F

        terms: dict[str, Tensor] = {}
        if self.gan_mode is not None:
            if fake_logits is None:
                raise ValueError("a GAN objective needs the discriminator's logits for the generated images")
            # Hinge generators maximise the critic's score; the others use the non-saturating loss.
            terms["gan"] = -fake_logits.mean() if self.gan_mode == "hinge" else _real_loss(fake_logits, self.gan_mode)
        if self.lambda_l1 > 0:
            terms["l1"] = self.lambda_l1 * F.l1_loss(fake, target)
        return GeneratorLoss(sum(terms.values()), terms)  # type: ignore[arg-type]


def l1(*, lambda_l1: float = 100.0) -> Objective:
    """L1 only: no discriminator (the paper's blurry baseline); weighted like the L1 term of l1cgan."""
    return Pix2PixObjective(conditional=False, gan_mode=None, lambda_l1=lambda_l1)


def gan(*, gan_mode: GanMode = "vanilla") -> Objective:
    """Unconditional GAN only: the discriminator sees the output image alone."""
    return Pix2PixObjective(conditional=False, gan_mode=gan_mode, lambda_l1=0.0)


def cgan(*, gan_mode: GanMode = "vanilla") -> Objective:
    """Conditional GAN only: the discriminator sees input and output together."""
    return Pix2PixObjective(conditional=True, gan_mode=gan_mode, lambda_l1=0.0)


def l1gan(*, lambda_l1: float = 100.0, gan_mode: GanMode = "vanilla") -> Objective:
    """L1 + unconditional GAN (lambda 100 as in the paper)."""
    return Pix2PixObjective(conditional=False, gan_mode=gan_mode, lambda_l1=lambda_l1)


def l1cgan(*, lambda_l1: float = 100.0, gan_mode: GanMode = "vanilla") -> Objective:
    """L1 + conditional GAN, lambda 100: the paper's pix2pix objective."""
    return Pix2PixObjective(conditional=True, gan_mode=gan_mode, lambda_l1=lambda_l1)
