"""synthfacades: procedural facade label maps (A) and rendered facade photos (B), no download.

A is a label map in the style of the CMP Facade Database that the paper's ``facades`` task uses:
flat colours for background, wall, windows, doors, cornices, sills, balconies, blinds, decoration,
moldings, pillars and shops, laid out on a grid of floors and bays with per-building variations.
B renders the same facade as a photo. Much of B is random given A, so this is a real translation
problem, not a colour lookup: wall colour, brick or plaster texture and its phase, window
reflections, curtains, shadow lengths, lighting and sensor grain all vary with nothing in the
label map to say how. An L1-only model can only predict their average, a blur; an adversarial
loss has to commit to one sharp sample, as on the real facades.

Every pair is a pure function of (seed, split, index): a numpy Generator seeded with those three
numbers draws everything, so a pair is the same in every process and every run, and the splits
are separate random streams that never share a pair. Rendering is vectorised array work plus one
slice assignment per painted rectangle: a 256x256 pair takes a few milliseconds.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from pix2pix_zoo.errors import DataError, SpecError
from pix2pix_zoo.interfaces import PairedDataset, describe_dataset
from pix2pix_zoo_datasets.infos import SYNTHFACADES as INFO

# The label classes of the CMP facades, and the colours their label maps draw them in.
BACKGROUND, FACADE, WINDOW, DOOR, CORNICE, SILL, BALCONY, BLIND, DECO, MOLDING, PILLAR, SHOP = range(12)
LABEL_COLOURS = np.array(
    [
        (0, 0, 170),  # background
        (0, 0, 255),  # facade (wall)
        (0, 85, 255),  # window
        (0, 170, 255),  # door
        (0, 255, 255),  # cornice
        (85, 255, 170),  # sill
        (170, 255, 85),  # balcony
        (255, 255, 0),  # blind (shutter)
        (255, 170, 0),  # deco
        (255, 85, 0),  # molding
        (255, 0, 0),  # pillar
        (170, 0, 0),  # shop
    ],
    dtype=np.uint8,
)
OVERHANGS = (CORNICE, SILL, BALCONY, DECO, MOLDING)  # what casts a shadow on the wall below it
_SUN_SHIFT = 3  # pixels a shadow may fall to either side

SPLIT_SIZES = INFO.sizes
SPLIT_STREAMS = {"train": 0, "val": 1, "test": 2}
MIN_SIZE = 32

# Wall colours (linear 0-1 RGB) of plastered and of brick buildings.
PLASTER_COLOURS = np.array(
    [
        (0.86, 0.79, 0.63), (0.80, 0.62, 0.36), (0.82, 0.58, 0.48), (0.63, 0.63, 0.61),
        (0.89, 0.88, 0.84), (0.90, 0.82, 0.56), (0.60, 0.66, 0.70), (0.80, 0.63, 0.63),
    ],
    dtype=np.float32,
)
BRICK_COLOURS = np.array(
    [(0.62, 0.30, 0.22), (0.50, 0.33, 0.25), (0.76, 0.63, 0.44), (0.55, 0.24, 0.20)], dtype=np.float32
)
SHUTTER_COLOURS = np.array(
    [(0.25, 0.42, 0.28), (0.45, 0.30, 0.20), (0.88, 0.88, 0.85), (0.42, 0.52, 0.62), (0.60, 0.22, 0.18)],
    dtype=np.float32,
)
FRAME_COLOURS = np.array(
    [(0.92, 0.92, 0.90), (0.35, 0.24, 0.16), (0.15, 0.16, 0.17), (0.55, 0.55, 0.52)], dtype=np.float32
)


class SynthFacades(PairedDataset):
    """``count`` generated pairs of one split, each ``size`` x ``size``."""

    info = INFO

    def __init__(self, split: str, *, size: int = 256, seed: int = 0, count: int = 0) -> None:
        if split not in SPLIT_SIZES:
            raise DataError(f"synthfacades has no split {split!r}; its splits are {', '.join(SPLIT_SIZES)}")
        self.split, self.size, self.seed = split, size, seed
        self.count = count or SPLIT_SIZES[split]

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict:
        if not -self.count <= index < self.count:
            raise IndexError(f"synthfacades {self.split} has {self.count} pairs, not {index + 1}")
        index %= self.count
        rng = np.random.default_rng([self.seed, SPLIT_STREAMS[self.split], index])
        canvas = _layout(rng, self.size)
        photo = _render(rng, canvas)
        return {
            "a": torch.from_numpy(LABEL_COLOURS[canvas.labels]).permute(2, 0, 1),
            "b": torch.from_numpy(photo).permute(2, 0, 1),
            "name": f"{self.split}/{index:05d}",
        }


@describe_dataset(INFO)
def synthfacades(root: Path, split: str, *, size: int = 256, seed: int = 0, count: int = 0) -> SynthFacades:
    """Procedural facade label maps -> photos; ``root`` is ignored (nothing is downloaded or stored)."""
    if size < MIN_SIZE:
        raise SpecError(f"option 'size' must be at least {MIN_SIZE}, not {size}")
    if seed < 0:
        raise SpecError(f"option 'seed' must be 0 or more, not {seed}")
    if count < 0:
        raise SpecError(f"option 'count' must be 0 (the split's default size) or more, not {count}")
    return SynthFacades(split, size=size, seed=seed, count=count)



class _Canvas:
    """The label map being painted, with per-pixel facts about the rectangle each pixel came from.

    ``tone`` is a random number per rectangle (window-to-window variation), ``u``/``v`` the pixel's
    position inside its rectangle from 0 (left/top) to 1 (right/bottom): the renderer draws frames,
    panels, reflections and shading from them.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.labels = np.full((size, size), BACKGROUND, dtype=np.uint8)
        self.tone = np.zeros((size, size), dtype=np.float32)
        self.u = np.zeros((size, size), dtype=np.float32)
        self.v = np.zeros((size, size), dtype=np.float32)

    def paint(self, label: int, top: float, bottom: float, left: float, right: float, tone: float = 0.5) -> None:
        """Fill a rectangle given in (fractional) pixels; the parts outside the image are dropped."""
        y0, y1 = round(top), round(bottom)
        x0, x1 = round(left), round(right)
        if y1 <= y0 or x1 <= x0:
            return
        rows = slice(max(y0, 0), min(y1, self.size))
        columns = slice(max(x0, 0), min(x1, self.size))
        self.labels[rows, columns] = label
        self.tone[rows, columns] = tone
        # Positions in the whole rectangle, not its visible part: a frame cut by the image edge stays a frame.
        self.u[rows, columns] = (np.arange(columns.start, columns.stop, dtype=np.float32) + 0.5 - x0) / (x1 - x0)
        self.v[rows, columns] = ((np.arange(rows.start, rows.stop, dtype=np.float32) + 0.5 - y0) / (y1 - y0))[:, None]


