"""U-Net generators and the paper's encoder-decoder (Isola et al. 2017, appendix 6.1.1).

Both are built from the same nested blocks, one per resolution level: the outermost block holds the
next one, and so on down to the innermost (1x1 at 256x256 input). In the U-Net every block but the
outermost concatenates its input to its output (the skip connection); the encoder-decoder does not.

The module tree mirrors the reference PyTorch implementation (``UnetGenerator``), so its published
weights load with ``load_state_dict`` as they are. Where the reference departs from the paper we
follow the reference for the U-Net:

* the innermost encoder conv has no norm (batch norm of a 1x1 map in a batch of one erases it);
* dropout sits in the three (unet_128: two) decoder layers next to the innermost one, whereas the
  paper and the original Torch code put it in the first three decoder layers, the innermost one
  included (``CD512-CD1024-CD1024-C1024``);
* convolutions followed by batch norm have no bias, and the outermost encoder conv, which has no
  norm, has a bias only where the other convs do (see :func:`pix2pix_zoo.layers.conv_bias`).

The paper defines the encoder-decoder as the U-Net without its skips, so ours is exactly that:
the same levels, widths and dropout placement, minus the concatenations. The ablation then
changes one thing only.

With activation checkpointing (``set_activation_checkpointing``, ``zoo train
--activation-checkpointing``) each of the outermost levels, where the large maps are, runs as two
recomputed segments, its downsampling half and its upsampling half, the deeper levels between them;
only the segments' inputs stay in memory until the backward pass. The state dict and the results
do not change (see :meth:`UNetBlock.recomputed_output`).
"""

import functools

import torch
import torch.nn.functional as F
from torch import nn

from pix2pix_zoo import recompute
from pix2pix_zoo.components import Width
from pix2pix_zoo.layers import Norm, check_size_multiple, check_width, conv_bias, init_weights, norm_layer


RECOMPUTED_LEVELS = 3
"""With activation checkpointing, how many of the outermost levels recompute. A level down keeps half
as much for the backward pass (a quarter of the positions, twice the channels) for about the same
work, until the channels stop doubling: deeper levels would recompute much for little memory. For
unet_256 at 512x512 the forward pass keeps 83 MiB instead of 146 and the step recomputes 26 GFLOP;
recomputing every level would keep 64 MiB for 48 GFLOP (the step's whole work is about 360)."""


