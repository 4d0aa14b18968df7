"""A translator file is shared data: its card is checked like any input before anything is built,
it never makes the zoo open a path or a URL, and every refusal is one line.

Hostile files are written by hand (safetensors with a card of our choosing); "nothing is built"
is checked by watching the U-Net's builder, and "nothing big is allocated" by a subprocess's peak
memory.
"""

from __future__ import annotations

import builtins
import errno
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Annotated

import pix2pix_zoo_nets.unet
import pytest
import torch
from helpers import run_main, run_zoo
from test_catalog import user_entry
from huggingface_hub import constants
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from pix2pix_zoo import translators
from pix2pix_zoo.components import Bounds, External, Registry
from pix2pix_zoo.errors import CatalogError, PluginError, SpecError, ZooError
from pix2pix_zoo.spec import describe, resolve
from pix2pix_zoo.translator import CARD_KEY, WEIGHTS_FILE, Card, Translator, check_translator, save_translator

SPEC = "unet_128(ngf=4)+l1"  # size multiple 128


def tiny_state(spec: str = SPEC, in_channels: int = 3, out_channels: int = 3) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return resolve(spec).build(in_channels, out_channels).generator.state_dict()


def card_for(spec: str = SPEC, **fields) -> dict:
    return {"spec": spec, "in_channels": 3, "out_channels": 3, "size_multiple": 128} | fields


def write_translator(path: Path, card: dict | str, state: dict[str, torch.Tensor] | None = None) -> Path:
    """A translator file holding ``state`` (default: SPEC's) and ``card`` (JSON text as it is)."""
    tensors = {k: v.contiguous() for k, v in (tiny_state() if state is None else state).items()}
    save_file(tensors, str(path), metadata={CARD_KEY: card if isinstance(card, str) else json.dumps(card)})
    return path


def one_line(error: pytest.ExceptionInfo, *fragments: str) -> str:
    text = str(error.value)
    assert "\n" not in text and len(text) < 400, text
    for fragment in fragments:
        assert fragment in text, text
    return text


@pytest.fixture
def real_builds(monkeypatch) -> list[torch.device]:
    """The devices the U-Net builder runs on, but for the meta device (which allocates nothing)."""
    devices = []
    build = pix2pix_zoo_nets.unet._build_unet

    def watched(*args, **kwargs):
        if torch.get_default_device().type != "meta":
            devices.append(torch.get_default_device())
        return build(*args, **kwargs)

    monkeypatch.setattr(pix2pix_zoo_nets.unet, "_build_unet", watched)
    return devices


# -- point 7: cards are validated before anything is built ----------------------------------------------
HOSTILE_FIELDS = [  # (field, value, what the one-line error must say)
    ("in_channels", 10**9, "'in_channels' must be an integer from 1 to 4096"),
    ("in_channels", "3", "'in_channels'"),
    ("in_channels", -1, "'in_channels'"),
    ("in_channels", True, "'in_channels'"),
    ("in_channels", 3.0, "'in_channels'"),
    ("out_channels", 10**20, "'out_channels'"),
    ("size_multiple", 0, "'size_multiple' must be an integer from 1 to"),
    ("size_multiple", 3.5, "'size_multiple'"),
    ("size_multiple", 10**9, "'size_multiple'"),
    ("size_multiple", 64, "'size_multiple' is 64, but unet_128(ngf=4) needs 128"),
    ("direction", "sideways", "'direction' must be AtoB or BtoA"),
    ("inference_mode", "fast", "'inference_mode' must be eval or paper"),
    ("spec", 5, "'spec' must be a spec string"),
    ("spec", "unet_128(ngf=99999999999999999999999)+l1", "option 'ngf' must be from 1 to 4096"),
    ("spec", "unet_128(ngf=4)+nonsense", "unknown objective 'nonsense'"),
    ("codec", ["lab"], "'codec'"),
    ("metrics", "excellent", "'metrics' must be a JSON object"),
    ("plugins", ["pix2pix-zoo-x"], "'plugins' must be a JSON object of at most 32 distribution names"),
    ("plugins", {"pix2pix-zoo-x": 1}, "'plugins'"),
    ("plugins", {f"d{i}": "1" for i in range(33)}, "'plugins'"),
    ("plugins", {"x" * 101: "1"}, "'plugins'"),
]


