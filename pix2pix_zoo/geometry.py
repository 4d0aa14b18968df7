"""Where a translator's images are padded and tiled: sizes only, no pixels, so the torch and the
onnxruntime ways of running a translator pad and tile alike."""

from __future__ import annotations

import math

from pix2pix_zoo.errors import ZooError


def padding_steps(height: int, width: int, multiple: int) -> tuple[list[list[int]], list[int], tuple[int, int]]:
    """How an image of ``height`` x ``width`` is padded to multiples of ``multiple``, split evenly
    between the two sides: reflections (each ``[left, right, top, bottom]``), then the rest by
    replication (all zero but for a side of one pixel), and the (top, left) offset of the original.

    Reflection (which has no seam) needs the pad to be smaller than the side, so a side much
    smaller than the multiple is reflected repeatedly, and a side of one pixel is replicated.
    """
    extra_height, extra_width = -height % multiple, -width % multiple
    top, left = extra_height // 2, extra_width // 2
    pads = [left, extra_width - left, top, extra_height - top]
    reflections = []
    while any(pads):
        step = [min(pads[0], width - 1), min(pads[1], width - 1), min(pads[2], height - 1), min(pads[3], height - 1)]
        if not any(step):  # a side of one pixel: nothing to reflect
            break
        reflections.append(step)
        width, height = width + step[0] + step[1], height + step[2] + step[3]
        pads = [p - s for p, s in zip(pads, step)]
    return reflections, pads, (top, left)


def aligned_tiling(tile: int | None, overlap: int, multiple: int) -> tuple[int | None, int]:
    """``tile`` and ``overlap`` rounded to ``multiple`` (the tile down, the overlap up; None: never
    tile); one-line errors for values that cannot tile."""
    if tile is None:
        return None, 0
    if tile < 1 or overlap < 0:
        raise ZooError(f"tile must be at least 1 and overlap at least 0, not tile {tile} and overlap {overlap}")
    aligned_tile = max(multiple, tile // multiple * multiple)
    aligned_overlap = math.ceil(overlap / multiple) * multiple
    if aligned_overlap >= aligned_tile:
        raise ZooError(
            f"tile {tile} is too small for overlap {overlap}: both are rounded to this translator's size "
            f"multiple {multiple}, and the tile must be at least {aligned_overlap + multiple} to exceed the overlap"
        )
    return aligned_tile, aligned_overlap
