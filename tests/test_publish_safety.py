"""Nothing of the user's is lost and every refusal is one line: translate never writes over its
inputs, eval checks --output first, publish never replaces weights another entry points at and
leaves nothing behind when it fails, and no file the zoo reads (registry entries, a run's JSON,
$ZOO_HOME itself) can break it."""

from __future__ import annotations

import json
import shutil
import socket
import tomllib

import pytest
import torch
from helpers import run_main, run_zoo
from PIL import Image
from test_catalog import user_entry
from test_trainer import tiny_config

from pix2pix_zoo import translators
from pix2pix_zoo.download import sha256_of
from pix2pix_zoo.engine.trainer import Trainer
from pix2pix_zoo.errors import CatalogError
from pix2pix_zoo.spec import resolve
from pix2pix_zoo.translator import Card, save_translator

TRANSLATOR_SPEC = "resnet_6blocks(ngf=4,norm=batch)+l1"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny finished runs whose translators differ."""
    folder = tmp_path_factory.mktemp("runs")
    for name, seed in (("a", 1), ("b", 2)):
        config = tiny_config(max_steps=2, sample_every=1, seed=seed, data_options={"size": 32, "count": 8})
        Trainer(config, folder / name, progress=False).fit()
    return folder


@pytest.fixture(scope="module")
def translator_dir(tmp_path_factory):
    torch.manual_seed(0)
    spec = resolve(TRANSLATOR_SPEC)
    folder = tmp_path_factory.mktemp("translator")
    card = Card(spec=str(spec), in_channels=3, out_channels=3, size_multiple=4)
    save_translator(folder, spec.build(3, 3).generator, card)
    return folder


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name, colour in (("a.png", "red"), ("b.png", "blue")):
        Image.new("RGB", (20, 12), colour).save(folder / name)
    return folder


def files_under(folder):
    return {path: path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def assert_one_line(result, *needles):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "unexpected" not in lines[0] and all(needle in lines[0] for needle in needles), lines[0]


# -- translate ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("output", ["{in}", "{in}/../in", "{link}"])
def test_translate_refuses_an_output_that_would_replace_an_input(translator_dir, images, tmp_path, output):
    (tmp_path / "link").symlink_to(images)
    before = files_under(images)
    output = output.format(**{"in": images, "link": tmp_path / "link"})
    result = run_zoo("translate", str(translator_dir), str(images), "-o", output, "--no-progress")
    assert_one_line(result, "a.png")
    assert files_under(images) == before


def test_translate_refuses_an_output_file_linked_to_an_input(translator_dir, images, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.png").symlink_to(images / "a.png")
    before = files_under(images)
    result = run_zoo("translate", str(translator_dir), str(images / "a.png"), "-o", str(tmp_path / "out"),
                     "--no-progress")
    assert_one_line(result, "a.png")
    assert files_under(images) == before


@pytest.mark.parametrize("output", ["file.txt", "file.txt/sub"])
def test_translate_to_a_regular_file_is_one_line(translator_dir, images, tmp_path, output):
    (tmp_path / "file.txt").write_text("mine")
    result = run_zoo("translate", str(translator_dir), str(images), "-o", str(tmp_path / output), "--no-progress")
    assert_one_line(result, "file.txt", "--output")
    assert (tmp_path / "file.txt").read_text() == "mine"


def test_translate_of_one_unreadable_image_is_one_line(translator_dir, tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG broken")
    result = run_zoo("translate", str(translator_dir), str(tmp_path / "broken.png"), "-o", str(tmp_path / "out"),
                     "--no-progress")
    assert_one_line(result, "broken.png")
    assert not (tmp_path / "out").exists()


# -- eval --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("output", "needle"), [("missing/dir/x.json", "missing"), ("folder", "folder"),
                                                 ("file.txt/x.json", "file.txt")])
def test_eval_checks_its_output_before_evaluating(translator_dir, tmp_path, capsys, monkeypatch, output, needle):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.txt").write_text("mine")

    def never(*args, **kwargs):
        raise AssertionError("evaluated before checking --output")

    monkeypatch.setattr("pix2pix_zoo.evaluation.evaluate", never)
    monkeypatch.delenv("ZOO_DEBUG", raising=False)
    before = files_under(tmp_path)
    code, _, err = run_main(capsys, "eval", str(translator_dir), "--data", "synthfacades", "--data-opt", "size=32",
                            "--data-opt", "count=2", "--output", str(tmp_path / output))
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "--output" in lines[0] and needle in lines[0], err
    assert files_under(tmp_path) == before and not (tmp_path / "missing").exists()


# -- $ZOO_HOME ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("arguments", [["pull", "sat2map"], ["list"], ["publish", "{run}", "--name", "x"]])
@pytest.mark.parametrize("home_path", ["file.txt", "file.txt/home"])
def test_a_zoo_home_that_cannot_be_a_folder_is_one_line(runs, tmp_path, arguments, home_path):
    (tmp_path / "file.txt").write_text("mine")
    arguments = [a.replace("{run}", str(runs / "a")) for a in arguments]
    result = run_zoo(*arguments, ZOO_HOME=str(tmp_path / home_path))
    assert_one_line(result, "ZOO_HOME", "file.txt")
    assert (tmp_path / "file.txt").read_text() == "mine"


# -- publish: weights another entry points at --------------------------------------------------------
def test_publish_never_replaces_weights_a_registry_folder_points_at(runs, home, tmp_path):
    shared = translators.publish(runs / "a", "shared", registry=tmp_path / "regA")
    weights = shared.folder / "model.safetensors"
    kept = weights.read_bytes()
    for overwrite in (False, True):
        result = run_zoo("publish", str(runs / "b"), "--name", "shared", *(["--overwrite"] * overwrite),
                         ZOO_HOME=str(home))
        assert_one_line(result, str(tmp_path / "regA" / "shared.toml"))
    with pytest.raises(CatalogError, match="regA"):
        translators.publish(runs / "b", "shared", registry=tmp_path / "regB", overwrite=True)
    assert weights.read_bytes() == kept and not (home / "registry").exists() and not (tmp_path / "regB").exists()
    assert tomllib.loads(shared.registry_file.read_text())["weights"]["sha256"] == sha256_of(weights)

    with pytest.raises(CatalogError, match="--overwrite"):
        translators.publish(runs / "b", "shared", registry=tmp_path / "regA")
    again = translators.publish(runs / "b", "shared", registry=tmp_path / "regA", overwrite=True)  # that very entry
    assert weights.read_bytes() != kept
    assert tomllib.loads(again.registry_file.read_text())["weights"]["sha256"] == sha256_of(weights)


def test_publish_never_replaces_weights_the_user_registry_points_at(runs, home, tmp_path):
    shared = translators.publish(runs / "a", "shared")
    kept = (shared.folder / "model.safetensors").read_bytes()
    for overwrite in (False, True):
        with pytest.raises(CatalogError, match="already in the catalog"):
            translators.publish(runs / "b", "shared", registry=tmp_path / "regA", overwrite=overwrite)
    assert (shared.folder / "model.safetensors").read_bytes() == kept and not (tmp_path / "regA").exists()


def test_publish_over_weights_no_entry_claims_needs_overwrite(runs, home):
    folder = home / "translators" / "stray"
    shutil.copytree(runs / "a" / "translator", folder)
    kept = (folder / "model.safetensors").read_bytes()
    with pytest.raises(CatalogError, match="--overwrite"):
        translators.publish(runs / "b", "stray")
    assert (folder / "model.safetensors").read_bytes() == kept
    translators.publish(runs / "b", "stray", overwrite=True)
    assert (folder / "model.safetensors").read_bytes() != kept


def test_a_registry_that_is_a_file_is_refused_before_anything_is_written(runs, home, tmp_path, monkeypatch):
    (tmp_path / "file.txt").write_text("mine")

    class NoApi:
        def __init__(self):
            raise AssertionError("uploaded before checking --registry")

    monkeypatch.setattr("huggingface_hub.HfApi", NoApi)
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    for registry in (tmp_path / "file.txt", tmp_path / "file.txt" / "sub"):
        with pytest.raises(CatalogError, match="file.txt is not a folder"):
            translators.publish(runs / "a", "tiny", registry=registry, to="hf://zoo-org/tiny")
    assert not (home / "translators").exists() and (tmp_path / "file.txt").read_text() == "mine"


def test_a_malformed_first_download_record_verifies_nothing(home):
    user_entry(home, "tiny", "http://127.0.0.1:9/x.pth")
    (home / "translators" / "tiny").mkdir(parents=True)
    for recorded in (["not", "a", "hash"], 5, "not-a-hash"):
        (home / "translators" / "tiny" / "source.json").write_text(json.dumps({"sha256": recorded}))
        entry = translators.find_translator("tiny")
        assert entry.recorded_sha256 is None and entry.verification == "unverified"


# -- publish: the Hub --------------------------------------------------------------------------------
@pytest.fixture
def closed_port():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return listener.getsockname()[1]


@pytest.mark.parametrize(("settings", "needle"), [
    ({"HF_TOKEN": "hf_not_a_real_token"}, "upload to hf://zoo-org/tiny failed"),
    ({"HF_TOKEN": "hf_not_a_real_token", "HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE"),
    ({}, "login"),
])
def test_a_failed_upload_publishes_nothing(runs, home, tmp_path, closed_port, settings, needle):
    hub = {"HF_ENDPOINT": f"http://127.0.0.1:{closed_port}", "HF_HOME": str(tmp_path / "hf"), **settings}
    result = run_zoo("publish", str(runs / "a"), "--name", "tiny", "--to", "hf://zoo-org/tiny",
                     ZOO_HOME=str(home), **hub)
    assert_one_line(result, needle)
    assert not (home / "registry").exists()
    assert not (home / "translators").exists() or not any((home / "translators").iterdir())


def test_a_failed_upload_keeps_what_was_published_before(runs, home, monkeypatch):
    first = translators.publish(runs / "a", "tiny")
    before = files_under(home)

    class FailingApi:
        def create_repo(self, repo_id, **options):
            raise ConnectionError("no route to the Hub")

    monkeypatch.setattr("huggingface_hub.HfApi", FailingApi)
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    with pytest.raises(CatalogError, match="upload to hf://zoo-org/tiny failed"):
        translators.publish(runs / "b", "tiny", overwrite=True, to="hf://zoo-org/tiny")
    assert files_under(home) == before and sorted(p.name for p in first.folder.parent.iterdir()) == ["tiny"]


# -- publish: a run's own files ----------------------------------------------------------------------
@pytest.mark.parametrize(("file", "content"), [
    ("eval.json", "{not json"),
    ("eval.json", "[1, 2]"),
    ("eval.json", '{"split": "test", "pairs": 8, "translator": 5}'),
    ("eval.json", '{"split": "test", "pairs": "many", "translator": {"l1": 0.2}}'),
    ("eval.json", '{"split": ["test"], "pairs": 8, "translator": {"l1": 0.2}}'),
    ("eval.json", '{"split": "test", "pairs": 8, "translator": {"l1": {"mean": 0.2}}}'),
    ("eval.json", '{"split": "test", "pairs": 8}'),
    ("config.json", "{not json"),
    ("config.json", "[]"),
    ("config.json", '{"config": []}'),
    ("config.json", '{"config": {"crop_size": "large"}}'),
    ("config.json", '{"config": {"crop_size": 100000000000000000}}'),
])
def test_a_malformed_run_file_is_one_line_naming_it(runs, home, tmp_path, file, content):
    run = tmp_path / "run"
    shutil.copytree(runs / "a", run)
    (run / file).write_text(content)
    result = run_zoo("publish", str(run), "--name", "tiny", ZOO_HOME=str(home))
    assert_one_line(result, str(run / file))
    assert not (home / "registry").exists() and not (home / "translators" / "tiny").exists()


# -- registry entries --------------------------------------------------------------------------------
@pytest.mark.parametrize(("old", "new", "field"), [
    ("in_channels = 3", "in_channels = 100000000000000000", "in_channels"),
    ("in_channels = 3", "in_channels = 1e17", "in_channels"),
    ("out_channels = 3", "out_channels = 100000000000000000", "out_channels"),
    ("train_size = 256", "train_size = 100000000000000000", "train_size"),
    ('format = "reference-pth"', 'format = "reference-pth"\nsize_bytes = 100000000000000000', "weights.size_bytes"),
])
def test_out_of_range_entry_fields_are_one_line_naming_the_file(home, old, new, field):
    user_entry(home, "tiny", "http://127.0.0.1:9/x.pth")
    path = home / "registry" / "tiny.toml"
    path.write_text(path.read_text().replace(old, new))
    with pytest.raises(CatalogError, match=rf"field '{field}' must be"):
        translators.list_translators()
    for arguments in (["list"], ["list", "--json"], ["pull", "sat2map"]):
        result = run_zoo(*arguments, ZOO_HOME=str(home))
        assert_one_line(result, str(path), field)
