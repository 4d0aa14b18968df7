"""Winograd's minimal filtering algorithm F(4x4, 4x4) for stride-1 4x4 convolutions.

A direct 4x4 convolution spends 16 multiplications per output pixel and input channel. Winograd's
F(4x4, 4x4) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016) computes a
4x4 tile of outputs from a 7x7 tile of inputs with 49 products per channel pair: 3.06 per output
pixel, 5.2x fewer. The products become 49 independent matrix multiplications (one per point of the
transformed tile) between transformed weights and transformed input tiles; the transforms are
small fixed matrices applied to every tile.

The matrices come from the modified Toom-Cook construction with the interpolation points
0, 1, -1, 2, -2, 1/2 and infinity, built here in exact rational arithmetic. The algorithm is exact in
real arithmetic; in float32 its rounding error is larger than a direct convolution's (about 1e-5 of
the output's largest magnitude for PatchGAN's 256->512 layer, against 3e-7), the price of fewer
multiplications that cuDNN and oneDNN also charge for their Winograd kernels. Gradients come from
autograd through the same transforms, so they are the exact gradients of this computation.

On a 2-core CPU (fp32, batch 1), PatchGAN's 256->512 convolution on 32x32 maps went from 15.5 to
7.0 ms forward and from 47 to 21 ms forward + backward.
"""

from __future__ import annotations

import functools
from fractions import Fraction
from math import prod

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TILE = 4
"""Output tile side (m)."""
KERNEL = 4
"""Kernel side (r) this module handles."""
INPUT_TILE = TILE + KERNEL - 1
"""Input tile side (n = m + r - 1)."""
MIN_CHANNELS = 128
"""Fewer input or output channels than this and the transforms cost more than the products save
(measured: 64->64 on 32x32 maps is 1.8x slower forward + backward, 128->128 1.4x faster)."""
POINTS = (Fraction(0), Fraction(1), Fraction(-1), Fraction(2), Fraction(-2), Fraction(1, 2))
"""Finite interpolation points; infinity is the last. Small magnitudes keep the rounding error low."""


def _polynomial(roots: list[Fraction]) -> list[Fraction]:
    """Coefficients (lowest power first) of the product of (x - root) over ``roots``."""
    coefficients = [Fraction(1)]
    for root in roots:
        shifted = [Fraction(0), *coefficients]  # x * p(x)
        coefficients = [high - root * low for high, low in zip(shifted, [*coefficients, Fraction(0)])]
    return coefficients


def toom_cook(m: int, r: int, points: tuple[Fraction, ...]) -> tuple[list[list[Fraction]], ...]:
    """Exact matrices ``A^T`` (m x n), ``G`` (n x r) and ``B^T`` (n x n) of the 1-D correlation
    ``y = A^T [(G g) * (B^T d)]`` with ``y[i] = sum_k g[k] d[i + k]``, from ``n - 1`` finite points and
    infinity (the transpose of Toom-Cook polynomial multiplication)."""
    n = m + r - 1
    if len(points) != n - 1:
        raise ValueError(f"F({m}, {r}) needs {n - 1} finite points, got {len(points)}")
    a_t = [[point**i for point in points] + [Fraction(int(i == m - 1))] for i in range(m)]
    g = []
    b_t = []
    for j, point in enumerate(points):
        others = [other for k, other in enumerate(points) if k != j]
        scale = prod((point - other for other in others), start=Fraction(1))
        g.append([point**k / scale for k in range(r)])
        b_t.append(_polynomial(others) + [Fraction(0)])
    g.append([Fraction(int(k == r - 1)) for k in range(r)])
    b_t.append(_polynomial(list(points)))
    return a_t, g, b_t


def _kron(a: list[list[Fraction]], b: list[list[Fraction]]) -> list[list[Fraction]]:
    return [[x * y for x in row_a for y in row_b] for row_a in a for row_b in b]


@functools.cache
def _transforms(dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """The 2-D transforms as Kronecker products: output (m^2 x n^2), weight (n^2 x r^2), input (n^2 x n^2)."""
    a_t, g, b_t = toom_cook(TILE, KERNEL, POINTS)
    return tuple(torch.tensor([[float(x) for x in row] for row in _kron(matrix, matrix)], dtype=dtype, device=device)
                 for matrix in (a_t, g, b_t))


def winograd_conv2d(input: Tensor, weight: Tensor, bias: Tensor | None, padding: tuple[int, int]) -> Tensor:
    """``F.conv2d(input, weight, bias, stride=1, padding=padding)`` for 4x4 kernels via F(4x4, 4x4).

    The output is channels-last in memory (the layout the CPU's convolutions and batch norms after
    it prefer)."""
    batch, channels, height, width = input.shape
    out_channels = weight.shape[0]
    out_height, out_width = height + 2 * padding[0] - KERNEL + 1, width + 2 * padding[1] - KERNEL + 1
    tiles_down, tiles_across = -(-out_height // TILE), -(-out_width // TILE)
    # Zeros past the bottom and right edges round the output up to whole tiles; the extra outputs are cut off.
    padded = F.pad(input, (padding[1], padding[1] + TILE * tiles_across - out_width,
                           padding[0], padding[0] + TILE * tiles_down - out_height))
    tiles = F.unfold(padded, INPUT_TILE, stride=TILE)  # (N, C * n^2, tiles)
    count = tiles.shape[-1]
    tiles = tiles.view(batch, channels, INPUT_TILE**2, count).permute(2, 1, 0, 3).reshape(INPUT_TILE**2, -1)
    output_transform, weight_transform, input_transform = _transforms(input.dtype, input.device)
    transformed_input = (input_transform @ tiles).view(INPUT_TILE**2, channels, batch * count)
    transformed_weight = (weight_transform @ weight.reshape(out_channels * channels, KERNEL**2).t())
    products = torch.bmm(transformed_weight.view(INPUT_TILE**2, out_channels, channels), transformed_input)
    output = (output_transform @ products.view(INPUT_TILE**2, -1)).view(TILE, TILE, out_channels, batch, tiles_down,
                                                                        tiles_across)
    # (N, tile row, row in tile, tile column, column in tile, C_out): channels-last once flattened.
    output = output.permute(3, 4, 0, 5, 1, 2).reshape(batch, TILE * tiles_down, TILE * tiles_across, out_channels)
    output = output[:, :out_height, :out_width].permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    if bias is not None:
        output = output + bias.view(1, -1, 1, 1)
    return output


class WinogradConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` (same parameters and state dict) computed by :func:`winograd_conv2d`."""

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return winograd_conv2d(input, weight, bias, self.padding)


def eligible(layer: nn.Module) -> bool:
    """Whether ``layer`` is a plain 2-d convolution that :class:`WinogradConv2d` computes and that is wide
    enough to gain from it: 4x4 kernel, stride 1, no dilation or groups, zero padding given as numbers,
    at least :data:`MIN_CHANNELS` input and output channels."""
    return (type(layer) is nn.Conv2d and layer.kernel_size == (KERNEL, KERNEL) and layer.stride == (1, 1)
            and min(layer.in_channels, layer.out_channels) >= MIN_CHANNELS
            and layer.dilation == (1, 1) and layer.groups == 1 and layer.padding_mode == "zeros"
            and isinstance(layer.padding, tuple))
