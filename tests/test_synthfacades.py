"""synthfacades: deterministic, split-disjoint, and a translation problem worth a GAN.

Its speed is measured by ``benchmarks/data_pipeline.py`` (figures, not timed tests).
"""

from __future__ import annotations

import hashlib

import pytest
import torch

from pix2pix_zoo.data import open_dataset
from pix2pix_zoo.errors import DataError, SpecError
from pix2pix_zoo_datasets.synthfacades import FACADE, LABEL_COLOURS, SPLIT_SIZES, WINDOW, synthfacades


def digest(item: dict) -> str:
    return hashlib.sha256(item["a"].numpy().tobytes() + item["b"].numpy().tobytes()).hexdigest()


def test_items_are_uint8_pairs_of_the_requested_size():
    dataset = synthfacades(None, "train", size=48)
    item = dataset[3]
    assert item["a"].dtype == item["b"].dtype == torch.uint8
    assert item["a"].shape == item["b"].shape == (3, 48, 48)
    assert item["name"] == "train/00003"
    assert dataset.info.name == "synthfacades" and dataset.info.default_direction == "AtoB"
    assert dataset.info.license == "CC0 (generated)" and dataset.info.task == "facade labels -> photo"


def test_a_is_a_label_map_drawn_only_in_label_colours():
    item = synthfacades(None, "val", size=64)[0]
    colours = {tuple(c) for c in item["a"].reshape(3, -1).T.tolist()}
    assert colours <= {tuple(c) for c in LABEL_COLOURS.tolist()} and len(colours) >= 4


def test_pairs_are_a_function_of_seed_split_and_index():
    first, again = synthfacades(None, "train", size=32), synthfacades(None, "train", size=32)
    assert digest(first[5]) == digest(again[5]) == digest(first[5 - len(first)])
    assert digest(first[5]) != digest(first[6])
    assert digest(first[5]) != digest(synthfacades(None, "train", size=32, seed=1)[5])


def test_splits_have_fixed_sizes_and_share_no_pair():
    sizes = {split: len(synthfacades(None, split)) for split in SPLIT_SIZES}
    assert sizes == {"train": 400, "val": 100, "test": 100}
    seen: dict[str, set[str]] = {}
    for split in SPLIT_SIZES:
        dataset = synthfacades(None, split, size=32, count=60)
        seen[split] = {digest(dataset[i]) for i in range(len(dataset))}
        assert len(seen[split]) == 60
    assert not (seen["train"] & seen["val"]) and not (seen["train"] & seen["test"]) and not (seen["val"] & seen["test"])


def test_count_option_and_index_bounds():
    dataset = synthfacades(None, "test", size=32, count=3)
    assert len(dataset) == 3
    with pytest.raises(IndexError):
        dataset[3]


def test_bad_options_and_splits():
    with pytest.raises(SpecError, match="size"):
        synthfacades(None, "train", size=31)
    with pytest.raises(SpecError, match="count"):
        synthfacades(None, "train", count=-1)
    with pytest.raises(DataError, match="train, val, test"):
        synthfacades(None, "holdout")


def test_opens_by_name_without_files(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path))
    dataset = open_dataset("synthfacades", "val", size="40", count="2")
    assert len(dataset) == 2 and dataset[1]["b"].shape == (3, 40, 40)
    assert list(tmp_path.iterdir()) == []  # nothing downloaded or written


def test_photos_are_not_a_colour_lookup_of_the_labels():
    """Much of B is random given A: an L1 model's best guess, the mean per label, stays far off.

    Pooled over buildings, each class's photo pixels vary widely (wall colour, reflections); inside
    one photo the wall still has texture (brick or plaster, grain), which a per-label mean blurs away.
    """
    dataset = synthfacades(None, "train", size=128)
    labels, photos = [], []
    for index in range(12):
        item = dataset[index]
        codes = item["a"].long()
        labels.append(codes[0] * 65536 + codes[1] * 256 + codes[2])
        photos.append(item["b"].float())
    labels, photos = torch.stack(labels), torch.stack(photos)
    for label in (FACADE, WINDOW):
        r, g, b = (int(c) for c in LABEL_COLOURS[label])
        mask = labels == r * 65536 + g * 256 + b
        pooled = photos.permute(1, 0, 2, 3)[:, mask]
        assert pooled.std(dim=1).mean() > 20, f"class {label} pooled"
    wall = LABEL_COLOURS[FACADE].tolist()
    for label_map, photo in zip(labels, photos):
        mask = label_map == wall[0] * 65536 + wall[1] * 256 + wall[2]
        assert photo[:, mask].std(dim=1).mean() > 6  # texture within a single wall
