"""Lab colour for colourisation: photos as uint8 (L, ab) pairs and the codec that shows them as RGB.

The uint8 mapping (a PairedDataset holds uint8 pixels; the engine maps them to [-1, 1] by /127.5 - 1):

* L in [0, 100]      -> round(L * 255 / 100)                 so L = 0 is -1 and L = 100 is +1;
* a, b (about ±110)  -> round(a + 128), clamped to [0, 255]  so a = 0 (grey) is 128.

Lab is CIE L*a*b* of sRGB under D65, as computed by kornia's ``rgb_to_lab``; every sRGB colour has
a and b well inside [-128, 127], so the clamp never bites on photos.
"""

from __future__ import annotations

import torch
from kornia.color import lab_to_rgb, rgb_to_lab
from torch import Tensor

from pix2pix_zoo.interfaces import ImageCodec

L_SCALE = 255 / 100
AB_OFFSET = 128


def photo_to_lab_uint8(rgb: Tensor) -> tuple[Tensor, Tensor]:
    """An RGB photo, uint8 ``[..., 3, H, W]`` -> (L ``[..., 1, H, W]``, ab ``[..., 2, H, W]``), both uint8."""
    lab = rgb_to_lab(rgb.float().div(255))
    lightness = lab[..., :1, :, :].mul(L_SCALE).round().clamp(0, 255).to(torch.uint8)
    ab = lab[..., 1:, :, :].add(AB_OFFSET).round().clamp(0, 255).to(torch.uint8)
    return lightness, ab


def chroma(rgb: Tensor) -> Tensor:
    """The Lab chroma sqrt(a² + b²) per pixel of RGB pictures ``[..., 3, H, W]`` in [0, 1] (0: grey)."""
    return rgb_to_lab(rgb)[..., 1:, :, :].square().sum(-3).sqrt()


class LabColorize(ImageCodec):
    """The generator's input is L, its output ab, both in [-1, 1] as the uint8 mapping above gives them."""

    def encode(self, rgb: Tensor) -> Tensor:
        """RGB ``[N, 3, H, W]`` in [0, 1] -> L ``[N, 1, H, W]`` in [-1, 1] (unquantised: L / 50 - 1)."""
        _expect(rgb, 3, "encode takes RGB pictures")
        return rgb_to_lab(rgb.float().clamp(0, 1))[:, :1].mul(L_SCALE / 127.5).sub(1)

    def render(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """L ``x`` ``[N, 1, H, W]`` with ab ``y`` ``[N, 2, H, W]`` -> RGB in [0, 1]; without ``y``, the grey L."""
        _expect(x, 1, "render's x is the L channel")
        lightness = x.float().add(1).mul(127.5 / L_SCALE).clamp(0, 100)
        if y is None:
            ab = lightness.new_zeros(x.shape[0], 2, *x.shape[2:])
        else:
            _expect(y, 2, "render's y is the ab channels")
            ab = y.float().add(1).mul(127.5).sub(AB_OFFSET).clamp(-AB_OFFSET, 255 - AB_OFFSET)
        return lab_to_rgb(torch.cat([lightness, ab], 1), clip=True).clamp(0, 1)


def _expect(images: Tensor, channels: int, what: str) -> None:
    if images.ndim != 4 or images.shape[1] != channels:
        raise ValueError(f"{what}: expected [N, {channels}, H, W], got {list(images.shape)}")
