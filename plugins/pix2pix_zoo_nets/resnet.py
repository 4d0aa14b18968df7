"""ResNet generator (Johnson et al. 2016), as in the reference pix2pix/CycleGAN code.

c7s1-ngf, two stride-2 downsamplings, ``n_blocks`` residual blocks at 4*ngf, two transposed-conv
upsamplings, c7s1-out, tanh. The layer order matches the reference ``ResnetGenerator`` so that its
published weights (instance norm, no dropout) load with ``load_state_dict`` as they are.

With activation checkpointing (``set_activation_checkpointing``, ``zoo train
--activation-checkpointing``) each residual block's convolutions, and the layers before and after
the blocks, run as recomputed segments: only the blocks' inputs and outputs stay in memory until
the backward pass. The state dict and the results do not change.
"""

import functools
from typing import Literal

import torch
from torch import nn

from pix2pix_zoo import recompute
from pix2pix_zoo.components import Width
from pix2pix_zoo.layers import Norm, check_size_multiple, check_width, conv_bias, init_weights, norm_layer

Padding = Literal["reflect", "replicate", "zero"]


def _padded_conv3x3(channels: int, padding_type: Padding, bias: bool) -> list[nn.Module]:
    """A size-preserving 3x3 conv: an explicit pad layer, or the conv's own zero padding."""
    if padding_type == "reflect":
        return [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias)]
    if padding_type == "replicate":
        return [nn.ReplicationPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias)]
    if padding_type == "zero":
        return [nn.Conv2d(channels, channels, 3, padding=1, bias=bias)]
    raise ValueError(f"unknown padding_type {padding_type!r}; choose reflect, replicate or zero")


class ResidualBlock(nn.Module):
    """``x + conv_block(x)`` with two padded 3x3 convs; dropout, if any, between them."""

    def __init__(self, channels: int, *, norm: Norm, dropout: bool, padding_type: Padding):
        super().__init__()
        make_norm = norm_layer(norm)
        bias = conv_bias(norm)
        layers = [*_padded_conv3x3(channels, padding_type, bias), make_norm(channels), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [*_padded_conv3x3(channels, padding_type, bias), make_norm(channels)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResNetGenerator(nn.Module):
    """The whole generator as one ``nn.Sequential`` in ``self.model`` (the reference layout)."""

    size_multiple = 4  # two stride-2 downsamplings

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        n_blocks: int,
        ngf: int,
        norm: Norm,
        dropout: bool,
        padding_type: Padding,
    ):
        super().__init__()
        check_width("ngf", ngf)
        make_norm = norm_layer(norm)
        bias = conv_bias(norm)
        layers = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, 7, bias=bias),
            make_norm(ngf),
            nn.ReLU(True),
        ]
        for scale in (1, 2):
            layers += [
                nn.Conv2d(ngf * scale, ngf * scale * 2, 3, stride=2, padding=1, bias=bias),
                make_norm(ngf * scale * 2),
                nn.ReLU(True),
            ]
        layers += [
            ResidualBlock(ngf * 4, norm=norm, dropout=dropout, padding_type=padding_type)
            for _ in range(n_blocks)
        ]
        for scale in (4, 2):
            layers += [
                nn.ConvTranspose2d(
                    ngf * scale,
                    ngf * scale // 2,
                    3,
                    stride=2,
                    padding=1,
                    output_padding=1,  # exactly doubles the size
                    bias=bias,
                ),
                make_norm(ngf * scale // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        self.activation_checkpointing = False

    def set_activation_checkpointing(self, enabled: bool) -> None:
        """Recompute the residual blocks' convolutions, and the downsampling and upsampling layers
        around them, in the backward pass while training; evaluation and inference are unchanged."""
        self.activation_checkpointing = bool(enabled)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        check_size_multiple(image, self.size_multiple)
        if self.activation_checkpointing and recompute.applies(self):
            return self._recomputing_forward(image)
        return self.model(image)

    def _recomputing_forward(self, x: torch.Tensor) -> torch.Tensor:
        """``self.model(x)`` as segments of :func:`pix2pix_zoo.recompute.recompute`: each residual
        block's ``conv_block`` (its sum stays outside, so the block's input is kept once, as the
        previous block's output) and each run of layers between blocks. No segment starts with an
        in-place layer (a pad, a conv or a transposed conv opens each), so inputs stay as they are."""
        plain: list[nn.Module] = []
        for layer in [*self.model, None]:
            if isinstance(layer, ResidualBlock) or layer is None:
                if plain:
                    x = recompute.recompute(functools.partial(recompute.run_layers, plain), x, modules=plain)
                    plain = []
                if layer is not None:
                    x = x + recompute.recompute(layer.conv_block, x, modules=[layer.conv_block])
            else:
                plain.append(layer)
        return x


def resnet_9blocks(
    in_channels: int,
    out_channels: int,
    *,
    ngf: Width = 64,
    norm: Norm = "instance",
    dropout: bool = False,
    padding_type: Padding = "reflect",
) -> ResNetGenerator:
    """ResNet generator with 9 residual blocks (the reference's choice for 256x256 images).

    Defaults are the reference's published weights: instance norm, no dropout, reflect padding.
    ``padding_type`` applies inside the residual blocks; the 7x7 convs at both ends always use
    reflection padding, as in the reference.
    """
    options = dict(ngf=ngf, norm=norm, dropout=dropout, padding_type=padding_type)
    return init_weights(ResNetGenerator(in_channels, out_channels, n_blocks=9, **options))


def resnet_6blocks(
    in_channels: int,
    out_channels: int,
    *,
    ngf: Width = 64,
    norm: Norm = "instance",
    dropout: bool = False,
    padding_type: Padding = "reflect",
) -> ResNetGenerator:
    """ResNet generator with 6 residual blocks (the reference's choice for 128x128 images).

    Options as in :func:`resnet_9blocks`.
    """
    options = dict(ngf=ngf, norm=norm, dropout=dropout, padding_type=padding_type)
    return init_weights(ResNetGenerator(in_channels, out_channels, n_blocks=6, **options))