def _layout(rng: np.random.Generator, size: int) -> _Canvas:
    """Draw one building: a wall with a roof cornice, a ground floor and a grid of windows."""
    canvas = _Canvas(size)
    paint = canvas.paint
    s = float(size)
    left = s * rng.uniform(0.0, 0.12) if rng.random() < 0.6 else 0.0
    right = s - (s * rng.uniform(0.0, 0.12) if rng.random() < 0.6 else 0.0)
    roof = s * rng.uniform(0.02, 0.18)
    paint(FACADE, roof, s, left, right)
    width = right - left

    top = roof
    if rng.random() < 0.85:
        cornice = s * rng.uniform(0.02, 0.045)
        paint(CORNICE, roof, roof + cornice, left - s * 0.01, right + s * 0.01)
        top = roof + cornice
    ground_top = s - (s - roof) * rng.uniform(0.18, 0.3)
    floors = int(rng.integers(2, 6))
    floor_height = (ground_top - top) / floors
    bays = int(min(rng.integers(2, 7), max(2, width // (s * 0.11))))
    bay = width / bays

    # Per-building style.
    window_width = bay * rng.uniform(0.35, 0.62)
    window_height = floor_height * rng.uniform(0.45, 0.72)
    window_offset = (floor_height - window_height) * rng.uniform(0.3, 0.55)
    trim = s * rng.uniform(0.008, 0.016)
    has_shutters = rng.random() < 0.35
    has_molding = rng.random() < 0.4
    has_deco = rng.random() < 0.3
    has_sills = rng.random() < 0.7
    has_string_courses = rng.random() < 0.45
    balconies = rng.choice(["none", "window", "floor"], p=[0.5, 0.3, 0.2])
    pillars = rng.choice(["none", "ground", "full"], p=[0.65, 0.2, 0.15])

    if pillars != "none":
        pillar_width = bay * rng.uniform(0.07, 0.13)
        for edge in range(bays + 1):
            x = left + edge * bay
            paint(PILLAR, ground_top if pillars == "ground" else top, s, x - pillar_width / 2, x + pillar_width / 2)
    if has_string_courses:
        for floor in range(1, floors + 1):
            y = top + floor * floor_height
            paint(CORNICE, y - trim, y + trim * 0.5, left, right)

    for floor in range(floors):
        window_top = top + floor * floor_height + window_offset
        window_bottom = window_top + window_height
        balcony_here = balconies != "none" and rng.random() < 0.6
        for column in range(bays):
            x0 = left + column * bay + (bay - window_width) / 2
            x1 = x0 + window_width
            if has_molding:
                paint(MOLDING, window_top - trim, window_bottom + trim, x0 - trim, x1 + trim)
            if has_deco:
                paint(DECO, window_top - trim * 3.5, window_top - trim, x0 - trim * 1.5, x1 + trim * 1.5)
            closed = has_shutters and rng.random() < 0.15
            paint(BLIND if closed else WINDOW, window_top, window_bottom, x0, x1, tone=rng.random())
            if has_shutters and not closed:
                shutter = min(window_width * 0.45, (bay - window_width) / 2 - trim)
                paint(BLIND, window_top, window_bottom, x0 - shutter, x0, tone=rng.random())
                paint(BLIND, window_top, window_bottom, x1, x1 + shutter, tone=rng.random())
            if has_sills:
                paint(SILL, window_bottom, window_bottom + trim * 1.2, x0 - trim, x1 + trim)
            if balcony_here and balconies == "window":
                paint(BALCONY, window_bottom - window_height * 0.3, window_bottom + trim, x0 - trim * 2, x1 + trim * 2)
        if balcony_here and balconies == "floor":
            paint(BALCONY, window_bottom - window_height * 0.3, window_bottom + trim, left, right)

    _ground_floor(rng, canvas, ground_top, left, bay, bays)
    return canvas


def _ground_floor(
    rng: np.random.Generator, canvas: _Canvas, ground_top: float, left: float, bay: float, bays: int
) -> None:
    """A door in one bay; shop windows or ordinary windows in the others."""
    s = float(canvas.size)
    height = s - ground_top
    door_bay = int(rng.integers(bays))
    shop_top = ground_top + height * rng.uniform(0.12, 0.25) if rng.random() < 0.5 else None
    window_width = bay * rng.uniform(0.35, 0.6)
    window_top = ground_top + height * rng.uniform(0.15, 0.3)
    window_bottom = window_top + height * rng.uniform(0.4, 0.55)
    door_width = bay * rng.uniform(0.35, 0.6)
    door_top = s - height * rng.uniform(0.65, 0.85)
    for column in range(bays):
        middle = left + (column + 0.5) * bay
        if column == door_bay:
            canvas.paint(DOOR, door_top, s, middle - door_width / 2, middle + door_width / 2, tone=rng.random())
        elif shop_top is not None:
            half = bay * rng.uniform(0.35, 0.42)
            canvas.paint(SHOP, shop_top, s * 0.99, middle - half, middle + half, tone=rng.random())
        else:
            half = window_width / 2
            canvas.paint(WINDOW, window_top, window_bottom, middle - half, middle + half, tone=rng.random())


class _Pixels:
    """The pixels of some classes, flattened: where they are and what their rectangles say about them.

    Each attribute is gathered on first use only: a material reads two or three of them.
    """

    def __init__(self, canvas: _Canvas, classes: tuple[int, ...]) -> None:
        self.canvas = canvas
        self.index = np.flatnonzero(_mask(canvas.labels, classes))

    def of(self, image: np.ndarray) -> np.ndarray:
        """The values of a full ``[size, size]`` map at these pixels."""
        return image.ravel()[self.index]

    @functools.cached_property
    def y(self) -> np.ndarray:
        return (self.index // self.canvas.size).astype(np.float32)

    @functools.cached_property
    def x(self) -> np.ndarray:
        return (self.index % self.canvas.size).astype(np.float32)

    @functools.cached_property
    def label(self) -> np.ndarray:
        return self.of(self.canvas.labels)

    @functools.cached_property
    def tone(self) -> np.ndarray:
        return self.of(self.canvas.tone)

    @functools.cached_property
    def u(self) -> np.ndarray:
        return self.of(self.canvas.u)

    @functools.cached_property
    def v(self) -> np.ndarray:
        return self.of(self.canvas.v)


def _render(rng: np.random.Generator, canvas: _Canvas) -> np.ndarray:
    """The photo of a painted facade: ``uint8 [size, size, 3]``.

    Each material is computed on its own pixels only (flat index arrays), then light and noise
    over the whole image.
    """
    size = canvas.size
    photo = np.empty((size * size, 3), np.float32)

    def draw(classes: tuple[int, ...], material) -> None:
        pixels = _Pixels(canvas, classes)
        if pixels.index.size:
            photo[pixels.index] = material(pixels)

    brick = rng.random() < 0.35
    wall_colour = (BRICK_COLOURS if brick else PLASTER_COLOURS)[rng.integers(4 if brick else 8)]
    wall_colour = np.clip(wall_colour + rng.normal(0, 0.04, 3), 0.05, 0.95).astype(np.float32)
    # Stone trim: a lighter, less saturated version of the wall, or near white.
    trim_colour = wall_colour * 0.4 + 0.55 if rng.random() < 0.6 else np.full(3, rng.uniform(0.75, 0.92), np.float32)
    frame_colour = FRAME_COLOURS[rng.integers(len(FRAME_COLOURS))]
    shutter_colour = SHUTTER_COLOURS[rng.integers(len(SHUTTER_COLOURS))]
    sky_colour = np.array([rng.uniform(0.35, 0.6), rng.uniform(0.5, 0.7), rng.uniform(0.75, 0.95)], np.float32)
    if rng.random() < 0.4:  # overcast
        sky_colour = np.full(3, rng.uniform(0.6, 0.85), np.float32)
    grain = rng.random((size, size), dtype=np.float32) * 2 - 1
    clouds = _fractal(rng, size, (2, 4, 8))
    wall_texture = _bricks(rng, size) if brick else _plaster(rng, size)
    stone_texture = _fractal(rng, size, (8, 32))
    wood_grain = _fractal(rng, size, (4,), stretch=16)

    def sky(p: _Pixels) -> np.ndarray:  # brighter towards the horizon, soft clouds
        return sky_colour + (1 - sky_colour) * (0.5 * p.y / size)[:, None] + 0.08 * p.of(clouds)[:, None]

    def wall(p: _Pixels) -> np.ndarray:
        return wall_colour * (p.of(wall_texture) * (1 + 0.03 * p.of(grain)))[:, None]

    def stone(p: _Pixels) -> np.ndarray:
        texture = 1 + 0.04 * p.of(grain) + 0.05 * p.of(stone_texture)
        # Light from above: the tops of ledges bright, their undersides darker; a pillar lit like a cylinder.
        ledge = 1.12 - 0.3 * p.v
        rounded = 0.75 + 0.35 * np.sin(np.pi * p.u)
        return trim_colour * (texture * np.where(p.label == PILLAR, rounded, ledge))[:, None]

    draw((BACKGROUND,), sky)
    draw((FACADE,), wall)
    draw((CORNICE, SILL, DECO, MOLDING, PILLAR), stone)
    draw((WINDOW, SHOP), lambda p: _glass(rng, p, sky_colour, frame_colour))
    draw((BLIND,), lambda p: _shutters(rng, size, p, shutter_colour))
    draw((DOOR,), lambda p: _door(rng, p, wood_grain, frame_colour))
    draw((BALCONY,), lambda p: _railing(rng, size, p, wall(p)))

    # Light falls unevenly across the facade; exposure and white balance differ per photo.
    y, x = np.ogrid[0:1 : size * 1j, 0:1 : size * 1j]
    gradient = 1 + rng.uniform(-0.25, 0.25) * (x - 0.5) + rng.uniform(-0.2, 0.2) * (y - 0.5)
    light = (_shadows(rng, canvas.labels) * gradient).astype(np.float32)
    photo = photo.reshape(size, size, 3)
    photo *= light[..., None]
    photo *= (255 * rng.uniform(0.8, 1.12) * rng.uniform(0.93, 1.07, 3)).astype(np.float32)
    noise = rng.random(photo.shape, dtype=np.float32)  # sensor noise (uniform: looks alike, draws 3x faster)
    noise -= 0.5
    noise *= rng.uniform(5, 18)
    photo += noise
    np.clip(photo, 0, 255, out=photo)
    return np.rint(photo, out=photo).astype(np.uint8)


def _glass(rng: np.random.Generator, p: _Pixels, sky_colour: np.ndarray, frame_colour: np.ndarray) -> np.ndarray:
    """Window panes: sky reflections, diagonal glints, curtains behind some, frames and mullions."""
    u, v, tone = p.u, p.v, p.tone
    dark = np.array([0.10, 0.12, 0.15], np.float32) * rng.uniform(0.7, 1.6)
    reflection = rng.uniform(0.2, 0.6) * (1 - v) * (0.4 + tone)  # more sky mirrored near the top
    glint_slope, glint_width = rng.uniform(0.3, 1.2), rng.uniform(0.08, 0.2)
    glint = np.where(np.mod(u * glint_slope + v + tone * 3, 1) < glint_width, np.float32(rng.uniform(0.1, 0.3)), 0)
    pane = dark + (reflection + glint)[:, None] * sky_colour
    curtain = (tone > 0.65) & (np.abs(u - 0.5) > 0.5 - (tone - 0.5) * 0.9)
    pane[curtain] = np.array([0.85, 0.80, 0.70], np.float32) * (0.6 + 0.3 * v[curtain, None])
    pane[(p.label == SHOP) & (v < 0.18)] = rng.uniform(0.1, 0.9, 3)  # the shop's sign
    # Recessed: the reveal shades the top and one side of the pane.
    side = u if rng.random() < 0.5 else 1 - u
    pane *= (1 - 0.45 * np.exp(-v / 0.08) - 0.3 * np.exp(-side / 0.06))[:, None]
    frame = rng.uniform(0.05, 0.1)
    transom = rng.uniform(0.2, 0.4) if rng.random() < 0.5 else -1.0
    bars = (u < frame) | (u > 1 - frame) | (v < frame * 0.8) | (v > 1 - frame * 0.8)
    bars |= np.abs(v - transom) < frame * 0.35
    if rng.random() < 0.7:
        bars |= np.abs(u - 0.5) < frame * 0.4  # a mullion between two casements
    pane[bars] = frame_colour * (0.85 + 0.15 * (1 - v[bars, None]))
    return pane


def _shutters(rng: np.random.Generator, size: int, p: _Pixels, colour: np.ndarray) -> np.ndarray:
    """Louvred shutters: fine horizontal slats, each shutter a little differently faded."""
    period = max(2.0, size * rng.uniform(0.008, 0.014))
    slats = 0.78 + 0.22 * (np.mod(p.y, period) / period)
    return colour * (slats * (0.8 + 0.35 * p.tone))[:, None]


def _door(rng: np.random.Generator, p: _Pixels, wood_grain: np.ndarray, frame_colour: np.ndarray) -> np.ndarray:
    """A wooden or painted door with four inset panels and grain."""
    u, v = p.u, p.v
    colour = np.array([0.38, 0.23, 0.13], np.float32) if rng.random() < 0.6 else frame_colour * 0.8
    panel = (np.abs(u - 0.5) > 0.08) & (np.abs(u - 0.5) < 0.38) & (np.mod(v, 0.45) > 0.08) & (v > 0.1)
    shade = np.where(panel, np.float32(0.78), np.float32(1)) * (0.85 + 0.3 * p.tone)
    return colour * (shade * (1 + 0.08 * p.of(wood_grain)))[:, None]


def _railing(rng: np.random.Generator, size: int, p: _Pixels, wall: np.ndarray) -> np.ndarray:
    """A balcony: a metal railing (top rail and bars) before the shaded wall, or a solid parapet."""
    if rng.random() < 0.3:
        return wall * (1.1 - 0.35 * p.v)[:, None]
    metal = np.array([0.12, 0.12, 0.13], np.float32) * rng.uniform(0.8, 2.5)
    spacing = max(3.0, size * rng.uniform(0.015, 0.03))
    bars = (np.mod(p.x + rng.uniform(0, spacing), spacing) < spacing * 0.3) | (p.v < 0.15) | (p.v > 0.9)
    return np.where(bars[:, None], metal, wall * 0.45)


def _shadows(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """Light factor per pixel: overhangs darken the wall and windows below them, fading with distance."""
    size = labels.shape[0]
    overhang = _mask(labels, OVERHANGS)
    rows = np.arange(size)[:, None]
    # Per pixel, the nearest overhang row above it in its column (-size where there is none).
    nearest_above = np.maximum.accumulate(np.where(overhang, rows, -size), axis=0)
    distance = (rows - nearest_above).astype(np.float32)
    reach = size * rng.uniform(0.01, 0.05)  # shorter under a high sun
    strength = rng.uniform(0.15, 0.5)  # soft on an overcast day, hard in sunshine
    shade = 1 - strength * np.exp(-(distance - 1) / reach)
    shift = int(rng.integers(-_SUN_SHIFT, _SUN_SHIFT + 1))  # the sun a little to one side
    shade = np.pad(shade, ((0, 0), (_SUN_SHIFT, _SUN_SHIFT)), mode="edge")[:, _SUN_SHIFT - shift :][:, :size]
    return np.where(overhang | (labels == BACKGROUND), np.float32(1), shade)


def _mask(labels: np.ndarray, classes: tuple[int, ...]) -> np.ndarray:
    """Where ``labels`` is one of ``classes`` (for a few classes, much faster than ``np.isin``)."""
    mask = labels == classes[0]
    for label in classes[1:]:
        mask |= labels == label
    return mask


def _bricks(rng: np.random.Generator, size: int) -> np.ndarray:
    """A brick bond: staggered courses, each brick its own shade, lighter mortar joints."""
    rows, columns = np.ogrid[0:size, 0:size]
    height = max(3.0, size * rng.uniform(0.016, 0.03))
    length = height * rng.uniform(2.0, 3.2)
    joint = max(1.0, height * 0.18)
    y = rows + rng.uniform(0, height)
    course = np.floor(y / height)
    xs = columns + (course % 2) * length / 2 + rng.uniform(0, length)
    brick = np.floor(xs / length)
    shades = rng.normal(1.0, 0.09, (int(size / height) + 3, int(size / length) + 4)).astype(np.float32)
    per_brick = shades[course.astype(np.int64) % shades.shape[0], brick.astype(np.int64) % shades.shape[1]]
    mortar = (y - course * height < joint) | (xs - brick * length < joint)
    return np.where(mortar, rng.uniform(1.1, 1.35), per_brick).astype(np.float32)


def _plaster(rng: np.random.Generator, size: int) -> np.ndarray:
    """Plaster: blotchy stains at several scales and a few vertical weathering streaks."""
    stains = _fractal(rng, size, (3, 6, 12, 24, 48))
    streaks = _fractal(rng, size, (2,), stretch=24)
    return (1 + 0.07 * stains + 0.05 * streaks).astype(np.float32)


def _fractal(rng: np.random.Generator, size: int, cells: tuple[int, ...], stretch: int = 1) -> np.ndarray:
    """Smooth noise summed over grid resolutions (amplitude halving per octave), about unit variance.

    ``stretch`` > 1 makes it finer across than down (streaks, wood grain).
    """
    total = np.zeros((size, size), np.float32)
    for octave, count in enumerate(cells):
        knots = rng.standard_normal((count + 1, count * stretch + 1), dtype=np.float32)
        total += 0.5**octave * (_interpolation(size, count) @ knots @ _interpolation(size, count * stretch).T)
    return total


@functools.lru_cache(maxsize=64)
def _interpolation(size: int, cells: int) -> np.ndarray:
    """``[size, cells + 1]`` weights that interpolate ``cells + 1`` knots linearly across ``size`` pixels."""
    position = np.linspace(0, cells, size, dtype=np.float32)[:, None]
    weights = np.maximum(0, 1 - np.abs(position - np.arange(cells + 1, dtype=np.float32)))
    weights.flags.writeable = False  # shared by every call through the cache
    return weights
