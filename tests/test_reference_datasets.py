"""The six reference datasets: their facts, download on first use from a loopback mirror, Cityscapes."""

from __future__ import annotations

import logging

import pytest
import torch
from loopback import A_COLOUR, B_COLOUR, make_cityscapes_tree, make_reference_archive
from PIL import Image

from pix2pix_zoo.data import catalog, open_dataset
from pix2pix_zoo.data.catalog import MIRROR_VARIABLE
from pix2pix_zoo.download import safe_extract
from pix2pix_zoo.errors import BadImageError, DataError
from pix2pix_zoo.home import HOME_VARIABLE
from pix2pix_zoo.plugins import get_registry
from pix2pix_zoo_datasets import reference

REFERENCE = ("facades", "cityscapes", "maps", "edges2shoes", "edges2handbags", "night2day")


@pytest.fixture
def mirror(http_server, tmp_path, monkeypatch):
    """``$ZOO_HOME`` in ``tmp_path/home`` and ``$ZOO_DATASETS_URL`` on a loopback server with facades and maps."""
    monkeypatch.setenv(HOME_VARIABLE, str(tmp_path / "home"))
    monkeypatch.setenv(MIRROR_VARIABLE, http_server.url)
    make_reference_archive(http_server.folder / "facades.tar.gz", "facades", {"train": 3, "val": 2, "test": 1})
    make_reference_archive(http_server.folder / "maps.tar.gz", "maps", {"train": 2, "val": 2})
    return http_server


def colour_of(image: torch.Tensor) -> list[float]:
    return image.float().mean(dim=(1, 2)).tolist()


def test_the_six_are_registered_with_their_facts(fresh_plugins):
    registry = fresh_plugins.get_registry()
    directions = {}
    for name in REFERENCE:
        component = registry.get(name, "dataset")
        info = component.factory.info
        assert info.name == name and component.plugin == "datasets" and component.summary
        assert [option.name for option in component.options] == ["download"]
        assert (info.a_channels, info.b_channels, info.sha256) == (3, 3, None)
        assert set(info.sizes) == set(info.splits) and info.license and "CVPR 2017" in info.source
        hosted = f"http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/{name}.tar.gz"
        assert info.url == (None if name == "cityscapes" else hosted)
        directions[name] = info.default_direction
    assert directions == {
        "facades": "BtoA", "cityscapes": "BtoA", "maps": "AtoB",
        "edges2shoes": "AtoB", "edges2handbags": "AtoB", "night2day": "AtoB",
    }  # fmt: skip
    assert reference.MAPS.splits == ("train", "val") and reference.FACADES.sizes["train"] == 400
    assert "zoo data prepare cityscapes --gtfine DIR --leftimg8bit DIR" in reference.CITYSCAPES.manual_download


def test_first_use_downloads_into_zoo_home_then_hits_the_cache(mirror, tmp_path, capsys):
    train = open_dataset("facades", "train")
    assert len(train) == 3 and train.info is reference.FACADES
    item = train[0]
    assert item["name"] == "1.jpg" and item["a"].dtype == torch.uint8 and item["a"].shape == (3, 8, 8)
    assert colour_of(item["a"]) == pytest.approx(A_COLOUR, abs=4)
    assert colour_of(item["b"]) == pytest.approx(B_COLOUR, abs=4)
    datasets = tmp_path / "home" / "datasets"
    assert sorted(p.name for p in datasets.iterdir()) == ["facades"]  # the archive is gone, nothing half-made
    assert f"downloading {mirror.url}/facades.tar.gz" in capsys.readouterr().err
    assert len(open_dataset("facades", "test")) == 1 and len(reference.facades(datasets, "val")) == 2
    assert mirror.requests == ["/facades.tar.gz"]


def test_a_mirror_can_be_a_local_folder(tmp_path, monkeypatch):
    make_reference_archive(tmp_path / "mirror" / "maps.tar.gz", "maps", {"train": 2, "val": 1})
    monkeypatch.setenv(MIRROR_VARIABLE, (tmp_path / "mirror").as_uri())
    assert len(reference.maps(tmp_path / "datasets", "val", download=True)) == 1


def test_losing_a_race_to_another_process_is_fine(mirror, tmp_path, monkeypatch):
    def other_process_wins(archive, target, *, top_folder):
        safe_extract(archive, target, top_folder=top_folder)  # the winner's copy lands first
        return safe_extract(archive, target, top_folder=top_folder)  # ours then finds it there

    monkeypatch.setattr(catalog, "safe_extract", other_process_wins)
    assert len(reference.facades(tmp_path, "train")) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["facades", "served"]


def test_unknown_split_names_the_splits_before_downloading(mirror, tmp_path):
    with pytest.raises(DataError) as error:
        reference.maps(tmp_path, "test")
    assert str(error.value) == "dataset 'maps' has no split 'test'; its splits are train, val"
    assert mirror.requests == []


