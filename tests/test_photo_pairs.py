"""pix2pix_zoo.data.photos: a derived dataset from a folder of photos in a few lines (the docstring's
inpaint example, executed as written), its splits, its size cap and its errors."""

from __future__ import annotations

import re
import types

import numpy as np
import pytest
from PIL import Image

import pix2pix_zoo.data.photos as photos
from pix2pix_zoo.data import open_dataset
from pix2pix_zoo.errors import DataError, SpecError
from pix2pix_zoo.testing import check_dataset, check_training

SIZES = [(512, 512), (451, 300), (300, 451), (640, 427)]


def documented_example() -> types.ModuleType:
    """The module docstring's example plugin, run as a module."""
    (code,) = re.findall(r"::\n\n((?:    .*\n|\n)+)", photos.__doc__)
    module = types.ModuleType("inpaint_example")
    exec(compile("\n".join(line[4:] for line in code.splitlines()), "inpaint_example", "exec"), module.__dict__)
    return module


def make_photos(folder, count: int, suffix: str = ".jpg") -> None:
    rng = np.random.default_rng(count)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        width, height = SIZES[index % len(SIZES)]
        pixels = rng.integers(0, 256, (height // 4, width // 4, 3), dtype=np.uint8)
        Image.fromarray(pixels).resize((width, height)).save(folder / f"photo{index:02d}{suffix}")


@pytest.fixture
def inpaint(register_plugin):
    example = documented_example()
    register_plugin(example, "inpaint")
    return example


def test_the_documented_example_is_a_dataset_in_a_few_lines(inpaint, tmp_path):
    lines = [line for line in photos.__doc__.split("::")[1].split("What the base does")[0].splitlines() if line.strip()]
    assert len(lines) <= 15
    make_photos(tmp_path / "train", 4)
    make_photos(tmp_path / "test", 2, ".png")
    dataset = open_dataset(f"inpaint:{tmp_path}", "train")
    check_dataset(dataset)
    assert [item["name"] for item in dataset] == [f"photo{i:02d}.jpg" for i in range(4)]
    pair = dataset[1]  # 451x300: the hole is the middle half, the rest is the photo
    assert tuple(pair["a"].shape) == (3, 300, 451) and (pair["a"][:, 75:225, 112:337] == 255).all()
    assert (pair["a"][:, :75] == pair["b"][:, :75]).all()
    assert len(open_dataset(f"inpaint:{tmp_path}", "test")) == 2
    with pytest.raises(DataError, match=r"has no folder 'val', only train, test \(with split folders, inpaint:PATH"):
        open_dataset(f"inpaint:{tmp_path}", "val")


def test_a_folder_without_split_folders_is_split_by_a_stable_hash(inpaint, tmp_path):
    make_photos(tmp_path / "trip", 40)
    names = {split: [item["name"] for item in open_dataset(f"inpaint:{tmp_path}", split)]
             for split in ("train", "val", "test")}
    assert sorted(sum(names.values(), [])) == [f"trip/photo{i:02d}.jpg" for i in range(40)]
    assert all(photos.hashed_split(name) == split for split, found in names.items() for name in found)
    make_photos(tmp_path / "more", 10)  # new photos never move the old ones
    after = [item["name"] for item in open_dataset(f"inpaint:{tmp_path}", "train")]
    assert set(names["train"]) <= set(after)


def test_max_side_caps_large_photos_on_decode(inpaint, tmp_path):
    make_photos(tmp_path / "train", 2)
    pair = open_dataset(f"inpaint:{tmp_path}", "train", max_side=128)[1]
    assert tuple(pair["b"].shape) == (3, 85, 128)  # 451x300 within 128x128, aspect kept
    with pytest.raises(SpecError, match="option 'max_side' must be from 0 to 65536, not -1"):
        open_dataset(f"inpaint:{tmp_path}", "train", max_side=-1)


def test_a_make_pair_that_breaks_the_contract_is_one_line(register_plugin, tmp_path):
    from pix2pix_zoo import hookimpl
    from pix2pix_zoo.interfaces import DatasetInfo

    class Wrong(photos.PhotoPairs):
        info = DatasetInfo("wrong", a_channels=1, reads_your_files=True)

        def make_pair(self, photo, name):
            return photo, photo  # three channels where info says one

    register_plugin(types.SimpleNamespace(register_datasets=hookimpl(lambda register: register("wrong", Wrong))), "wrong")
    make_photos(tmp_path / "train", 1)
    with pytest.raises(DataError, match=r"Wrong.make_pair gave torch.uint8 \(3, 512, 512\) and torch.uint8 "
                                        r"\(3, 512, 512\) for .*photo00.jpg'; expected uint8 A and B of 1 and 3"):
        open_dataset(f"wrong:{tmp_path}", "train")[0]
    with pytest.raises(SpecError, match="reads files you name: use --data wrong:PATH"):
        open_dataset("wrong", "train")


@pytest.mark.parametrize("batch_size", [1, 4])
def test_photos_of_mixed_sizes_train_and_evaluate(inpaint, tmp_path, batch_size):
    make_photos(tmp_path / "photos" / "train", 8)
    make_photos(tmp_path / "photos" / "test", 3)
    evaluation = check_training("resnet_6blocks(ngf=4)+patch16(ndf=4)+l1cgan", f"inpaint:{tmp_path / 'photos'}",
                                tmp_path / "run", batch_size=batch_size, data_options={"max_side": 96})
    assert evaluation["pairs"] == 3
