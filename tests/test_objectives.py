"""The paper's objectives: what D sees, halved D loss, non-saturating G loss, L1 weight, GAN modes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pix2pix_zoo.errors import SpecError
from pix2pix_zoo.spec import resolve


def objective(text: str):
    generator = "unet" if text.startswith("l1(") or text == "l1" else "unet+patch70"
    return resolve(f"{generator}+{text}").build_objective()


@pytest.mark.parametrize(
    ("name", "conditional", "uses_d", "lambda_l1"),
    [("l1", False, False, 100.0), ("gan", False, True, 0.0), ("cgan", True, True, 0.0),
     ("l1gan", False, True, 100.0), ("l1cgan", True, True, 100.0)],
)
def test_grid_of_objectives(name, conditional, uses_d, lambda_l1):
    obj = objective(name)
    assert (obj.conditional, obj.uses_discriminator, obj.lambda_l1) == (conditional, uses_d, lambda_l1)
    x, y = torch.randn(2, 3, 8, 8), torch.randn(2, 2, 8, 8)
    seen = obj.discriminator_input(x, y)
    if conditional:
        assert obj.discriminator_in_channels(3, 2) == 5 and torch.equal(seen, torch.cat([x, y], 1))
    else:
        assert obj.discriminator_in_channels(3, 2) == 2 and seen is y


def test_vanilla_losses_match_the_reference_bce_formulation():
    torch.manual_seed(0)
    real, fake = torch.randn(4, 1, 30, 30), torch.randn(4, 1, 30, 30)
    out, target = torch.rand(4, 3, 16, 16) * 2 - 1, torch.rand(4, 3, 16, 16) * 2 - 1
    obj = objective("l1cgan")
    bce = torch.nn.BCEWithLogitsLoss()
    expected_d = 0.5 * (bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake)))
    torch.testing.assert_close(obj.discriminator_loss(real, fake), expected_d)
    loss = obj.generator_loss(out, target, fake)
    torch.testing.assert_close(loss.terms["gan"], bce(fake, torch.ones_like(fake)))  # non-saturating
    torch.testing.assert_close(loss.terms["l1"], 100 * (out - target).abs().mean())
    torch.testing.assert_close(loss.total, loss.terms["gan"] + loss.terms["l1"])


def test_non_saturating_generator_gradient_does_not_vanish():
    # Early in training D rejects fakes confidently; log(1 - D) would give ~0 gradient there.
    logits = torch.full((1, 1, 4, 4), -12.0, requires_grad=True)
    obj = objective("cgan")
    obj.generator_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), logits).total.backward()
    assert torch.allclose(logits.grad, torch.full_like(logits, -1 / 16), atol=1e-6)


def test_lsgan_and_hinge_modes():
    real, fake = torch.randn(2, 1, 5, 5), torch.randn(2, 1, 5, 5)
    ls = objective("l1cgan(gan_mode=lsgan)")
    torch.testing.assert_close(ls.discriminator_loss(real, fake), 0.5 * (F.mse_loss(real, torch.ones_like(real)) + F.mse_loss(fake, torch.zeros_like(fake))))
    torch.testing.assert_close(ls.generator_loss(fake, fake, fake).terms["gan"], F.mse_loss(fake, torch.ones_like(fake)))
    hinge = objective("gan(gan_mode=hinge)")
    torch.testing.assert_close(hinge.discriminator_loss(real, fake), 0.5 * (F.relu(1 - real).mean() + F.relu(1 + fake).mean()))
    g = hinge.generator_loss(fake, fake, fake)
    torch.testing.assert_close(g.total, -fake.mean())
    assert set(g.terms) == {"gan"}


def test_l1_only_needs_no_logits_and_lambda_is_an_option():
    obj = objective("l1(lambda_l1=3)")
    out, target = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)
    loss = obj.generator_loss(out, target, None)
    assert set(loss.terms) == {"l1"} and loss.total.item() == pytest.approx(3.0)
    with pytest.raises(RuntimeError, match="no discriminator"):
        obj.discriminator_loss(torch.zeros(1), torch.zeros(1))


def test_gan_objective_without_logits_is_an_error():
    with pytest.raises(ValueError, match="logits"):
        objective("l1cgan").generator_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), None)


def test_gan_modes_are_validated():
    with pytest.raises(SpecError, match="vanilla, lsgan, hinge"):
        objective("l1cgan(gan_mode=wgan)")
