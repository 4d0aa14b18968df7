"""The engine's GAN step equals the paper's procedure written out by hand, the way the reference does it.

The hand-written step is the baseline loop of ``benchmarks/train_step.py``, so this also checks that
the benchmark compares against the right thing.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import torch

from pix2pix_zoo.engine.gan_step import gan_step, make_optimizers
from pix2pix_zoo.spec import resolve

_BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "train_step.py"
_spec = importlib.util.spec_from_file_location("train_step_benchmark", _BENCHMARK)
train_step_benchmark = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(train_step_benchmark)
reference_step = train_step_benchmark.reference_step


def test_gan_step_matches_the_hand_written_paper_step():
    torch.manual_seed(1)
    models = resolve("unet_128(ngf=4,dropout=false)+patch70(ndf=4)+l1cgan").build(3, 3)
    generator, discriminator = copy.deepcopy(models.generator), copy.deepcopy(models.discriminator)
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizer_g, optimizer_d = make_optimizers(models)
    assert optimizer_g.defaults["lr"] == 2e-4 and optimizer_g.defaults["betas"] == (0.5, 0.999)
    for step in range(3):
        x, y = torch.rand(2, 3, 128, 128) * 2 - 1, torch.rand(2, 3, 128, 128) * 2 - 1
        ours = gan_step(models, optimizer_g, optimizer_d, x, y)
        loss_d, loss_g = reference_step(generator, discriminator, opt_g, opt_d, x, y)
        torch.testing.assert_close(ours["d"], loss_d, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ours["g"], loss_g, rtol=1e-5, atol=1e-6)
    # Weights agree to float rounding (softplus vs BCE); a wrong order or a missing detach would
    # move them by about the learning rate (2e-4), and running statistics by far more.
    for a, b in zip(models.generator.state_dict().values(), generator.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    for a, b in zip(models.discriminator.state_dict().values(), discriminator.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
