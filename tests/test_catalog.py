"""The translator catalog: shipped entries, the user registry, plugin entries, and pulls from 127.0.0.1.

The pulled checkpoints are written as the reference implementation writes its generators: a plain
dict of tensors from ``torch.save``, without ``num_batches_tracked`` (the published files predate it),
at a tiny width (``ngf=4``) so that a pull takes milliseconds.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from importlib import resources

import pytest
import torch
from helpers import run_zoo
from safetensors.torch import load_file

from pix2pix_zoo import hookimpl, plugins, translators
from pix2pix_zoo.errors import CatalogError, DataError, PluginError
from pix2pix_zoo.spec import resolve
from pix2pix_zoo.translator import WEIGHTS_FILE, read_card

TINY_SPEC = "unet_256(ngf=4)+patch70+l1cgan"


def user_entry(home, name: str, url: str, *, spec: str = TINY_SPEC, weights_format: str = "reference-pth",
               **weights: str) -> None:
    """A user-registry entry for a generator (the tiny one unless ``spec`` says) at ``url``."""
    extra = "".join(f'{key} = "{value}"\n' for key, value in weights.items())
    folder = home / "registry"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.toml").write_text(textwrap.dedent(f"""\
        name = "{name}"
        spec = "{spec}"
        task = "labels -> photos"
        dataset = "facades"
        direction = "BtoA"
        in_channels = 3
        out_channels = 3
        train_size = 256
        license = "BSD"

        [weights]
        url = "{url}"
        format = "{weights_format}"
        """) + extra)


def reference_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    generator = resolve(TINY_SPEC).build().generator
    return {k: v.clone() for k, v in generator.state_dict().items() if not k.endswith("num_batches_tracked")}


@pytest.fixture
def served(home, http_server):
    """The tiny reference checkpoint served as ``/tiny.pth`` and a user entry ``tiny`` pointing at it."""
    state = reference_state_dict()
    torch.save(state, http_server.folder / "tiny.pth")
    user_entry(home, "tiny", f"{http_server.url}/tiny.pth")
    return state


def test_every_shipped_entry_validates_with_a_safe_unique_name(home):
    files = [f for f in resources.files(translators.SHIPPED_PACKAGE).iterdir() if f.name.endswith(".toml")]
    entries = translators.list_translators()
    assert len(entries) == len(files) >= 5
    assert len({e.name for e in entries}) == len(entries)
    for entry in entries:
        assert translators.NAME_PATTERN.fullmatch(entry.name) and entry.origin == "shipped"
        assert entry.spec == "unet_256+patch70+l1cgan" and entry.format == "reference-pth"
        assert entry.url == f"http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/{entry.name}.pth"
        assert entry.verification == "unverified" and not entry.downloaded
    directions = {e.name: e.direction for e in entries}
    assert directions == {"facades_label2photo": "BtoA", "sat2map": "AtoB", "map2sat": "BtoA",
                          "edges2shoes": "AtoB", "day2night": "BtoA"}
    assert [e.name for e in translators.list_translators("*2sat")] == ["map2sat"]


@pytest.mark.parametrize(
    ("name", "field"), [("../../evil", "'name'"), ("a/b", "'name'"), (".hidden", "'name'"), ("Upper", "'name'")]
)
def test_an_unsafe_user_name_is_refused(home, name, field):
    user_entry(home, "evil", "http://127.0.0.1:9/x.pth")
    path = home / "registry" / "evil.toml"
    path.write_text(path.read_text().replace('name = "evil"', f'name = "{name}"'))
    with pytest.raises(CatalogError, match=rf"evil.toml: field {field} must be lower-case"):
        translators.list_translators()
    assert not (home / "translators").exists()


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('direction = "BtoA"', 'direction = "up"', "field 'direction' must be one of AtoB, BtoA"),
        (f'spec = "{TINY_SPEC}"', 'spec = "unet(ngf=4)+patch+l1cgan"', "must be canonical: 'unet_256"),
        ('train_size = 256', 'train_sise = 256', "field 'train_sise' is not a catalog field; did you mean train_size?"),
        ('format = "reference-pth"', 'format = "pickle"', "field 'weights.format' must be one of"),
        ('in_channels = 3', 'in_channels = 0', "field 'in_channels' must be a positive integer"),
    ],
)
def test_schema_errors_name_the_file_and_field(home, old, new, message):
    user_entry(home, "tiny", "http://127.0.0.1:9/x.pth")
    path = home / "registry" / "tiny.toml"
    path.write_text(path.read_text().replace(old, new))
    with pytest.raises(CatalogError, match=message) as caught:
        translators.list_translators()
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_name_defined_twice_is_refused(home):
    user_entry(home, "sat2map", "http://127.0.0.1:9/x.pth")
    with pytest.raises(CatalogError, match="'sat2map' is defined twice: in registry/sat2map.toml and"):
        translators.list_translators()


def test_plugin_entries(home, register_plugin):
    record = translators.find_translator("sat2map").record() | {"name": "plugin_sat2map"}

    class Plugin:
        @hookimpl
        def register_translators(self, register):
            register(record)

    register_plugin(Plugin(), "maps_plugin")
    assert translators.find_translator("plugin_sat2map").origin == "maps_plugin"
    (record_of_plugin,) = [r for r in plugins.plugin_records() if r.name == "maps_plugin"]
    assert record_of_plugin.as_dict()["registered"] == [{"kind": "translator", "name": "plugin_sat2map"}]

    class Broken:
        @hookimpl
        def register_translators(self, register):
            register(record | {"name": "broken", "direction": "sideways"})

    register_plugin(Broken(), "broken_plugin")
    with pytest.raises(PluginError, match="plugin 'broken_plugin': field 'direction'"):
        translators.list_translators()


def test_zoo_list_json_subprocess(tmp_path):
    result = run_zoo("list", "--json", ZOO_HOME=str(tmp_path))
    assert result.returncode == 0 and result.stderr == ""
    listed = {e["name"]: e for e in json.loads(result.stdout)}
    assert set(listed) == {"facades_label2photo", "sat2map", "map2sat", "edges2shoes", "day2night"}
    sat2map = listed["sat2map"]
    assert sat2map["origin"] == "shipped" and sat2map["parameters"] == 54_413_955
    assert sat2map["downloaded"] is False and sat2map["verification"] == "unverified"
    assert sat2map["weights"] == {"url": sat2map["download_url"], "format": "reference-pth"}
    table = run_zoo("list", "sat*", ZOO_HOME=str(tmp_path))
    assert table.returncode == 0 and "sat2map" in table.stdout and "map2sat" not in table.stdout


def test_pull_converts_a_reference_checkpoint_and_caches_it(home, http_server, served):
    path = translators.pull("tiny", progress=False)
    assert path == home / "translators" / "tiny" / WEIGHTS_FILE
    weights = load_file(str(path))
    assert set(weights) - set(served) == {k for k in weights if k.endswith("num_batches_tracked")}
    assert all(torch.equal(weights[key], value) for key, value in served.items())
    card = read_card(path)
    assert card.spec == TINY_SPEC and card.direction == "BtoA" and card.inference_mode == "paper"
    assert card.provenance["url"] == f"{http_server.url}/tiny.pth" and card.provenance["format"] == "reference-pth"
    assert not any(p.suffix == ".pth" or p.name.startswith(".") for p in path.parent.iterdir())
    entry = translators.find_translator("tiny")
    assert entry.downloaded and entry.verification == "recorded"
    assert entry.recorded_sha256 == card.provenance["sha256"]

    assert translators.pull("tiny") == path  # a cache hit: no second request
    assert http_server.requests == ["/tiny.pth"]


def test_zoo_pull_subprocess_and_mirror(home, http_server, served):
    user_entry(home, "mirrored", "http://example.invalid/models/tiny.pth")
    result = run_zoo("pull", "mirrored", ZOO_HOME=str(home), ZOO_TRANSLATORS_URL=http_server.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(home / "translators" / "mirrored" / WEIGHTS_FILE)
    assert http_server.requests == ["/tiny.pth"]
    again = run_zoo("pull", "mirrored", ZOO_HOME=str(home), ZOO_TRANSLATORS_URL=http_server.url)
    assert again.returncode == 0 and "already pulled" in again.stderr and http_server.requests == ["/tiny.pth"]


def test_a_wrong_published_sha256_fails_and_deletes_the_download(home, http_server, served):
    user_entry(home, "tiny", f"{http_server.url}/tiny.pth", sha256="0" * 64)
    with pytest.raises(DataError, match="sha256 mismatch") as caught:
        translators.pull("tiny", progress=False)
    assert "\n" not in str(caught.value)
    folder = home / "translators" / "tiny"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_the_first_downloads_sha256_is_enforced_later(home, http_server, served):
    translators.pull("tiny", progress=False)
    torch.save(reference_state_dict(seed=1), http_server.folder / "tiny.pth")  # the file changed upstream
    (home / "translators" / "tiny" / WEIGHTS_FILE).unlink()
    with pytest.raises(CatalogError, match="sha256 mismatch for .*: the first download of 'tiny' was"):
        translators.pull("tiny", progress=False)
    assert sorted(p.name for p in (home / "translators" / "tiny").iterdir()) == [translators.SOURCE_RECORD]
    shutil.rmtree(home / "translators" / "tiny")  # forgetting the record accepts the new file
    assert translators.pull("tiny", progress=False).is_file()


class Payload(torch.nn.Module):
    """Would run code if a checkpoint holding it were unpickled without weights_only."""

    def __setstate__(self, state):
        raise AssertionError("unpickled a Python object")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"weight": torch.ones(1), "epoch": 3}, "entry 'epoch' is a int, not a tensor"),
        ({"state_dict": {"weight": torch.ones(1)}}, "entry 'state_dict' is a dict, not a tensor"),
        ([torch.ones(1)], "holds a list, not a state dict"),
        (Payload(), r"not a weights-only PyTorch checkpoint: it holds a Python object \(.*Payload\)"),
    ],
)
def test_a_checkpoint_that_is_not_a_flat_state_dict_is_refused(home, http_server, content, message):
    torch.save(content, http_server.folder / "bad.pth")
    user_entry(home, "bad", f"{http_server.url}/bad.pth")
    with pytest.raises(CatalogError, match=message):
        translators.pull("bad", progress=False)
    assert not (home / "translators" / "bad" / WEIGHTS_FILE).exists()
    assert not (home / "translators" / "bad" / translators.SOURCE_RECORD).exists()


def test_a_checkpoint_of_another_layout_is_one_line(home, http_server, served):
    torch.save({f"module.{k}": v for k, v in served.items()}, http_server.folder / "tiny.pth")
    with pytest.raises(CatalogError, match=r"does not fit 'unet_256\(ngf=4\).*: 69 keys \(model.model.0.weight, .*\) missing, "
                       r"69 keys \(module.model.model.0.weight, .*\) unexpected$"):
        translators.pull("tiny", progress=False)
    state = reference_state_dict()
    state["model.model.0.weight"] = torch.zeros(1)
    torch.save(state, http_server.folder / "tiny.pth")
    shutil.rmtree(home / "translators")
    with pytest.raises(CatalogError, match=r"does not fit .*: 1 key of another shape "
                       r"\(model.model.0.weight is \[1\], not \[4, 3, 4, 4\]\)$"):
        translators.pull("tiny", progress=False)


def test_http_errors_are_one_line(home, http_server):
    user_entry(home, "missing", f"{http_server.url}/missing.pth")
    result = run_zoo("pull", "missing", ZOO_HOME=str(home))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.endswith("HTTP 404 File not found\n") and result.stderr.count("\n") == 1


def test_a_pulled_reference_checkpoint_computes_what_the_reference_network_does(home, http_server, served):
    """Reference parity by name: pull, load as a Translator, compare with the reference architecture
    written out functionally from the served weights (tests/test_reference_layout.py), eval mode."""
    from test_reference_layout import functional_unet

    from pix2pix_zoo.translator import Translator

    translator = Translator.from_pretrained("tiny", device="cpu", mode="eval")
    image = torch.rand(1, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        expected = functional_unet(served, image)
    torch.testing.assert_close(translator.translate(image), expected, rtol=0, atol=1e-5)