class UNetBlock(nn.Module):
    """One resolution level: downsample, run ``submodule`` (the next level), upsample.

    ``outer_channels`` is the width of the level's output (and input, unless ``in_channels`` says
    otherwise); ``inner_channels`` the width after downsampling. ``submodule=None`` makes this the
    innermost level. The layers live in ``self.model`` in the reference order.
    """

    def __init__(
        self,
        outer_channels: int,
        inner_channels: int,
        *,
        in_channels: int | None = None,
        submodule: "UNetBlock | None" = None,
        outermost: bool = False,
        norm: Norm = "batch",
        dropout: bool = False,
        skip: bool = True,
    ):
        super().__init__()
        in_channels = outer_channels if in_channels is None else in_channels
        make_norm = norm_layer(norm)
        bias = conv_bias(norm)
        self.outermost = outermost
        self.concat_input = skip and not outermost
        # A skip-connected submodule hands back its input and output side by side.
        up_in_channels = 2 * inner_channels if submodule is not None and skip else inner_channels

        down_conv = nn.Conv2d(in_channels, inner_channels, 4, stride=2, padding=1, bias=bias)
        if outermost:
            up_conv = nn.ConvTranspose2d(up_in_channels, outer_channels, 4, stride=2, padding=1)
            layers = [down_conv, submodule, nn.ReLU(True), up_conv, nn.Tanh()]
        else:
            up_conv = nn.ConvTranspose2d(
                up_in_channels, outer_channels, 4, stride=2, padding=1, bias=bias
            )
            down = [nn.LeakyReLU(0.2, True), down_conv]
            if submodule is not None:
                down += [make_norm(inner_channels), submodule]
            layers = [*down, nn.ReLU(True), up_conv, make_norm(outer_channels)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model(x)
        # The in-place LeakyReLU opening self.model has rewritten x by now, as in the reference;
        # harmless, since the parent level's ReLU comes next: relu(leaky_relu(x)) == relu(x).
        return torch.cat([x, y], 1) if self.concat_input else y

    def recomputed_output(self, x: torch.Tensor, levels: int) -> torch.Tensor:
        """``y`` of :meth:`forward` (the output before the skip concatenation), with this level's
        halves and the deeper levels' run through :func:`pix2pix_zoo.recompute.recompute`.

        The downsampling half (LeakyReLU, conv, norm) and the upsampling half (the skip
        concatenation, ReLU, transposed conv, norm, dropout) are a segment each: between the forward
        and the backward pass only their inputs stay, the downsampled map and the deeper level's
        ``y``. The concatenation moves into the parent's upsampling half, so the concatenated map
        is never kept either. Inputs are never modified, so the opening activations run out of place:
        the skip then carries ``x`` itself rather than ``leaky_relu(x)``, and the parent's ReLU
        makes the two equal, values and gradients (``relu'(x) == relu'(leaky_relu(x)) *
        leaky_relu'(x)``). Dropout draws its masks in the plain forward pass's order, and the
        recomputation draws them again from the same state. The outermost downsampling (a conv of
        the input image, which the caller keeps anyway) gains nothing from it and runs plainly, and
        below the ``levels`` outermost levels the deeper ones run as they are (see
        :data:`RECOMPUTED_LEVELS`).
        """
        layers = list(self.model)
        if not self.outermost:
            layers[0] = functools.partial(F.leaky_relu, negative_slope=layers[0].negative_slope)
        split = next((i for i, layer in enumerate(layers) if isinstance(layer, UNetBlock)), None)
        if split is None:  # the innermost level: one segment, its maps are the smallest
            return recompute.recompute(functools.partial(recompute.run_layers, layers), x, modules=layers)
        down, inner, up = layers[:split], layers[split], layers[split + 1:]
        up[0] = F.relu  # out of place: the deeper level's y is this segment's input
        if self.outermost:
            h = recompute.run_layers(down, x)
        else:
            h = recompute.recompute(functools.partial(recompute.run_layers, down), x, modules=down)
        if levels <= 1:
            inner_output = inner(h)  # the deeper levels as they are, h rewritten in place as ever
            return recompute.recompute(functools.partial(recompute.run_layers, up), inner_output, modules=up)
        y = inner.recomputed_output(h, levels - 1)
        if inner.concat_input:
            return recompute.recompute(functools.partial(_concatenate_then, up), h, y, modules=up)
        return recompute.recompute(functools.partial(recompute.run_layers, up), y, modules=up)


def _concatenate_then(layers: list, skip: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A deeper level's skip concatenation, then ``layers``: the upsampling half of a U-Net level."""
    return recompute.run_layers(layers, torch.cat([skip, y], 1))


class UNetGenerator(nn.Module):
    """Nested :class:`UNetBlock` levels, the outermost in ``self.model``, with a size check."""

    def __init__(self, outermost: UNetBlock, size_multiple: int):
        super().__init__()
        self.model = outermost
        self.size_multiple = size_multiple
        self.activation_checkpointing = False
        self.recomputed_levels = RECOMPUTED_LEVELS

    def set_activation_checkpointing(self, enabled: bool) -> None:
        """Recompute the halves of the ``recomputed_levels`` outermost levels in the backward pass while
        training (see :meth:`UNetBlock.recomputed_output`); evaluation and inference are unchanged."""
        self.activation_checkpointing = bool(enabled)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        check_size_multiple(image, self.size_multiple)
        if self.activation_checkpointing and recompute.applies(self):
            return self.model.recomputed_output(image, self.recomputed_levels)
        return self.model(image)


def _build_unet(
    in_channels: int, out_channels: int, *, num_downs: int, ngf: int, norm: Norm, dropout: bool, skip: bool
) -> UNetGenerator:
    """A U-Net (``skip=True``) or encoder-decoder with ``num_downs`` stride-2 levels.

    Encoder widths are ``ngf * min(2**level, 8)``. With ``dropout``, the ``num_downs - 5`` decoder
    layers next to the innermost one get it (the reference's placement: 3 for 256, 2 for 128).
    """
    widths = [check_width("ngf", ngf) * min(2**level, 8) for level in range(num_downs)]
    block = None
    for level in reversed(range(num_downs)):
        outermost = level == 0
        block = UNetBlock(
            out_channels if outermost else widths[level - 1],
            widths[level],
            in_channels=in_channels if outermost else None,
            submodule=block,
            outermost=outermost,
            norm=norm,
            dropout=dropout and 4 <= level < num_downs - 1,  # the 512 -> 512 levels bar the innermost
            skip=skip,
        )
    return init_weights(UNetGenerator(block, size_multiple=2**num_downs))


def unet_256(
    in_channels: int, out_channels: int, *, ngf: Width = 64, norm: Norm = "batch", dropout: bool = True
) -> UNetGenerator:
    """The paper's U-Net generator for 256x256 images: 8 downsamplings, reference layout."""
    return _build_unet(in_channels, out_channels, num_downs=8, ngf=ngf, norm=norm, dropout=dropout, skip=True)


def unet_128(
    in_channels: int, out_channels: int, *, ngf: Width = 64, norm: Norm = "batch", dropout: bool = True
) -> UNetGenerator:
    """The reference's U-Net for 128x128 images: 7 downsamplings (one fewer 512-wide level)."""
    return _build_unet(in_channels, out_channels, num_downs=7, ngf=ngf, norm=norm, dropout=dropout, skip=True)


def encdec_256(
    in_channels: int, out_channels: int, *, ngf: Width = 64, norm: Norm = "batch", dropout: bool = True
) -> UNetGenerator:
    """The paper's encoder-decoder baseline for 256x256: :func:`unet_256` without skip connections.

    Encoder C64-C128-C256-C512-C512-C512-C512-C512, decoder of 512-512-512-512-256-128-64 channels
    with dropout where :func:`unet_256` has it, then a transposed conv to ``out_channels`` and tanh.
    """
    return _build_unet(in_channels, out_channels, num_downs=8, ngf=ngf, norm=norm, dropout=dropout, skip=False)


def encdec_128(
    in_channels: int, out_channels: int, *, ngf: Width = 64, norm: Norm = "batch", dropout: bool = True
) -> UNetGenerator:
    """The encoder-decoder for 128x128: :func:`unet_128` without skip connections."""
    return _build_unet(in_channels, out_channels, num_downs=7, ngf=ngf, norm=norm, dropout=dropout, skip=False)
