"""One optimisation step of pix2pix, exactly as the paper orders it.

D first: it judges generated pairs (detached) and real pairs, and its loss (already halved by the
objective) is minimised. Then G: the discriminator, just updated, judges the generated pairs again
with gradients flowing into G; G minimises the objective's generator loss. As in the reference,
D's parameters are frozen during G's backward pass, which saves computing gradients nobody uses.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from pix2pix_zoo.spec import Pix2Pix

AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
FUSED_ADAM_DEVICES = ("cpu", "cuda", "mps", "xpu")


class Amp:
    """Mixed precision on one device: an autocast dtype and, for fp16, a gradient scaler per optimiser.

    fp32 disables both, so the same step code serves every precision.
    """

    def __init__(self, precision: Literal["fp32", "bf16", "fp16"] = "fp32", device_type: str = "cpu") -> None:
        self.precision = precision
        self.dtype = AUTOCAST_DTYPES[precision]
        self.device_type = device_type
        scale = precision == "fp16"  # bf16 has fp32's range: no loss scaling needed
        self.scalers = {
            "g": torch.amp.GradScaler(device_type, enabled=scale),
            "d": torch.amp.GradScaler(device_type, enabled=scale),
        }

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None)

    def backward_and_step(self, which: str, loss: Tensor, optimizer: torch.optim.Optimizer) -> None:
        scaler = self.scalers[which]
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    def state_dict(self) -> dict:
        return {name: scaler.state_dict() for name, scaler in self.scalers.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, scaler in self.scalers.items():
            if state.get(name):
                scaler.load_state_dict(state[name])


OPTIMIZER_IMPORTS = ("torch._dynamo",)
"""What torch.optim's optimisers import whether or not anything is compiled (``Optimizer.__init__``
and every ``step``): 1.5-2 s of a CPU, once per process. A run that compiles nothing imports it
beside its set-up (:func:`pix2pix_zoo.engine.phases.import_beside`); a compiling run imports it, and
more, on the main thread anyway."""


def make_optimizers(
    models: Pix2Pix,
    lr: float = 2e-4,
    betas: tuple[float, float] = (0.5, 0.999),
    implementation: Literal["auto", "fused", "foreach", "plain"] = "auto",
) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer | None]:
    """Adam for G and D with the paper's lr 2e-4 and betas (0.5, 0.999).

    ``auto`` picks the fused kernel (one pass over memory) on the devices torch has it for, and the
    multi-tensor (foreach) one elsewhere; all compute the plain loop's update. Fused matters on the
    CPU too: for unet_256's 54M parameters it takes about a third of the plain loop's time there,
    while foreach is slower than the plain loop on a 2-core CPU.
    """

    def adam(module: nn.Module) -> torch.optim.Optimizer:
        chosen = implementation
        if chosen == "auto":
            device = next(module.parameters()).device.type
            chosen = "fused" if device in FUSED_ADAM_DEVICES else "foreach"
        flags = {"fused": {"fused": True}, "foreach": {"foreach": True}, "plain": {"foreach": False}}[chosen]
        return torch.optim.Adam(module.parameters(), lr=lr, betas=betas, **flags)

    optimizer_d = adam(models.discriminator) if models.discriminator is not None else None
    return adam(models.generator), optimizer_d


def gan_step(
    models: Pix2Pix,
    optimizer_g: torch.optim.Optimizer,
    optimizer_d: torch.optim.Optimizer | None,
    x: Tensor,
    y: Tensor,
    amp: Amp | None = None,
    generator: nn.Module | None = None,
    discriminator: nn.Module | None = None,
    judge: nn.Module | None = None,
) -> dict[str, Tensor]:
    """Update D then G on one batch; return detached losses (no host synchronisation here).

    ``generator``, ``discriminator`` (D's step) and ``judge`` (D in G's step) default to the models'
    own; the trainer passes wrapped ones (DDP, torch.compile). The judge must not be a DDP wrapper:
    D is frozen in G's step, so there is nothing for DDP to synchronise.
    """
    amp = amp or Amp()
    objective = models.objective
    # `is None`, not `or`: a compiled module refuses bool() (it has no len()).
    generator = models.generator if generator is None else generator
    discriminator = models.discriminator if discriminator is None else discriminator
    with amp.autocast():
        fake = generator(x)
    losses: dict[str, Tensor] = {}
    if discriminator is not None and optimizer_d is not None:
        optimizer_d.zero_grad(set_to_none=True)
        with amp.autocast():
            # Fakes first, as the reference does: batch-norm running statistics depend on the order.
            fake_logits = discriminator(objective.discriminator_input(x, fake.detach()))
            real_logits = discriminator(objective.discriminator_input(x, y))
            loss_d = objective.discriminator_loss(real_logits.float(), fake_logits.float())
        amp.backward_and_step("d", loss_d, optimizer_d)
        losses["d"] = loss_d.detach()
    optimizer_g.zero_grad(set_to_none=True)
    judge = models.discriminator if judge is None else judge
    if judge is not None:
        judge.requires_grad_(False)
    with amp.autocast():
        fake_logits = judge(objective.discriminator_input(x, fake)).float() if judge is not None else None
        loss_g = objective.generator_loss(fake.float(), y, fake_logits)
    amp.backward_and_step("g", loss_g.total, optimizer_g)
    if judge is not None:
        judge.requires_grad_(True)
    losses["g"] = loss_g.total.detach()
    losses.update({f"g_{name}": term.detach() for name, term in loss_g.terms.items()})
    return losses