def test_a_card_naming_plugins_offers_only_names_pip_could_install(tmp_path):
    plugins = {"pix2pix-zoo-nothere": "0.3", "x; rm -rf ~": "1", "pix2pix-zoo": "0"}  # the last one is installed
    path = write_translator(tmp_path / "t.safetensors", card_for(spec="unet_128(ngf=4)+nonsense", plugins=plugins))
    with pytest.raises(ZooError) as caught:
        Translator.from_pretrained(path, device="cpu")
    one_line(caught, str(path), "it was made with pix2pix-zoo-nothere 0.3, which is not installed here: "
                                "pip install pix2pix-zoo-nothere")
    assert str(caught.value).endswith("pip install pix2pix-zoo-nothere")


@pytest.mark.parametrize(("key", "value", "fragment"), HOSTILE_FIELDS,
                         ids=[f"{k}={v!r}"[:40] for k, v, _ in HOSTILE_FIELDS])
def test_a_hostile_card_field_is_one_line_before_anything_is_built(tmp_path, real_builds, key, value, fragment):
    path = write_translator(tmp_path / "hostile.safetensors", card_for(**{key: value}))
    real_builds.clear()  # the weights' own build
    with pytest.raises(ZooError) as caught:
        Translator.from_pretrained(path, device="cpu")
    one_line(caught, str(path), fragment)
    assert real_builds == []


@pytest.mark.parametrize(
    ("card", "fragment"),
    [("{not json", "not valid JSON"), ("[1, 2]", "not a JSON object"), (json.dumps({"spec": SPEC}), "no 'in_channels'")],
)
def test_a_card_that_is_not_one_is_one_line(tmp_path, card, fragment):
    path = write_translator(tmp_path / "odd.safetensors", card)
    with pytest.raises(ZooError) as caught:
        Translator.from_pretrained(path, device="cpu")
    one_line(caught, str(path), fragment)


def test_weights_that_do_not_fit_are_one_line_and_refused_on_the_meta_device(tmp_path, real_builds):
    narrow = write_translator(tmp_path / "narrow.safetensors", card_for("unet_128(ngf=8)+l1"))
    other_norm = write_translator(tmp_path / "instance.safetensors", card_for("unet_128(ngf=4,norm=instance)+l1"))
    real_builds.clear()  # the weights' own builds
    with pytest.raises(ZooError) as caught:
        Translator.from_pretrained(narrow, device="cpu")
    one_line(caught, "does not fit 'unet_128(ngf=8)+l1'", "of another shape", "model.model.0.weight is [4, 3, 4, 4]")
    with pytest.raises(ZooError) as caught:
        Translator.from_pretrained(other_norm, device="cpu")
    one_line(caught, "keys (", "unexpected")
    assert real_builds == []


