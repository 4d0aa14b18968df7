"""Hub names, ``hf://ORG/NAME[@REVISION]``, wherever a translator is named: pulled through
huggingface_hub from a loopback server standing in for the Hub (``HF_ENDPOINT``), the sha256 of
the first pull recorded and verified after, usable offline once pulled, and bad names refused in
one line before anything is fetched or written.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import assert_one_line, run_env, run_main, run_zoo
from huggingface_hub import constants
from loopback import LoopbackHub
from PIL import Image

from pix2pix_zoo.download import sha256_of
from pix2pix_zoo.errors import CatalogError
from pix2pix_zoo.spec import resolve
from pix2pix_zoo.translator import Card, Translator, save_translator
from pix2pix_zoo.translators import locate, parse_hub_name

TINY_SPEC = "resnet_6blocks(ngf=4,norm=batch)+l1"
REPO = "zoo-org/tiny-facades"


def translator_bytes(folder: Path, seed: int) -> bytes:
    """A tiny real translator file (its generator initialised from ``seed``), as bytes to serve."""
    torch.manual_seed(seed)
    spec = resolve(TINY_SPEC)
    card = Card(spec=str(spec), in_channels=3, out_channels=3, size_multiple=4, inference_mode="eval")
    return save_translator(folder / f"seed{seed}", spec.build(3, 3).generator, card).read_bytes()


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> list[bytes]:
    """Two different translator files: what a repository holds, and what it holds after a change."""
    folder = tmp_path_factory.mktemp("weights")
    return [translator_bytes(folder, 0), translator_bytes(folder, 1)]


@pytest.fixture
def hub(tmp_path, weights):
    """A loopback Hub serving ``REPO`` with ``weights[0]`` on main."""
    with LoopbackHub(tmp_path / "hub-server") as server:
        server.commits = [server.put(REPO, weights[0])]
        yield server


def hub_env(tmp_path: Path, hub: LoopbackHub) -> dict[str, str]:
    """The environment of a CLI subprocess that reaches ``hub`` as the Hub, with caches of its own."""
    return {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hf" / "hub"),
            "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "ZOO_HOME": str(tmp_path / "zoo")}


@pytest.fixture
def in_process_hub(tmp_path, hub, monkeypatch) -> LoopbackHub:
    """``hub`` as this process's Hub. huggingface_hub reads its environment once, at import, so its
    constants are patched as well."""
    for key, value in hub_env(tmp_path, hub).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return hub


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for index, size in enumerate([(32, 32), (20, 12)]):
        Image.new("RGB", size, (60 * index, 90, 200)).save(folder / f"in{index}.png")
    return folder


def hub_folder(tmp_path: Path, revision: str = "main") -> Path:
    return tmp_path / "zoo" / "translators" / "_hub" / "zoo-org" / "tiny-facades" / revision


def record(tmp_path: Path, revision: str = "main") -> dict:
    return json.loads((hub_folder(tmp_path, revision) / "source.json").read_text())


# -- the command line, in real processes -------------------------------------------------------------
def test_translate_pulls_a_hub_name_records_its_sha256_and_eval_then_runs_offline(tmp_path, hub, weights, images):
    env = hub_env(tmp_path, hub)
    result = run_zoo("translate", f"hf://{REPO}", str(images), "-o", str(tmp_path / "out"), "--no-progress", **env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["in0.png", "in1.png"]
    assert Image.open(tmp_path / "out" / "in1.png").size == (20, 12)
    kept = hub_folder(tmp_path) / "model.safetensors"
    assert kept.read_bytes() == weights[0]
    assert record(tmp_path) == {"repo": REPO, "revision": "main", "sha256": sha256_of(kept), "commit": hub.commits[0]}
    assert f"/{REPO}/resolve/main/model.safetensors" in hub.requests

    hub.__exit__(None, None, None)  # the Hub is gone, and huggingface_hub's cache: the verified copy is enough
    shutil.rmtree(tmp_path / "hf")
    result = run_zoo("eval", f"hf://{REPO}", "--data", "synthfacades", "--data-opt", "size=32",
                     "--data-opt", "count=2", "--json", **env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["pairs"] == 2


def test_pull_refuses_a_file_that_changed_on_the_hub_until_the_record_goes(tmp_path, hub, weights):
    env = hub_env(tmp_path, hub)
    first = run_zoo("pull", f"hf://{REPO}", **env)
    assert first.returncode == 0, first.stderr[-2000:]
    kept = Path(first.stdout.strip())
    assert kept == hub_folder(tmp_path) / "model.safetensors" and kept.read_bytes() == weights[0]

    hub.put(REPO, weights[1])  # the repository's main branch moves on
    changed = run_zoo("pull", f"hf://{REPO}", **env)
    assert_one_line(changed.returncode, changed.stderr, "changed since it was first pulled", "refused",
                    f"hf://{REPO}@{hub.commits[0]}", "source.json")
    assert kept.read_bytes() == weights[0] and record(tmp_path)["sha256"] == sha256_of(kept)
    assert sorted(p.name for p in hub_folder(tmp_path).iterdir()) == ["model.safetensors", "source.json"]

    pinned = run_zoo("pull", f"hf://{REPO}@{hub.commits[0]}", **env)  # the commit trusted first
    assert pinned.returncode == 0, pinned.stderr[-2000:]
    assert Path(pinned.stdout.strip()).read_bytes() == weights[0]

    (hub_folder(tmp_path) / "source.json").unlink()  # the change was meant: trust the new file
    accepted = run_zoo("pull", f"hf://{REPO}", **env)
    assert accepted.returncode == 0, accepted.stderr[-2000:]
    assert kept.read_bytes() == weights[1] and record(tmp_path)["sha256"] == sha256_of(kept)


def test_without_huggingface_hub_a_hub_name_is_one_line_naming_the_install(tmp_path, hub):
    hidden = ("import sys; sys.modules['huggingface_hub'] = None\n"  # an import of it now fails
              "from pix2pix_zoo.cli import main; main(['pull', 'hf://zoo-org/tiny-facades'])")
    result = subprocess.run([sys.executable, "-c", hidden], capture_output=True, text=True, timeout=300,
                            env=run_env(**hub_env(tmp_path, hub)))
    assert_one_line(result.returncode, result.stderr, "huggingface_hub", 'pip install "pix2pix-zoo[hub]"')
    assert hub.requests == [] and not (tmp_path / "zoo").exists()


# -- the library, in this process ---------------------------------------------------------------------
def test_from_pretrained_takes_a_pinned_revision(tmp_path, in_process_hub, weights):
    hub = in_process_hub
    hub.put(REPO, weights[1])  # main moves on; the first commit still names the first file
    translator = Translator.from_pretrained(f"hf://{REPO}@{hub.commits[0]}", device="cpu")
    pinned = hub_folder(tmp_path, hub.commits[0]) / "model.safetensors"
    assert pinned.read_bytes() == weights[0] and translator.card.spec == str(resolve(TINY_SPEC))
    assert translator(Image.new("RGB", (16, 8))).size == (16, 8)
    assert locate(f"hf://{REPO}").read_bytes() == weights[1]  # unpinned: main, as it is now


def test_compare_ranks_a_hub_name_beside_a_pinned_one(tmp_path, in_process_hub, weights):
    from pix2pix_zoo.experiments.compare import EvaluationSetting, compare

    hub = in_process_hub
    hub.put(REPO, weights[1])
    setting = EvaluationSetting(data="synthfacades", data_options={"size": 32, "count": 2}, device="cpu")
    rows, _ = compare([f"hf://{REPO}", f"hf://{REPO}@{hub.commits[0]}"], setting)
    assert [(row.run, row.kind, row.spec) for row in rows] == [
        (f"hf://{REPO}", "translator", str(resolve(TINY_SPEC))),
        (f"hf://{REPO}@{hub.commits[0]}", "translator", str(resolve(TINY_SPEC)))]
    assert rows[0].evaluated_on == rows[1].evaluated_on and rows[0].translator  # evaluated and ranked together
    assert locate(f"hf://{REPO}@{hub.commits[0]}").read_bytes() == weights[0]


def test_a_pulled_name_needs_no_hub_and_a_damaged_copy_is_refused(tmp_path, in_process_hub, weights):
    kept = locate(f"hf://{REPO}")
    asked = len(in_process_hub.requests)
    assert locate(f"hf://{REPO}") == kept and len(in_process_hub.requests) == asked  # no network the second time

    kept.write_bytes(weights[1])  # the copy changed on disk since it was pulled
    with pytest.raises(CatalogError, match=r"no longer has the sha256 recorded .* zoo pull hf://zoo-org/tiny-facades"):
        locate(f"hf://{REPO}")


@pytest.mark.parametrize(("name", "fragment"), [
    ("hf://zoo-org/no-such-repo", "no Hub repository 'zoo-org/no-such-repo'"),
    (f"hf://{REPO}@no-such-branch", "has no revision 'no-such-branch'"),
    ("hf://zoo-org/empty-repo", "has no model.safetensors"),
], ids=["repository", "revision", "file"])
def test_what_the_hub_does_not_have_is_one_line(tmp_path, in_process_hub, capsys, name, fragment):
    in_process_hub.put("zoo-org/empty-repo", b"# not a translator\n", filename="README.md")
    code, out, err = run_main(capsys, "pull", name)
    assert_one_line(code, err, fragment)
    assert out == "" and not hub_folder(tmp_path).exists()


def test_a_file_that_is_no_translator_is_not_trusted(tmp_path, in_process_hub, capsys):
    in_process_hub.put(REPO, b"\x00" * 64)
    code, out, err = run_main(capsys, "pull", f"hf://{REPO}")
    assert_one_line(code, err, f"hf://{REPO}@main")
    assert not (hub_folder(tmp_path) / "model.safetensors").exists()
    assert not (hub_folder(tmp_path) / "source.json").exists()  # its hash is not recorded as trusted


# -- names ------------------------------------------------------------------------------------------
BAD_NAMES = [
    ("no-name", "hf://zoo-org"),
    ("empty-org", "hf:///tiny"),
    ("three-parts", "hf://a/b/c"),
    ("dot-dot-name", "hf://zoo-org/.."),
    ("dot-dot-revision", f"hf://{REPO}@../../../etc"),
    ("absolute", "hf:///etc/passwd"),
    ("space", "hf://zoo org/tiny"),
    ("percent-escape", "hf://zoo-org/%2e%2e"),
    ("empty-revision", f"hf://{REPO}@"),
    ("revision-escape", f"hf://{REPO}@main%2F..%2F.."),
    ("backslash", "hf://zoo-org\\..\\x/tiny"),
    ("double-dash", "hf://zoo--org/tiny"),
    ("too-long", f"hf://zoo-org/{'a' * 97}"),
]


@pytest.mark.parametrize("name", [n for _, n in BAD_NAMES], ids=[i for i, _ in BAD_NAMES])
def test_a_bad_hub_name_is_refused_before_anything_is_fetched(name, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "zoo"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out, err = run_main(capsys, "pull", name)
    assert_one_line(code, err, "bad Hub name", "hf://ORG/NAME")
    assert not (tmp_path / "zoo").exists()


def test_good_names_and_their_folders():
    assert parse_hub_name("hf://zoo-org/tiny").revision == "main"
    pr = parse_hub_name("hf://Org_1/name.v2@refs/pr/3")
    assert (pr.repo, pr.revision, pr.directory.name) == ("Org_1/name.v2", "refs/pr/3", "refs%2Fpr%2F3")
    assert str(pr) == "hf://Org_1/name.v2@refs/pr/3"