def test_split_missing_from_the_archive_names_those_present(mirror, tmp_path):
    make_reference_archive(mirror.folder / "night2day.tar.gz", "night2day", {"train": 1, "test": 1})
    with pytest.raises(DataError, match=r"night2day has no split 'val'; it has test, train$"):
        reference.night2day(tmp_path, "val")
    assert len(reference.night2day(tmp_path, "test")) == 1 and mirror.requests == ["/night2day.tar.gz"]


def test_download_off_and_missing_is_an_error(mirror, tmp_path):
    with pytest.raises(DataError, match="download is off; `zoo data download facades` gets it"):
        reference.facades(tmp_path, "train", download=False)
    with pytest.raises(DataError, match="download is off"):
        get_registry().get("facades").build(tmp_path, "train", download="no")  # as a spec option
    assert mirror.requests == []


def test_cityscapes_is_never_downloaded(mirror, tmp_path):
    with pytest.raises(DataError) as error:
        reference.cityscapes(tmp_path, "train")
    message = str(error.value)
    assert message.startswith(f"dataset 'cityscapes' is not in {tmp_path / 'cityscapes'}: Cityscapes may not be")
    assert "\n" not in message and message.endswith("`zoo data prepare cityscapes --gtfine DIR --leftimg8bit DIR`")
    assert mirror.requests == []


def test_failed_downloads_leave_no_dataset_behind(mirror, tmp_path):
    with pytest.raises(DataError, match="HTTP 404"):
        reference.edges2shoes(tmp_path, "train")  # not on the mirror
    archive = make_reference_archive(mirror.folder / "edges2handbags.tar.gz", "edges2handbags", {"train": 2, "val": 1})
    whole = archive.read_bytes()
    archive.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match="truncated or corrupt"):
        reference.edges2handbags(tmp_path, "train")
    assert list(tmp_path.iterdir()) == [tmp_path / "served"]  # no folder, no archive, no work in progress
    archive.write_bytes(whole)  # once the mirror is mended, the next use downloads again
    assert len(reference.edges2handbags(tmp_path, "train")) == 2


CITY_FRAMES = {"train": ["aachen_000000_000019", "bochum_000000_000313"], "val": ["frankfurt_000000_000294"]}


def test_prepare_cityscapes_builds_the_pix2pix_layout(tmp_path, caplog):
    gtfine, leftimg8bit = make_cityscapes_tree(tmp_path / "official", CITY_FRAMES)
    stray = gtfine / "train" / "aachen" / "aachen_000001_000019_gtFine_color.png"
    Image.new("RGB", (32, 16)).save(stray)
    output = tmp_path / "datasets" / "cityscapes"
    with caplog.at_level(logging.WARNING, logger="pix2pix_zoo"):
        # either the gtFine folder or the folder that holds it
        assert reference.prepare_cityscapes(tmp_path / "official", leftimg8bit, output) == output
    assert f"cityscapes train: skipping 1 files without a partner: {stray}" in caplog.text
    assert sorted(p.relative_to(output).as_posix() for p in output.rglob("*.jpg")) == [
        "train/aachen_000000_000019.jpg", "train/bochum_000000_000313.jpg", "val/frankfurt_000000_000294.jpg",
    ]  # fmt: skip
    with Image.open(output / "val" / "frankfurt_000000_000294.jpg") as pair:
        assert pair.size == (512, 256)
        assert pair.getpixel((100, 100)) == pytest.approx(A_COLOUR, abs=3)  # photo left (A)
        assert pair.getpixel((400, 100)) == pytest.approx(B_COLOUR, abs=3)  # label right (B)
    val = reference.cityscapes(output.parent, "val", download=False)
    assert len(val) == 1 and val.info.default_direction == "BtoA"
    assert colour_of(val[0]["b"]) == pytest.approx(B_COLOUR, abs=3)


def test_prepare_cityscapes_errors_keep_what_exists(tmp_path):
    gtfine, leftimg8bit = make_cityscapes_tree(tmp_path / "official", CITY_FRAMES)
    with pytest.raises(DataError, match="no Cityscapes pairs found"):
        reference.prepare_cityscapes(leftimg8bit, gtfine, tmp_path / "out")  # swapped
    with pytest.raises(DataError, match="is not a directory"):
        reference.prepare_cityscapes(tmp_path / "nowhere", leftimg8bit, tmp_path / "out")
    broken = leftimg8bit / "train" / "bochum" / "bochum_000000_000313_leftImg8bit.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(BadImageError, match="bochum_000000_000313_leftImg8bit.png"):
        reference.prepare_cityscapes(gtfine, leftimg8bit, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["official"]  # nothing half-made
    (tmp_path / "out").mkdir()
    with pytest.raises(DataError, match="already exists"):
        reference.prepare_cityscapes(gtfine, leftimg8bit, tmp_path / "out")
