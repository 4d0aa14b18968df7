"""The paper's ablation grid builds from spec strings and trains one real step of D and G on CPU."""

from __future__ import annotations

import itertools

import pytest
import torch

from pix2pix_zoo.engine.gan_step import gan_step, make_optimizers
from pix2pix_zoo.spec import resolve

GENERATORS = ["encdec", "unet"]
DISCRIMINATORS = ["pixel", "patch16", "patch70", "image"]
OBJECTIVES = ["gan", "cgan", "l1gan", "l1cgan"]
GRID = [f"{g}+{d}+{o}" for g, d, o in itertools.product(GENERATORS, DISCRIMINATORS, OBJECTIVES)]
GRID += [f"{g}+l1" for g in GENERATORS]
SIZE = 256  # the 256 variants need 256x256 inputs; tiny widths keep a step cheap


def tiny(spec_text: str) -> str:
    """The same spec at test width: ngf/ndf 4 instead of 64."""
    parts = spec_text.split("+")
    parts[0] += "(ngf=4)"
    if len(parts) == 3:
        parts[1] += "(ndf=4)"
    return "+".join(parts)


def snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def changed(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return all(not torch.equal(b, p) for b, p in zip(before, module.parameters()))


def test_grid_has_the_papers_34_configurations():
    assert len(GRID) == 34
    assert len({resolve(text) for text in GRID}) == 34


@pytest.mark.parametrize("spec_text", GRID)
def test_one_real_step(spec_text):
    torch.manual_seed(0)
    spec = resolve(tiny(spec_text))
    models = spec.build(3, 3)
    assert (models.discriminator is None) == spec_text.endswith("+l1")
    if models.discriminator is not None:
        expected = 6 if models.objective.conditional else 3
        first_conv = next(m for m in models.discriminator.modules() if isinstance(m, torch.nn.Conv2d))
        assert first_conv.in_channels == expected
    x = torch.rand(1, 3, SIZE, SIZE) * 2 - 1
    y = torch.rand(1, 3, SIZE, SIZE) * 2 - 1
    optimizer_g, optimizer_d = make_optimizers(models)
    g_before = snapshot(models.generator)
    d_before = snapshot(models.discriminator) if models.discriminator is not None else None
    losses = gan_step(models, optimizer_g, optimizer_d, x, y)
    assert all(torch.isfinite(v) for v in losses.values())
    # Every parameter tensor moved: Adam's first step changes any weight with a non-zero gradient.
    assert changed(g_before, models.generator)
    if models.discriminator is not None:
        assert changed(d_before, models.discriminator)
        assert {"d", "g", "g_gan"} <= set(losses)
        assert all(p.requires_grad for p in models.discriminator.parameters())
    assert ("g_l1" in losses) == ("l1" in spec_text)
