"""Patch discriminators (Isola et al. 2017, section 3.2.2 and appendix 6.1.2).

Each output logit judges one ``receptive_field`` x ``receptive_field`` patch of the (condition,
image) pair. The module trees match the reference ``PixelDiscriminator`` and
``NLayerDiscriminator``, so their weights load as they are.

Where paper and reference differ we follow the reference: the output is a map of logits, with no
sigmoid (the objective applies it, which is numerically safer); convs followed by batch norm have no
bias, and in the PixelGAN neither has the final 1x1 conv unless the norm lets convs keep theirs
(see :func:`pix2pix_zoo.layers.conv_bias`). The first conv never has a norm (paper: "BatchNorm is
not applied to the first C64 layer").
"""

import torch
from torch import nn

from pix2pix_zoo.components import Width
from pix2pix_zoo.layers import Norm, check_width, conv_bias, init_weights, norm_layer


class PixelDiscriminator(nn.Module):
    """PixelGAN: 1x1 convs C64-C128 then a 1-channel logit per pixel (receptive field 1)."""

    receptive_field = 1

    def __init__(self, in_channels: int, *, ndf: int, norm: Norm):
        super().__init__()
        check_width("ndf", ndf)
        bias = conv_bias(norm)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, ndf, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 1, bias=bias),
            norm_layer(norm)(ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 1, bias=bias),
        )

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        return self.net(pair)


class PatchDiscriminator(nn.Module):
    """A stack of 4x4 convs in ``self.model``: ``n_layers`` of stride 2, then two of stride 1.

    Widths are ``ndf * min(2**i, 8)``; every conv but the first and the last is followed by the
    norm, and every one but the last by LeakyReLU(0.2).
    """

    def __init__(self, in_channels: int, *, n_layers: int, ndf: int, norm: Norm):
        super().__init__()
        make_norm = norm_layer(norm)
        bias = conv_bias(norm)
        widths = [check_width("ndf", ndf) * min(2**i, 8) for i in range(n_layers + 1)]
        layers = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        for i in range(1, n_layers + 1):
            stride = 2 if i < n_layers else 1
            layers += [
                nn.Conv2d(widths[i - 1], widths[i], 4, stride=stride, padding=1, bias=bias),
                make_norm(widths[i]),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(widths[-1], 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)
        # A 4x4 conv widens the field by 3 steps of its input's pixel spacing: 1, 2, ...,
        # 2**(n_layers-1) for the stride-2 convs, 2**n_layers for each of the two stride-1 convs.
        self.receptive_field = 1 + 3 * (2**n_layers - 1) + 2 * 3 * 2**n_layers

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        return self.model(pair)


def _patch_discriminator(in_channels: int, n_layers: int, ndf: int, norm: Norm) -> nn.Module:
    return init_weights(PatchDiscriminator(in_channels, n_layers=n_layers, ndf=ndf, norm=norm))


def pixel(in_channels: int, *, ndf: Width = 64, norm: Norm = "batch") -> PixelDiscriminator:
    """The paper's 1x1 PixelGAN (reference ``--netD pixel``)."""
    return init_weights(PixelDiscriminator(in_channels, ndf=ndf, norm=norm))


def patch16(in_channels: int, *, ndf: Width = 64, norm: Norm = "batch") -> nn.Module:
    """The paper's 16x16 PatchGAN, C64-C128 (reference ``n_layers=1``)."""
    return _patch_discriminator(in_channels, 1, ndf, norm)


def patch34(in_channels: int, *, ndf: Width = 64, norm: Norm = "batch") -> nn.Module:
    """A 34x34 PatchGAN, C64-C128-C256 (reference ``n_layers=2``; not evaluated in the paper)."""
    return _patch_discriminator(in_channels, 2, ndf, norm)


def patch70(in_channels: int, *, ndf: Width = 64, norm: Norm = "batch") -> nn.Module:
    """The paper's default 70x70 PatchGAN, C64-C128-C256-C512 (reference ``--netD basic``)."""
    return _patch_discriminator(in_channels, 3, ndf, norm)


def patch142(in_channels: int, *, ndf: Width = 64, norm: Norm = "batch") -> nn.Module:
    """A 142x142 PatchGAN, C64-C128-C256-C512-C512 (reference ``n_layers=4``; not in the paper)."""
    return _patch_discriminator(in_channels, 4, ndf, norm)


def image(in_channels: int, *, ndf: Width = 64, norm: Norm = "batch") -> nn.Module:
    """The paper's 286x286 ImageGAN, C64-C128-C256-C512-C512-C512 (reference ``n_layers=5``).

    Each logit sees more than a whole 256x256 image (zero padding fills the rest); a 256x256 input
    gives a 6x6 logit map.
    """
    return _patch_discriminator(in_channels, 5, ndf, norm)
