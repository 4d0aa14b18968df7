"""Paired augmentation: A and B stay aligned pixel for pixel through every preprocess mode."""

from __future__ import annotations

import pytest
import torch

from pix2pix_zoo.data.augment import PREPROCESS_MODES, PairedAugment, collate_pairs, orient, uniform_batches
from pix2pix_zoo.errors import DataError

# 40x48 pairs, load 36, crop 32: every mode resizes, crops or both.
HEIGHT, WIDTH, LOAD, CROP = 40, 48, 36, 32
TRAIN_SIZES = {
    "resize_and_crop": (32, 32),
    "crop": (32, 32),
    "scale_width": (32, 36),  # width 36, height 36 * 40 / 48 = 30, raised to the crop size
    "scale_width_and_crop": (32, 32),
    "none": (40, 48),  # already multiples of 4
}
EVAL_SIZES = {**TRAIN_SIZES, "scale_width": (32, 32)}  # loads at crop_size, as the reference tests


def random_pairs(count: int, a_channels: int = 3, height: int = HEIGHT, width: int = WIDTH, seed: int = 0):
    """A is noise (so any misalignment shows); every channel of B is its inverse, 255 - A."""
    generator = torch.Generator().manual_seed(seed)
    a = torch.randint(0, 256, (count, a_channels, height, width), dtype=torch.uint8, generator=generator)
    b = (255 - a[:, :1]).expand(count, 3, height, width).contiguous()
    return a, b


def coordinate_pairs(count: int, height: int = HEIGHT, width: int = WIDTH):
    """A's channels hold each pixel's row and column; B is A."""
    rows = torch.arange(height, dtype=torch.uint8)[:, None].expand(height, width)
    columns = torch.arange(width, dtype=torch.uint8)[None, :].expand(height, width)
    a = torch.stack([rows, columns]).expand(count, 2, height, width).contiguous()
    return a, a.clone()


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    return ((x + 1) * 127.5).round().to(torch.uint8)


@pytest.mark.parametrize("mode", PREPROCESS_MODES)
@pytest.mark.parametrize("a_channels", [1, 3])
@pytest.mark.parametrize("train", [True, False])
def test_a_and_b_stay_aligned_in_every_mode(mode, a_channels, train):
    a, b = random_pairs(6, a_channels)
    augment = PairedAugment(mode, load_size=LOAD, crop_size=CROP)
    x, y = augment(a, b, torch.Generator().manual_seed(1), train=train)
    size = (TRAIN_SIZES if train else EVAL_SIZES)[mode]
    assert x.shape == (6, a_channels, *size) and y.shape == (6, 3, *size)
    assert x.dtype == y.dtype == torch.float32
    # B = 255 - A survives resizing (linear), cropping and flipping only if both moved together.
    for channel in range(3):
        assert torch.allclose(x[:, 0] + y[:, channel], torch.zeros(()), atol=1e-4)


@pytest.mark.parametrize("mode", ["crop", "resize_and_crop", "scale_width_and_crop"])
def test_each_pair_gets_its_own_crop_and_flip(mode):
    a, b = coordinate_pairs(64, height=64, width=64)
    augment = PairedAugment(mode, load_size=64, crop_size=32)  # load 64: no resampling, exact coordinates
    x, y = augment(a, b, torch.Generator().manual_seed(0))
    assert torch.equal(x, y)
    rows, columns = to_uint8(x[:, 0]).long(), to_uint8(x[:, 1]).long()
    top, left = rows[:, 0, 0], columns[:, 0, :].amin(dim=1)
    flipped = columns[:, 0, 0] > columns[:, 0, -1]
    steps = torch.arange(32)
    for n in range(64):  # every sample is an exact window of the input, mirrored or not
        assert torch.equal(rows[n], (top[n] + steps)[:, None].expand(32, 32))
        expected = left[n] + (steps.flip(0) if flipped[n] else steps)
        assert torch.equal(columns[n], expected[None, :].expand(32, 32))
    assert len(set(zip(top.tolist(), left.tolist()))) > 20  # positions drawn per sample
    assert 16 <= int(flipped.sum()) <= 48  # about half flipped


def test_flip_rate_is_about_one_half():
    a, b = coordinate_pairs(1000, height=4, width=8)
    x, _ = PairedAugment("none", flip=True)(a, b, torch.Generator().manual_seed(3))
    flipped = to_uint8(x[:, 1, 0, 0]) == 7
    assert 430 <= int(flipped.sum()) <= 570
    x, _ = PairedAugment("none", flip=False)(a, b, torch.Generator().manual_seed(3))
    assert torch.equal(to_uint8(x), a)


def test_same_generator_seed_same_batch_other_seed_other_batch():
    a, b = random_pairs(8)
    augment = PairedAugment("resize_and_crop", load_size=LOAD, crop_size=CROP)
    first = augment(a, b, torch.Generator().manual_seed(7))
    again = augment(a, b, torch.Generator().manual_seed(7))
    other = augment(a, b, torch.Generator().manual_seed(8))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])