def test_a_card_wider_than_its_weights_allocates_nothing(tmp_path):
    """``ngf=200`` used to build (and initialise) 2.1 GB of U-Net before the weights were compared."""
    tiny = tiny_state("unet_256(ngf=4)+l1")
    fits = write_translator(tmp_path / "fits.safetensors", card_for("unet_256(ngf=4)+l1", size_multiple=256), tiny)
    wide = write_translator(tmp_path / "wide.safetensors", card_for("unet_256(ngf=200)+l1", size_multiple=256), tiny)
    script = textwrap.dedent(f"""
        import resource
        from pix2pix_zoo.errors import ZooError
        from pix2pix_zoo.translator import Translator
        Translator.from_pretrained({str(fits)!r}, device="cpu")  # what any load costs once (imports, kernels)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            Translator.from_pretrained({str(wide)!r}, device="cpu")
        except ZooError as error:
            print(error)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    message, grown_kib = result.stdout.strip().splitlines()
    assert "does not fit 'unet_256(ngf=200)+l1'" in message
    assert int(grown_kib) < 100_000, f"peak memory grew by {int(grown_kib) // 1024} MiB"


def test_the_cli_refuses_a_hostile_translator_in_one_line(tmp_path):
    path = write_translator(tmp_path / "bad.safetensors", card_for(in_channels=10**9))
    (tmp_path / "in").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "in" / "a.png")
    result = run_zoo("translate", str(path), str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--no-progress")
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr[-2000:]
    assert result.stderr.startswith("error: ") and "'in_channels'" in result.stderr and "Traceback" not in result.stderr


# -- point 7: a card never makes the zoo open a path or a URL -------------------------------------------
BACKBONE = "mobilenetv3_small_050"


@pytest.fixture
def no_outside_access(tmp_path, monkeypatch) -> list[str]:
    """Every network connection and every file opened from Python is recorded (and connections refused)."""
    attempts: list[str] = []
    home = tmp_path / "hf"  # an empty Hugging Face cache, online: any pretrained weights must be fetched
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def refused(*args, **kwargs):
        attempts.append(f"network {args[1:2] or args[:1]}")
        raise OSError(errno.ENETUNREACH, "network access is refused in this test")

    monkeypatch.setattr(socket.socket, "connect", refused)
    monkeypatch.setattr(socket, "getaddrinfo", refused)
    real_open, real_os_open = builtins.open, os.open

    def watched_open(file, *args, **kwargs):
        attempts.append(f"open {file}")
        return real_open(file, *args, **kwargs)

    def watched_os_open(file, *args, **kwargs):
        attempts.append(f"open {file}")
        return real_os_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", watched_open)
    monkeypatch.setattr(os, "open", watched_os_open)
    return attempts


@pytest.mark.parametrize("option", ["pretrained=true", "weights={sentinel}", "weights=http://127.0.0.1:9/w.pth"])
def test_options_that_load_outside_weights_are_not_followed(tmp_path, option, no_outside_access):
    sentinel = tmp_path / "sentinel.pth"
    sentinel.write_bytes(b"the zoo must not read this")
    spec = f"timm_unet(backbone={BACKBONE},{option.format(sentinel=sentinel)},ngf=4)+l1"
    state = tiny_state(f"timm_unet(backbone={BACKBONE},ngf=4)+l1")
    path = write_translator(tmp_path / "timm.safetensors", card_for(spec, size_multiple=32), state)
    no_outside_access.clear()
    translator = Translator.from_pretrained(path, device="cpu", mode="eval")
    assert not [a for a in no_outside_access if "network" in a or "sentinel" in a or "127.0.0.1" in a]
    assert translator.card.spec == spec  # the card is kept as it is: only the rebuild ignores the option
    loaded = translator.generator.state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in state.items())


def test_external_options_are_declared_by_the_factory_and_dropped_from_a_files_spec():
    spec = resolve(f"timm_unet(backbone={BACKBONE},pretrained=true,weights=/etc/passwd,ngf=4)+l1")
    assert str(spec.self_contained()) == f"timm_unet(backbone={BACKBONE},ngf=4)+l1"
    registry = Registry()

    def net(in_channels: int, out_channels: int, *, url: Annotated[str, External()] = "", width: int = 1):
        return nn.Identity()

    component = registry.register("generator", "net", net)
    assert [o.name for o in component.options if o.external] == ["url"]


# -- option and channel bounds ----------------------------------------------------------------------------
def test_option_bounds_are_declared_and_checked_before_building():
    registry = Registry()

    def net(in_channels: int, out_channels: int, *, depth: Annotated[int, Bounds(1, 8)] = 2, seed: int = 0):
        return nn.Identity()

    component = registry.register("generator", "net", net)
    with pytest.raises(SpecError, match="option 'depth' must be from 1 to 8, not 9"):
        component.coerce_options({"depth": "9"})
    assert component.coerce_options({"seed": str(2**40)}) == {"seed": 2**40}  # unbounded: any 64-bit int
    with pytest.raises(SpecError, match="option 'seed' must be from -9223372036854775808 to 9223372036854775807"):
        component.coerce_options({"seed": str(2**70)})

    def bounded_text(in_channels: int, out_channels: int, *, name: Annotated[str, Bounds(1, 2)] = "a"):
        return nn.Identity()

    with pytest.raises(PluginError, match="option 'name' must be annotated"):
        registry.register("generator", "bounded_text", bounded_text)


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        (["unet(ngf=99999999999999999999999)+patch70+l1cgan"], "option 'ngf' must be from 1 to 4096"),
        (["unet+patch70(ndf=100000000)+l1cgan"], "option 'ndf' must be from 1 to 4096"),
        (["unet+l1", "--in-channels", "100000000000000000000"], "in_channels must be an integer from 1 to 4096"),
        (["unet+l1", "--out-channels", "5000"], "out_channels must be an integer from 1 to 4096"),
        (["unet+l1", "--in-channels", "1e20"], "'--in-channels'"),
    ],
)
def test_zoo_info_bounds_options_and_channels_in_one_line(capsys, arguments, fragment):
    code, out, err = run_main(capsys, "info", *arguments)
    assert code == 1 and out == "" and err.count("\n") == 1 and fragment in err, err
    assert "unexpected" not in err


def test_describe_refuses_channels_out_of_range():
    with pytest.raises(SpecError, match="in_channels must be an integer from 1 to 4096, not 100000000000000000000"):
        describe("unet+l1", 10**20)


# -- tiling -----------------------------------------------------------------------------------------------
class Local(nn.Module):
    size_multiple = 128

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images


def test_a_tile_too_small_names_what_was_given_and_what_is_allowed():
    card = Card(spec="local", in_channels=3, out_channels=3, size_multiple=128)
    with pytest.raises(ZooError) as caught:
        Translator(Local(), card, device="cpu", tile=1, overlap=128)
    one_line(caught, "tile 1 ", "overlap 128", "at least 256")
    with pytest.raises(ZooError) as caught:
        Translator(Local(), card, device="cpu", tile=-5)
    one_line(caught, "tile -5")
    assert Translator(Local(), card, device="cpu", tile=256, overlap=128).tile == 256


# -- writing translators ------------------------------------------------------------------------------------
def tiny_generator(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return resolve(SPEC).build(3, 3).generator


def test_two_saves_into_one_folder_at_once_both_complete(tmp_path, monkeypatch):
    """A second writer renames its file in while the first is between writing and renaming."""
    card = Card(spec=SPEC, in_channels=3, out_channels=3, size_multiple=128)
    real_replace = Path.replace
    raced = []

    def racing_replace(self, target):
        if not raced:
            raced.append(self)
            save_translator(tmp_path, tiny_generator(1), card)
        return real_replace(self, target)

    monkeypatch.setattr(Path, "replace", racing_replace)
    save_translator(tmp_path, tiny_generator(0), card)
    assert [p.name for p in tmp_path.iterdir()] == [WEIGHTS_FILE]
    assert check_translator(tmp_path / WEIGHTS_FILE).spec == SPEC


def disk_full_for_translators(monkeypatch) -> None:
    """Writing a translator's weights runs out of space halfway; other writes go on."""
    real_write_bytes = Path.write_bytes

    def write_bytes(self, data):
        if self.name.startswith(f".{WEIGHTS_FILE}"):
            real_write_bytes(self, bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)


def test_a_full_disk_while_saving_loses_nothing_and_is_one_line(tmp_path, monkeypatch):
    card = Card(spec=SPEC, in_channels=3, out_channels=3, size_multiple=128)
    save_translator(tmp_path, tiny_generator(0), card)
    before = (tmp_path / WEIGHTS_FILE).read_bytes()
    disk_full_for_translators(monkeypatch)
    with pytest.raises(ZooError) as caught:
        save_translator(tmp_path, tiny_generator(1), card)
    one_line(caught, str(tmp_path / WEIGHTS_FILE), "No space left on device")
    assert [p.name for p in tmp_path.iterdir()] == [WEIGHTS_FILE]
    assert (tmp_path / WEIGHTS_FILE).read_bytes() == before


# -- pulling ------------------------------------------------------------------------------------------------
PULL_SPEC = "unet_256(ngf=4)+patch70+l1cgan"


def catalog_entry(home: Path, name: str, url: str, weights_format: str) -> None:
    user_entry(home, name, url, spec=PULL_SPEC, weights_format=weights_format)


@pytest.mark.parametrize(
    ("card", "spec_of_weights", "fragment"),
    [
        ({"size_multiple": 64}, PULL_SPEC, "'size_multiple' is 64"),
        ({"in_channels": 10**9}, PULL_SPEC, "'in_channels'"),
        ({}, "unet_256(ngf=8)+l1", "does not fit"),
        ({"in_channels": 1}, "unet_256(ngf=4)+l1", "maps 1 to 3 channels, the catalog says 3 to 3"),
    ],
)
def test_a_pulled_translator_is_checked_before_its_hash_is_trusted(home, http_server, card, spec_of_weights,
                                                                   fragment, real_builds):
    in_channels = 1 if card.get("in_channels") == 1 else 3
    write_translator(http_server.folder / "t.safetensors", card_for(PULL_SPEC, size_multiple=256) | card,
                     tiny_state(spec_of_weights, in_channels))
    catalog_entry(home, "hostile", f"{http_server.url}/t.safetensors", "safetensors")
    real_builds.clear()  # the weights' own build
    with pytest.raises(CatalogError) as caught:
        translators.pull("hostile", progress=False)
    one_line(caught, fragment)
    folder = home / "translators" / "hostile"
    assert not (folder / WEIGHTS_FILE).exists() and not (folder / translators.SOURCE_RECORD).exists()
    assert real_builds == []


def test_a_full_disk_while_converting_is_one_line_and_leaves_no_temporary_file(home, http_server, capsys,
                                                                                 monkeypatch):
    torch.manual_seed(0)
    state = {k: v for k, v in resolve(PULL_SPEC).build().generator.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    torch.save(state, http_server.folder / "tiny.pth")
    catalog_entry(home, "tiny", f"{http_server.url}/tiny.pth", "reference-pth")
    disk_full_for_translators(monkeypatch)
    monkeypatch.setenv("ZOO_HOME", str(home))
    code, out, err = run_main(capsys, "pull", "tiny")
    errors = [line for line in err.splitlines() if not line.startswith("downloading ")]  # the progress line
    assert code == 1 and len(errors) == 1 and "No space left on device" in errors[0], err
    assert "unexpected" not in err
    assert [p.name for p in (home / "translators" / "tiny").iterdir()] == []


def test_a_catalog_entry_never_makes_zoo_list_fetch_weights(tmp_path, home, monkeypatch, no_outside_access):
    """``zoo list`` counts an entry's parameters from its spec on the meta device, without the
    options that would fetch weights (an entry's weights are its own file)."""
    sentinel = tmp_path / "sentinel.pth"
    sentinel.write_bytes(b"the zoo must not read this")
    user_entry(home, "timm", "http://127.0.0.1:9/timm.safetensors", weights_format="safetensors",
               spec=f"timm_unet(backbone={BACKBONE},pretrained=true,weights={sentinel},ngf=4)+l1")
    [entry] = translators.list_translators("timm")
    no_outside_access.clear()
    plain = describe(f"timm_unet(backbone={BACKBONE},ngf=4)+l1")["generator"]["parameters"]
    assert entry.parameters == plain
    assert not [a for a in no_outside_access if "network" in a or "sentinel" in a]
