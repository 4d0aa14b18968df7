"""Image files -> uint8 tensors, and the folder:PATH and pairs:PATH readers, on real files."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile, features

from pix2pix_zoo.data import open_dataset
from pix2pix_zoo.data.images import IMAGE_EXTENSIONS, decode_image, list_images
from pix2pix_zoo.errors import BadImageError, DataError, SpecError
from pix2pix_zoo_datasets.folders import folder, pairs


def save(path, array, mode=None, **params):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array), mode).save(path, **params)
    return path


def noise(height, width, channels=3, seed=0):
    shape = (height, width, channels) if channels > 1 else (height, width)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# -- listing ---------------------------------------------------------------------------------------


def test_list_images_is_recursive_sorted_and_skips_hidden_and_other_files(tmp_path):
    names = ["b.png", "a.JPG", "sub/z.Jpeg", "sub/deeper/c.webp", "A2.tif", ".hidden.png", ".cache/x.png", "notes.txt"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert found == ["A2.tif", "a.JPG", "b.png", "sub/deeper/c.webp", "sub/z.Jpeg"]


def test_list_images_of_a_missing_directory_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="not a directory"):
        list_images(tmp_path / "nope")


@pytest.mark.parametrize("suffix", sorted(IMAGE_EXTENSIONS))
def test_every_listed_extension_decodes(tmp_path, suffix):
    if suffix == ".webp" and not features.check("webp"):
        pytest.skip("this Pillow has no WebP support")
    rgb = suffix != ".pgm"
    pixels = noise(6, 10, 3 if rgb else 1)
    lossless = {"quality": 100, "subsampling": 0} if suffix in (".jpg", ".jpeg") else {}
    lossless = {"lossless": True} if suffix == ".webp" else lossless
    path = save(tmp_path / f"x{suffix.upper()}", pixels, **lossless)
    image = decode_image(path, 3)
    assert image.dtype == torch.uint8 and image.shape == (3, 6, 10)
    if suffix not in (".jpg", ".jpeg"):
        expected = torch.from_numpy(pixels).permute(2, 0, 1) if rgb else torch.from_numpy(pixels).expand(3, 6, 10)
        assert torch.equal(image, expected)


# -- colour handling -------------------------------------------------------------------------------


def test_rgb_decodes_exactly_and_to_luminance(tmp_path):
    pixels = noise(5, 7)
    path = save(tmp_path / "rgb.png", pixels)
    assert torch.equal(decode_image(path, 3), torch.from_numpy(pixels).permute(2, 0, 1))
    luminance = np.array(Image.fromarray(pixels).convert("L"))
    assert torch.equal(decode_image(path, 1), torch.from_numpy(luminance)[None])


def test_grey_repeats_into_three_channels(tmp_path):
    pixels = noise(4, 4, 1)
    image = decode_image(save(tmp_path / "grey.png", pixels), 3)
    assert image.shape == (3, 4, 4) and all(torch.equal(channel, torch.from_numpy(pixels)) for channel in image)


def test_transparency_is_composited_on_white(tmp_path):
    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[0, :, 0] = 200  # red 200 at alpha 0, 255 and 128
    rgba[0, :, 3] = [0, 255, 128]
    image = decode_image(save(tmp_path / "rgba.png", rgba), 3)
    assert image[:, 0, 0].tolist() == [255, 255, 255]  # fully transparent -> white, not its black RGB
    assert image[:, 0, 1].tolist() == [200, 0, 0]
    assert image[:, 0, 2].tolist() == [227, 127, 127]  # half way between the colour and white

    la = np.stack([np.zeros((2, 2), np.uint8), np.array([[0, 255], [255, 0]], np.uint8)], -1)
    assert decode_image(save(tmp_path / "la.png", la, "LA"), 1)[0].tolist() == [[255, 0], [0, 255]]


def test_palette_images_with_and_without_transparency(tmp_path):
    palette = Image.new("P", (2, 1))
    palette.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    palette.putdata([0, 1])
    palette.save(tmp_path / "p.png")
    assert decode_image(tmp_path / "p.png", 3)[:, 0].T.tolist() == [[10, 20, 30], [200, 100, 50]]
    palette.save(tmp_path / "p_transparent.png", transparency=0)
    assert decode_image(tmp_path / "p_transparent.png", 3)[:, 0].T.tolist() == [[255, 255, 255], [200, 100, 50]]


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    pixels = np.array([[0, 257 * 100, 65535]], np.uint16)
    path = save(tmp_path / "deep.png", pixels)
    assert Image.open(path).mode.startswith("I")
    assert decode_image(path, 1)[0, 0].tolist() == [0, 100, 255]


def test_bilevel_images_decode_to_0_and_255(tmp_path):
    path = tmp_path / "bits.png"
    Image.fromarray(np.array([[True, False]])).save(path)
    assert decode_image(path, 1)[0, 0].tolist() == [255, 0]


def test_floating_point_images_are_refused(tmp_path):
    path = save(tmp_path / "float.tif", np.ones((2, 2), np.float32), "F")
    with pytest.raises(BadImageError, match="floating-point"):
        decode_image(path, 3)


# -- broken files ----------------------------------------------------------------------------------


@pytest.fixture
def truncated_jpeg(tmp_path):
    whole = save(tmp_path / "whole.jpg", noise(64, 64), quality=95)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    return cut


def test_a_truncated_jpeg_is_a_bad_image_naming_the_file(truncated_jpeg):
    with pytest.raises(BadImageError, match="truncated") as raised:
        decode_image(truncated_jpeg, 3)
    assert raised.value.path == truncated_jpeg and "cut.jpg" in str(raised.value)


def test_load_truncated_images_does_not_hide_truncation(truncated_jpeg, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # some other library's choice
    with pytest.raises(BadImageError, match="truncated"):
        decode_image(truncated_jpeg, 3)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # put back as it was


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + bytes(40)])
def test_garbage_is_a_bad_image(tmp_path, content):
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(BadImageError, match="broken.png"):
        decode_image(path, 3)


# -- folder:PATH -----------------------------------------------------------------------------------


def aligned(path, a, b):
    """Write an AB image: A on the left half, B on the right."""
    return save(path, np.concatenate([a, b], axis=1))


def test_folder_splits_each_image_into_a_left_and_b_right(tmp_path):
    a, b = noise(8, 6, seed=1), noise(8, 6, seed=2)
    aligned(tmp_path / "train" / "sub" / "2.png", a, b)
    aligned(tmp_path / "train" / "1.png", b, a)
    dataset = open_dataset(f"folder:{tmp_path}", "train")
    assert len(dataset) == 2 and dataset.info.name == "folder" and dataset.info.default_direction == "AtoB"
    first, second = dataset[0], dataset[1]
    assert (first["name"], second["name"]) == ("1.png", "sub/2.png")
    assert torch.equal(second["a"], torch.from_numpy(a).permute(2, 0, 1))
    assert torch.equal(second["b"], torch.from_numpy(b).permute(2, 0, 1))
    assert torch.equal(first["a"], second["b"])


def test_folder_channels_options(tmp_path):
    aligned(tmp_path / "val" / "x.png", noise(4, 4, seed=1), noise(4, 4, seed=2))
    dataset = open_dataset(f"folder:{tmp_path}", "val", a_channels="1")
    item = dataset[0]
    assert item["a"].shape == (1, 4, 4) and item["b"].shape == (3, 4, 4)
    assert (dataset.info.a_channels, dataset.info.b_channels) == (1, 3)
    with pytest.raises(SpecError, match="a_channels"):
        folder(tmp_path, "val", a_channels=2)


def test_folder_odd_width_names_the_file_when_it_is_read(tmp_path):
    aligned(tmp_path / "train" / "good.png", noise(4, 4), noise(4, 4))
    save(tmp_path / "train" / "odd.png", noise(4, 9))
    dataset = folder(tmp_path, "train")  # opening does not decode
    assert dataset[0]["a"].shape == (3, 4, 4)
    with pytest.raises(DataError, match=r"odd\.png.*width 9 is odd"):
        dataset[1]


def test_folder_missing_split_lists_the_splits_there_are(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    with pytest.raises(DataError, match=r"no folder 'val'; its folders are test, train"):
        folder(tmp_path, "val")
    with pytest.raises(DataError, match="not a directory"):
        folder(tmp_path / "missing", "train")


# -- pairs:PATH ------------------------------------------------------------------------------------


def test_pairs_match_by_relative_name_without_extension(tmp_path):
    a, b = noise(5, 6, seed=1), noise(5, 6, seed=2)
    save(tmp_path / "A" / "train" / "x" / "1.png", a)
    save(tmp_path / "B" / "train" / "x" / "1.bmp", b)
    save(tmp_path / "A" / "train" / "0.png", b)
    save(tmp_path / "B" / "train" / "0.tif", a)
    dataset = open_dataset(f"pairs:{tmp_path}", "train", b_channels=1)
    assert len(dataset) == 2 and dataset.info.name == "pairs"
    assert [dataset[i]["name"] for i in range(2)] == ["0", "x/1"]
    item = dataset[1]
    assert torch.equal(item["a"], torch.from_numpy(a).permute(2, 0, 1))
    assert item["b"].shape == (1, 5, 6)


def test_pairs_report_images_without_a_partner(tmp_path, caplog):
    for name in ["1", "2", "3"]:
        save(tmp_path / "A" / "val" / f"{name}.png", noise(2, 2))
    for name in ["2", "3", "4"]:
        save(tmp_path / "B" / "val" / f"{name}.png", noise(2, 2))
    with caplog.at_level(logging.WARNING, logger="pix2pix_zoo"):
        dataset = pairs(tmp_path, "val")
    assert dataset.names == ["2", "3"]
    assert "skipping 2 images without a partner" in caplog.text
    assert ": 1;" in caplog.text and caplog.text.rstrip().endswith(": 4")


def test_pairs_with_no_match_at_all_is_a_data_error(tmp_path):
    save(tmp_path / "A" / "train" / "cat.png", noise(2, 2))
    save(tmp_path / "B" / "train" / "dog.png", noise(2, 2))
    with pytest.raises(DataError, match=r"no image in .* has a partner.*A has cat; B has dog"):
        pairs(tmp_path, "train")


def test_pairs_refuse_two_files_with_one_name_and_pairs_of_different_sizes(tmp_path):
    save(tmp_path / "A" / "train" / "1.png", noise(4, 4))
    save(tmp_path / "B" / "train" / "1.png", noise(4, 6))
    with pytest.raises(BadImageError, match=r"B.train.1\.png.*6x4 differs"):
        pairs(tmp_path, "train")[0]
    save(tmp_path / "A" / "train" / "1.jpg", noise(4, 4))
    with pytest.raises(DataError, match="both pair up as '1'"):
        pairs(tmp_path, "train")


def test_pairs_layout_errors_say_what_is_expected(tmp_path):
    (tmp_path / "A" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no folder 'B'.*PATH/A/<split>/ and PATH/B/<split>/"):
        pairs(tmp_path, "train")
    (tmp_path / "B" / "test").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no folder 'train'; its folders are test"):
        pairs(tmp_path, "train")


def test_folder_and_pairs_are_registered_with_summaries(fresh_plugins):
    registry = fresh_plugins.get_registry()
    for name in ("folder", "pairs"):
        component = registry.get(name, "dataset")
        assert component.summary and [o.name for o in component.options] == ["a_channels", "b_channels"]
