"""``zoo publish``: a tiny training run becomes a catalog entry that lists, verifies and translates offline."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import pytest
from helpers import run_zoo
from PIL import Image
from test_trainer import tiny_config

from pix2pix_zoo import translators
from pix2pix_zoo.download import sha256_of
from pix2pix_zoo.engine.trainer import Trainer
from pix2pix_zoo.errors import CatalogError
from pix2pix_zoo.translator import read_card


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "Tiny Run+1"
    Trainer(tiny_config(max_steps=2, sample_every=1, data_options={"size": 32, "count": 8}), run_dir, progress=False).fit()
    return run_dir


def test_a_published_run_is_a_pulled_verified_entry(trained, home, tmp_path):
    published = translators.publish(trained, "tiny")
    weights = published.folder / "model.safetensors"
    assert published.folder == home / "translators" / "tiny"
    assert published.registry_file == home / "registry" / "tiny.toml"
    record = tomllib.loads(published.registry_file.read_text())
    assert record["weights"] == {"url": weights.resolve().as_uri(), "format": "safetensors",
                                 "sha256": sha256_of(weights), "size_bytes": weights.stat().st_size}
    evaluation = json.loads((trained / "eval.json").read_text())
    assert record["metrics"]["l1"] == evaluation["translator"]["l1"] and "test split" in record["metrics"]["data"]
    assert record["train_size"] == 32 and "Isola" in record["citation"]

    [entry] = translators.list_translators("tiny")
    assert entry.downloaded and entry.verification == "published" and entry.origin == "user"
    card = read_card(weights)
    assert card.metrics == record["metrics"] and card.provenance["train_size"] == 32
    assert card.provenance["catalog"] == "tiny" and "Isola" in card.provenance["citation"]
    model_card = (published.folder / "README.md").read_text()
    assert entry.spec in model_card and "mean training target" in model_card and "![samples](samples.png)" in model_card
    assert Image.open(published.folder / "samples.png").size == Image.open(sorted((trained / "samples").glob("*.png"))[-1]).size

    listed = run_zoo("list", "--json", ZOO_HOME=str(home))
    assert listed.returncode == 0, listed.stderr
    [shown] = [e for e in json.loads(listed.stdout) if e["name"] == "tiny"]
    assert shown["downloaded"] and shown["verification"] == "published"
    Image.new("RGB", (45, 29), "red").save(tmp_path / "input.png")
    translated = run_zoo("translate", "tiny", str(tmp_path / "input.png"), "-o", str(tmp_path / "out"),
                         "--no-progress", ZOO_HOME=str(home))
    assert translated.returncode == 0, translated.stderr
    assert Image.open(tmp_path / "out" / "input.png").size == (45, 29)


def test_publishing_twice_needs_overwrite(trained, home):
    first = run_zoo("publish", str(trained), "--name", "tiny", ZOO_HOME=str(home))
    assert first.returncode == 0 and first.stdout.strip() == str(home / "translators" / "tiny"), first.stderr
    again = run_zoo("publish", str(trained), "--name", "tiny", ZOO_HOME=str(home))
    assert again.returncode == 1 and "--overwrite" in again.stderr and len(again.stderr.splitlines()) == 1
    assert translators.publish(trained, "tiny", overwrite=True).folder == home / "translators" / "tiny"


def test_bad_runs_names_and_targets_are_one_line_errors(trained, home, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_zoo("publish", str(tmp_path / "empty"), ZOO_HOME=str(home))
    assert result.returncode == 1 and "no translator/model.safetensors" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    with pytest.raises(CatalogError, match="hf://ORG/NAME"):
        translators.publish(trained, "tiny", to="hf://just-a-name")
    with pytest.raises(CatalogError, match="lower-case"):
        translators.publish(trained, "Tiny/../x")
    with pytest.raises(CatalogError, match="already in the catalog"):
        translators.publish(trained, "sat2map")
    assert not (home / "registry").exists()


def test_default_name_and_another_registry(trained, home, tmp_path):
    published = translators.publish(trained, registry=tmp_path / "mine")
    assert published.entry.name == "tiny-run-1"
    assert published.registry_file == tmp_path / "mine" / "tiny-run-1.toml"
    assert not translators.list_translators("tiny-run-1")  # not in the user registry


def test_upload_sends_the_published_folder(trained, home, monkeypatch):
    calls = []

    class FakeApi:
        def create_repo(self, repo_id, **options):
            calls.append(("create_repo", repo_id, options))

        def upload_folder(self, **options):
            uploaded = {p.name: p.read_bytes() for p in Path(options["folder_path"]).iterdir()}
            calls.append(("upload_folder", options, uploaded))

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")  # a login is checked before anything is written
    published = translators.publish(trained, "tiny", to="hf://zoo-org/tiny-facades")
    assert calls[0] == ("create_repo", "zoo-org/tiny-facades", {"repo_type": "model", "exist_ok": True})
    _, upload, uploaded = calls[1]
    assert upload["repo_id"] == "zoo-org/tiny-facades"
    assert uploaded == {p.name: p.read_bytes() for p in published.folder.iterdir()}  # uploaded, then moved into place
    assert set(upload["allow_patterns"]) == {"model.safetensors", "README.md", "samples.png"}
    assert published.entry.url == "https://huggingface.co/zoo-org/tiny-facades/resolve/main/model.safetensors"
    assert translators.find_translator("tiny").downloaded


def test_entry_toml_round_trips_through_tomllib():
    [sat2map] = translators.list_translators("sat2map")
    nasty = 'quote " backslash \\ newline \n tab \t bell \x07 del \x7f unicode é ☃'
    entry = translators.parse_entry(
        sat2map.record() | {"notes": nasty, "citation": "C:\\path", "metrics": {"data": nasty, "l1": 1e-05, "psnr": math.inf, "n": 3}},
        "test", "user",
    )
    text = translators.entry_toml(entry)
    assert translators.parse_entry(tomllib.loads(text), "test", "user") == entry
    assert "[weights]" in text and "[metrics]" in text