def test_evaluation_is_deterministic_unflipped_and_centred():
    a, b = coordinate_pairs(2)
    augment = PairedAugment("crop", crop_size=CROP)
    x, _ = augment(a, b, train=False)
    assert torch.equal(to_uint8(x), a[:, :, 4:36, 8:40])
    resized, _ = PairedAugment("resize_and_crop", load_size=LOAD, crop_size=CROP)(a, b, train=False)
    assert resized.shape[2:] == (CROP, CROP)  # the whole image at crop_size, nothing cut off


def test_output_is_in_minus_one_to_one_with_exact_ends():
    a = torch.tensor([0, 255, 128], dtype=torch.uint8).reshape(1, 1, 1, 3).expand(1, 1, 4, 3).contiguous()
    x, _ = PairedAugment("none", size_multiple=1, flip=False)(a, a.clone())
    assert x[0, 0, 0].tolist() == [-1.0, 1.0, pytest.approx(0.00392, abs=1e-4)]
    a, b = random_pairs(4)
    for mode in PREPROCESS_MODES:
        x, y = PairedAugment(mode, load_size=LOAD, crop_size=CROP)(a, b, torch.Generator().manual_seed(0))
        assert -1 <= float(x.min()) and float(x.max()) <= 1  # bicubic overshoot is clamped


def test_none_rounds_to_multiples_of_four_like_the_reference():
    a, b = random_pairs(1, height=42, width=50)  # round(10.5) = 10, round(12.5) = 12: Python rounding
    x, _ = PairedAugment("none")(a, b, torch.Generator())
    assert x.shape[2:] == (40, 48)


def test_crop_larger_than_the_images_is_a_data_error():
    a, b = random_pairs(1, height=20, width=20)
    with pytest.raises(DataError, match="20x20 pixels are smaller than crop_size 32"):
        PairedAugment("crop", crop_size=32)(a, b)


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError, match="preprocess must be one of"):
        PairedAugment("resize")
    with pytest.raises(ValueError, match="larger than load_size"):
        PairedAugment("resize_and_crop", load_size=256, crop_size=286)
    with pytest.raises(ValueError, match="uint8"):
        PairedAugment()(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4))


def test_orient_swaps_for_b_to_a():
    a, b = random_pairs(2)
    batch = {"a": a, "b": b}
    assert orient(batch, "AtoB") == (a, b)
    assert orient(batch, "BtoA") == (b, a)
    with pytest.raises(ValueError):
        orient(batch, "AtoA")


def test_collate_stacks_pairs_and_groups_mixed_sizes():
    def item(name: str, width: int = 6) -> dict:
        a, b = torch.zeros(1, 4, width, dtype=torch.uint8), torch.ones(3, 4, width, dtype=torch.uint8)
        return {"a": a, "b": b, "name": name}

    items = [item("p0"), item("p1"), item("p2")]
    batch = collate_pairs(items)
    assert batch["a"].shape == (3, 1, 4, 6) and batch["b"].shape == (3, 3, 4, 6)
    assert batch["name"] == ["p0", "p1", "p2"]
    assert uniform_batches(batch) == [batch]
    items.insert(1, item("wide", width=8))
    mixed = collate_pairs(items)
    assert mixed["name"] == ["p0", "p1", "p2", "wide"]  # by size, in order within a size
    groups = uniform_batches(mixed)
    assert [group["name"] for group in groups] == [["p0", "p1", "p2"], ["wide"]]
    assert [tuple(group["a"].shape) for group in groups] == [(3, 1, 4, 6), (1, 1, 4, 8)]
    assert [tuple(group["b"].shape) for group in groups] == [(3, 3, 4, 6), (1, 3, 4, 8)]


@pytest.mark.parametrize(
    ("preprocess", "sizes", "keeps"),
    [
        ("resize_and_crop", [(300, 451), (512, 512)], {(32, 32)}),
        ("scale_width_and_crop", [(300, 451), (512, 512)], {(32, 32)}),
        ("crop", [(300, 451), (512, 512)], {(32, 32)}),
        ("scale_width", [(300, 450), (600, 900)], {(24, 36)}),  # one aspect ratio: one size
        ("scale_width", [(300, 450), (512, 512)], {(24, 36), (36, 36)}),
        ("none", [(30, 45), (52, 52)], {(32, 44), (52, 52)}),
    ],
)
def test_output_size_says_which_pairs_can_share_a_batch(preprocess, sizes, keeps):
    augment = PairedAugment(preprocess, load_size=36, crop_size=32 if "crop" in preprocess else 24)
    outputs = {augment.output_size(height, width) for height, width in sizes}
    assert outputs == keeps
    assert augment.keeps_sizes == (preprocess in ("scale_width", "none"))
    for height, width in sizes:  # what it predicts is what the augmentation makes
        pair = torch.zeros(1, 3, height, width, dtype=torch.uint8)
        x, _ = augment(pair, pair, torch.Generator().manual_seed(0))
        assert tuple(x.shape[2:]) == augment.output_size(height, width)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_the_device_with_a_device_generator():
    a, b = random_pairs(8)
    augment = PairedAugment("resize_and_crop", load_size=LOAD, crop_size=CROP)
    x, y = augment(a.cuda(), b.cuda(), torch.Generator("cuda").manual_seed(0))
    assert x.is_cuda and x.shape == (8, 3, CROP, CROP)
    assert torch.allclose(x[:, 0] + y[:, 0], torch.zeros((), device="cuda"), atol=1e-4)
