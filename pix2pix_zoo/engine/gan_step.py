"""One optimisation step of pix2pix, exactly as the paper orders it.

D first: it judges real pairs and detached generated pairs, and its loss (already halved by the
objective) is minimised. Then G: the discriminator, just updated, judges the generated pairs again
with gradients flowing into G; G minimises the objective's generator loss. As in the reference,
D's parameters are frozen during G's backward pass, which saves computing gradients nobody uses.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pix2pix_zoo.spec import Pix2Pix


def make_optimizers(
    models: Pix2Pix, lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999)
) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer | None]:
    """Adam for G and D with the paper's lr 2e-4 and betas (0.5, 0.999)."""
    optimizer_g = torch.optim.Adam(models.generator.parameters(), lr=lr, betas=betas)
    optimizer_d = None
    if models.discriminator is not None:
        optimizer_d = torch.optim.Adam(models.discriminator.parameters(), lr=lr, betas=betas)
    return optimizer_g, optimizer_d


def gan_step(
    models: Pix2Pix,
    optimizer_g: torch.optim.Optimizer,
    optimizer_d: torch.optim.Optimizer | None,
    x: Tensor,
    y: Tensor,
) -> dict[str, Tensor]:
    """Update D then G on one batch; return detached losses (no host synchronisation here)."""
    objective, generator, discriminator = models.objective, models.generator, models.discriminator
    fake = generator(x)
    losses: dict[str, Tensor] = {}
    if discriminator is not None and optimizer_d is not None:
        optimizer_d.zero_grad(set_to_none=True)
        # Fakes first, as the reference does: batch-norm running statistics depend on the order.
        fake_logits = discriminator(objective.discriminator_input(x, fake.detach()))
        real_logits = discriminator(objective.discriminator_input(x, y))
        loss_d = objective.discriminator_loss(real_logits, fake_logits)
        loss_d.backward()
        optimizer_d.step()
        losses["d"] = loss_d.detach()
    optimizer_g.zero_grad(set_to_none=True)
    fake_logits = None
    if discriminator is not None:
        discriminator.requires_grad_(False)
        fake_logits = discriminator(objective.discriminator_input(x, fake))
    loss_g = objective.generator_loss(fake, y, fake_logits)
    loss_g.total.backward()
    if discriminator is not None:
        discriminator.requires_grad_(True)
    optimizer_g.step()
    losses["g"] = loss_g.total.detach()
    losses.update({f"g_{name}": term.detach() for name, term in loss_g.terms.items()})
    return losses
