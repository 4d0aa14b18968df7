"""``zoo data``: the real console script against a loopback mirror, and in-process for the details."""

from __future__ import annotations

import dataclasses
import json

import pytest
from helpers import run_main, run_zoo
from loopback import make_cityscapes_tree, make_reference_archive

from pix2pix_zoo.data.catalog import MIRROR_VARIABLE
from pix2pix_zoo.home import HOME_VARIABLE
from pix2pix_zoo.interfaces import DatasetInfo

REFERENCE = {"facades", "cityscapes", "maps", "edges2shoes", "edges2handbags", "night2day"}


@pytest.fixture
def zoo_env(http_server, tmp_path, monkeypatch):
    """``$ZOO_HOME`` and the mirror, for subprocesses (the returned dict) and for this process."""
    make_reference_archive(http_server.folder / "facades.tar.gz", "facades", {"train": 2, "val": 1, "test": 1})
    env = {HOME_VARIABLE: str(tmp_path / "home"), MIRROR_VARIABLE: http_server.url}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def listed(stdout: str) -> dict[str, dict]:
    return {entry["name"]: entry for entry in json.loads(stdout)}


def test_list_download_and_cache_hit_from_the_console_script(zoo_env, http_server, tmp_path):
    result = run_zoo("data", "list", "--json", **zoo_env)
    assert result.returncode == 0 and result.stderr == ""
    entries = listed(result.stdout)
    assert REFERENCE <= set(entries)
    facades = entries["facades"]
    assert facades["origin"] == f"{http_server.url}/facades.tar.gz" and facades["downloaded"] is False
    assert facades["path"] == str(tmp_path / "home" / "datasets" / "facades") and facades["pairs"] == 606
    assert entries["cityscapes"]["origin"] == "local" and entries["folder"]["downloaded"] is None

    first = run_zoo("data", "download", "facades", **zoo_env)
    assert first.returncode == 0 and first.stdout == facades["path"] + "\n"
    assert first.stderr.startswith(f"downloading {http_server.url}/facades.tar.gz (") and first.stderr.count("\n") == 1
    second = run_zoo("data", "download", "facades", **zoo_env)
    assert second.returncode == 0 and second.stdout == first.stdout
    assert second.stderr == "facades is already downloaded\n" and http_server.requests == ["/facades.tar.gz"]
    assert sorted(p.name for p in (tmp_path / "home" / "datasets" / "facades").iterdir()) == ["test", "train", "val"]


def test_list_table_shows_the_state(zoo_env, capsys):
    assert run_main(capsys, "data", "download", "facades")[0] == 0
    code, out, err = run_main(capsys, "data", "list")
    assert code == 0 and err == ""
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("│ ") and line.split()[1] != "│"}
    assert "not downloaded" not in rows["facades"] and "downloaded" in rows["facades"] and "BtoA" in rows["facades"]
    assert "not prepared" in rows["cityscapes"] and "2.0 GB" in rows["edges2shoes"] and "your files" in rows["folder"]


def test_info_shows_every_field(zoo_env, capsys):
    code, out, err = run_main(capsys, "data", "info", "maps", "--json")
    assert code == 0 and err == ""
    facts = json.loads(out)
    assert {field.name for field in dataclasses.fields(DatasetInfo)} <= set(facts)
    assert facts["splits"] == ["train", "val"] and facts["sizes"] == {"train": 1096, "val": 1098}
    assert facts["url"] == "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/maps.tar.gz"
    assert facts["origin"] == f"{zoo_env[MIRROR_VARIABLE]}/maps.tar.gz" and facts["default_direction"] == "AtoB"
    code, out, _ = run_main(capsys, "data", "info", "cityscapes")
    assert code == 0 and "street photo <-> semantic labels" in out and "train 2,975, val 500" in out


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("download", "cityscapes"), "run `zoo data prepare cityscapes --gtfine DIR --leftimg8bit DIR`"),
        (("download", "facadse"), "unknown dataset 'facadse'; did you mean facades"),
        (("download", "folder"), "dataset 'folder' reads your own files (folder:PATH); there is nothing to download"),
        (("download", "edges2shoes"), "/edges2shoes.tar.gz: HTTP 404 File not found"),
        (("info", "unet"), "'unet' is a generator, not a dataset"),
        (("prepare", "facades"), "dataset 'facades' has nothing to prepare; `zoo data download facades` gets it"),
        (("prepare", "cityscapes", "--gtfine", "x"), "`zoo data prepare cityscapes` needs --leftimg8bit DIR"),
        (("prepare", "cityscapes", "--gtfin", "x"), "has no option --gtfin; did you mean gtfine?"),
        (("prepare", "cityscapes", "--gtfine"), "option --gtfine needs a folder"),
        (("prepare", "cityscapes", "x"), "unexpected argument 'x'; give the source folders as --NAME DIR"),
    ],
)
def test_mistakes_are_one_line(zoo_env, capsys, args, says):
    code, out, err = run_main(capsys, "data", *args)
    assert code == 1 and out == "" and err.count("\n") == 1
    assert err.startswith("error: ") and says in err


def test_prepare_cityscapes_from_the_console_script(zoo_env, tmp_path):
    frames = {"train": ["aachen_000000_000019"], "val": ["frankfurt_000000_000294"]}
    gtfine, leftimg8bit = make_cityscapes_tree(tmp_path / "official", frames)
    sources = ("--gtfine", str(gtfine), f"--leftimg8bit={leftimg8bit}")
    result = run_zoo("data", "prepare", "cityscapes", *sources, **zoo_env)
    folder = tmp_path / "home" / "datasets" / "cityscapes"
    assert result.returncode == 0 and result.stdout == f"{folder}\n" and result.stderr == ""
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.jpg")) == [
        "train/aachen_000000_000019.jpg", "val/frankfurt_000000_000294.jpg",
    ]  # fmt: skip


def test_prepare_into_another_folder(zoo_env, tmp_path, capsys):
    gtfine, leftimg8bit = make_cityscapes_tree(tmp_path / "official", {"val": ["frankfurt_000000_000294"]})
    other = tmp_path / "elsewhere"
    args = ("--gtfine", str(gtfine), "--leftimg8bit", str(leftimg8bit), "--output", str(other))
    code, out, _ = run_main(capsys, "data", "prepare", "cityscapes", *args)
    assert code == 0 and out == f"{other}\n" and (other / "val" / "frankfurt_000000_000294.jpg").is_file()
    code, out, _ = run_main(capsys, "data", "list", "--json")
    assert listed(out)["cityscapes"]["downloaded"] is False  # $ZOO_HOME/datasets/cityscapes is still missing


def test_info_on_your_own_pairs_counts_each_split_and_its_sizes(zoo_env, tmp_path, capsys, caplog):
    """`zoo data info pairs:PATH` says what training would read: the pairs of each split, the range of
    their sizes from the headers, why a split has none, and the file left without a partner."""
    from PIL import Image

    sizes = {"train": [(40, 30), (64, 48), (40, 30)], "test": [(20, 90)]}  # (width, height)
    for split, split_sizes in sizes.items():
        for side in ("A", "B"):
            (tmp_path / "pd" / side / split).mkdir(parents=True)
        for index, size in enumerate(split_sizes):
            Image.new("L", size, 128).save(tmp_path / "pd" / "A" / split / f"{index}.png")
            Image.new("RGB", size, (200, 10, 10)).save(tmp_path / "pd" / "B" / split / f"{index}.jpg")
    Image.new("L", (8, 8)).save(tmp_path / "pd" / "A" / "train" / "alone.png")

    code, out, err = run_main(capsys, "data", "info", f"pairs:{tmp_path / 'pd'}", "--json")
    assert code == 0 and "skipping 1 image without a partner" in caplog.text and "alone" in caplog.text
    facts = json.loads(out)
    assert facts["name"] == "pairs" and facts["path"] == str(tmp_path / "pd") and facts["pairs"] == 4
    assert facts["found"]["train"] == {"pairs": 3, "sizes": 2, "smallest": [30, 40], "largest": [48, 64]}
    assert facts["found"]["test"] == {"pairs": 1, "sizes": 1, "smallest": [90, 20], "largest": [90, 20]}
    assert facts["found"]["val"]["pairs"] == 0 and "has no folder 'val'; its folders are test, train" in (
        facts["found"]["val"]["why"])

    code, out, _ = run_main(capsys, "data", "info", f"pairs:{tmp_path / 'pd'}")
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in out.splitlines()
            if line.startswith("│ ") and line.split("│")[1].strip()}
    assert code == 0 and rows["pairs"] == "4"
    assert rows["train split"] == "3 pairs in 2 sizes, 30x40 to 48x64 (height x width)"
    assert rows["test split"] == "1 pair, all 90x20 (height x width)"
    assert rows["val split"].startswith("no pairs:")


@pytest.mark.parametrize(("data", "says"), [
    ("facades:{tmp}", "dataset 'facades' is not read from a folder you name; `zoo data info facades` shows it"),
    ("folder:{tmp}/missing", "/missing' is not a directory (your side-by-side AB images"),
    ("pairs:", "dataset 'pairs:': a path must follow 'pairs:'"),
])
def test_info_on_a_path_it_cannot_describe_is_one_line(zoo_env, tmp_path, capsys, data, says):
    code, out, err = run_main(capsys, "data", "info", data.format(tmp=tmp_path))
    assert code == 1 and out == "" and err.count("\n") == 1 and says in err
    assert not (tmp_path / "facades").exists()
