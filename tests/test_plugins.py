"""The plugin system: entry points, isolation of broken plugins, allow-list, validation of registrations."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import run_main, run_zoo
from torch import nn

from pix2pix_zoo import hookimpl
from pix2pix_zoo.errors import PluginError

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "pix2pix_zoo"

GOOD_PLUGIN = """
    from torch import nn
    from pix2pix_zoo import hookimpl

    def tiny_net(in_channels: int, out_channels: int, *, width: int = 4) -> nn.Module:
        net = nn.Conv2d(in_channels, out_channels, 1)
        net.size_multiple = 1
        return net

    @hookimpl
    def register_generators(register):
        register("third_party_net", tiny_net, summary="a third party's generator")
"""

BROKEN_PLUGIN = """
    raise ImportError("this plugin needs a package that is not installed")
"""


def tiny_generator(in_channels: int, out_channels: int, *, width: int = 4) -> nn.Module:
    net = nn.Conv2d(in_channels, out_channels, 1)
    net.size_multiple = 1
    return net


class GeneratorPlugin:
    def __init__(self, *names: str) -> None:
        self.names = names

    @hookimpl
    def register_generators(self, register):
        for name in self.names:
            register(name, tiny_generator, summary="test generator")


def test_builtins_come_from_the_same_entry_point_group(fresh_plugins):
    records = {r.name: r for r in fresh_plugins.plugin_records()}
    assert {"datasets", "nets", "objectives"} <= set(records)
    for name in ("datasets", "nets", "objectives"):
        assert records[name].builtin and records[name].distribution == "pix2pix-zoo"
        assert records[name].error is None
    registered = dict((name, kind) for kind, name in records["nets"].registered)
    assert registered["unet_256"] == "generator" and registered["patch70"] == "discriminator"
    assert ("objective", "l1cgan") in records["objectives"].registered


def test_core_imports_no_concrete_component():
    code = (
        "import sys, pix2pix_zoo, pix2pix_zoo.components, pix2pix_zoo.spec, pix2pix_zoo.plugins, "
        "pix2pix_zoo.interfaces, pix2pix_zoo.layers, pix2pix_zoo.engine.trainer, pix2pix_zoo.data.augment, "
        "pix2pix_zoo.translator, pix2pix_zoo.cli\n"
        "print(sorted(m for m in sys.modules if m.startswith('pix2pix_zoo_')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    for source in PACKAGE_DIR.rglob("*.py"):
        text = source.read_text()
        for plugin in ("pix2pix_zoo_nets", "pix2pix_zoo_objectives", "pix2pix_zoo_datasets"):
            assert plugin not in text, source


def test_runtime_register_and_unregister(fresh_plugins):
    name = fresh_plugins.register(GeneratorPlugin("runtime_gen"), name="runtime")
    registry = fresh_plugins.get_registry()
    component = registry.get("runtime_gen")
    assert component.plugin == "runtime" and component.kind == "generator"
    assert [o.name for o in component.options] == ["width"]
    fresh_plugins.unregister(name)
    assert "runtime_gen" not in fresh_plugins.get_registry()
    assert "unet_256" in fresh_plugins.get_registry()


def test_register_plugin_fixture_cleans_up(register_plugin, fresh_plugins):
    register_plugin(GeneratorPlugin("fixture_gen"), name="fixture")
    assert "fixture_gen" in fresh_plugins.get_registry()


def test_plugin_raising_on_import_is_reported_and_others_load(installed_distribution, fresh_plugins, caplog):
    installed_distribution("zoo-broken", "broken", "zoo_broken_plugin", BROKEN_PLUGIN)
    installed_distribution("zoo-good", "good", "zoo_good_plugin", GOOD_PLUGIN)
    fresh_plugins.reset()
    with caplog.at_level(logging.WARNING, logger="pix2pix_zoo"):
        registry = fresh_plugins.get_registry()
    records = {r.name: r for r in fresh_plugins.plugin_records()}
    assert records["broken"].error == "ImportError: this plugin needs a package that is not installed"
    assert records["broken"].distribution == "zoo-broken"
    assert "third_party_net" in registry and "unet_256" in registry and "l1cgan" in registry
    assert records["good"].registered == [("generator", "third_party_net")]
    assert any("'broken'" in message and "ImportError" in message for message in caplog.messages)


def test_broken_plugin_seen_from_the_cli(installed_distribution):
    site = installed_distribution("zoo-broken", "broken", "zoo_broken_plugin", BROKEN_PLUGIN)
    result = run_zoo("plugins", "--json", PYTHONPATH=str(site))
    assert result.returncode == 0, result.stderr
    records = {r["name"]: r for r in json.loads(result.stdout)}
    assert records["broken"]["error"].startswith("ImportError")
    assert records["nets"]["error"] is None
    assert "plugin 'broken' (zoo-broken 0.1) failed to import" in result.stderr
    components = run_zoo("components", "--json", PYTHONPATH=str(site))
    assert components.returncode == 0
    assert "unet_256" in {c["name"] for c in json.loads(components.stdout)}


@pytest.mark.parametrize(
    ("allow", "expected"),
    [(None, {"good", "other"}), ("", set()), ("good", {"good"}), ("zoo-other", {"other"}), ("good, other", {"good", "other"})],
)
def test_allow_list(installed_distribution, fresh_plugins, monkeypatch, allow, expected):
    installed_distribution("zoo-good", "good", "zoo_good_plugin", GOOD_PLUGIN)
    installed_distribution("zoo-other", "other", "zoo_other_plugin", GOOD_PLUGIN.replace("third_party_net", "other_net"))
    if allow is None:
        monkeypatch.delenv(fresh_plugins.ALLOW_LIST_VARIABLE)
    else:
        monkeypatch.setenv(fresh_plugins.ALLOW_LIST_VARIABLE, allow)
    fresh_plugins.reset()
    names = {r.name for r in fresh_plugins.plugin_records()}
    assert names & {"good", "other"} == expected  # other installed plugins load too when nothing is set
    assert {"datasets", "nets", "objectives"} <= names  # built-ins always load
    assert ("third_party_net" in fresh_plugins.get_registry()) == ("good" in expected)


def test_misspelled_hook_fails_loudly(fresh_plugins):
    class Misspelled:
        @hookimpl
        def register_generator(self, register):  # the spec is register_generators
            pass

    with pytest.raises(PluginError, match="register_generator"):
        fresh_plugins.register(Misspelled(), name="misspelled")
    assert "misspelled" not in {r.name for r in fresh_plugins.plugin_records()}


def test_wrong_hook_argument_fails_loudly(fresh_plugins):
    class WrongArgument:
        @hookimpl
        def register_generators(self, add):
            pass

    with pytest.raises(PluginError, match="wrong_argument"):
        fresh_plugins.register(WrongArgument(), name="wrong_argument")


def test_misspelled_hook_in_installed_plugin_fails_cli_in_one_line(installed_distribution):
    source = GOOD_PLUGIN.replace("def register_generators", "def register_generatorz")
    site = installed_distribution("zoo-typo", "typo", "zoo_typo_plugin", source)
    result = run_zoo("components", PYTHONPATH=str(site))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "register_generatorz" in result.stderr
    assert "Traceback" not in result.stderr


def test_of_two_plugins_registering_one_name_the_later_is_disabled(register_plugin, fresh_plugins, caplog):
    register_plugin(GeneratorPlugin("shared_name"), name="first_plugin")
    register_plugin(GeneratorPlugin("own_name", "shared_name"), name="second_plugin")
    with caplog.at_level(logging.WARNING, logger="pix2pix_zoo"):
        registry = fresh_plugins.get_registry()
    assert registry.get("shared_name").plugin == "first_plugin"
    assert "own_name" not in registry and "unet_256" in registry  # nothing of the later one is left
    records = {r.name: r for r in fresh_plugins.plugin_records()}
    assert records["first_plugin"].error is None
    assert records["second_plugin"].registered == []
    assert records["second_plugin"].error == (
        "registers generator 'shared_name', which plugin 'first_plugin' (registered at run time) registered first; "
        "set ZOO_LOAD_PLUGINS to choose which plugins load"
    )
    assert [m for m in caplog.messages if "disabled" in m] == [
        "plugin 'second_plugin' (registered at run time) was disabled: it " + records["second_plugin"].error
    ]


def test_a_plugin_taking_a_builtin_alias_is_disabled(register_plugin, fresh_plugins):
    register_plugin(GeneratorPlugin("unet"), name="clashing")
    assert fresh_plugins.get_registry().get("unet").plugin == "nets"
    record = next(r for r in fresh_plugins.plugin_records() if r.name == "clashing")
    assert record.error.startswith("registers generator 'unet', which plugin 'nets' (pix2pix-zoo ")


CLASHING_PLUGIN = GOOD_PLUGIN.replace("third_party_net", "resunet")


def test_installed_plugins_that_clash_leave_every_command_working(installed_distribution):
    installed_distribution("pix2pix-zoo-resunet", "resunet", "zoo_resunet_a", CLASHING_PLUGIN)
    site = installed_distribution("pix2pix-zoo-resunet-fork", "resunet_fork", "zoo_resunet_b", CLASHING_PLUGIN)
    warning = ("plugin 'resunet_fork' (pix2pix-zoo-resunet-fork 0.1) was disabled: it registers generator 'resunet', "
               "which plugin 'resunet' (pix2pix-zoo-resunet 0.1) registered first; set ZOO_LOAD_PLUGINS to choose "
               "which plugins load")
    for command in (("plugins", "--json"), ("components", "--json"), ("info", "unet+l1", "--json")):
        result = run_zoo(*command, PYTHONPATH=str(site), ZOO_LOAD_PLUGINS="resunet,resunet_fork")
        assert result.returncode == 0, result.stderr
        assert result.stderr.strip() == warning, result.stderr
        json.loads(result.stdout)
    records = {r["name"]: r for r in json.loads(run_zoo("plugins", "--json", PYTHONPATH=str(site)).stdout)}
    assert records["resunet"]["error"] is None and records["resunet_fork"]["error"].startswith("registers generator")
    # The allow-list chooses the fork instead: no warning, and the fork has the name.
    chosen = run_zoo("components", "--json", PYTHONPATH=str(site), ZOO_LOAD_PLUGINS="resunet_fork")
    assert chosen.returncode == 0 and chosen.stderr == ""
    assert {c["name"]: c["plugin"] for c in json.loads(chosen.stdout)}["resunet"] == "resunet_fork"


def test_hook_that_raises_is_isolated_and_leaves_nothing_behind(register_plugin, fresh_plugins, caplog):
    class HalfBroken:
        @hookimpl
        def register_generators(self, register):
            register("half_gen", tiny_generator)

        @hookimpl
        def register_objectives(self, register):
            raise RuntimeError("boom")

    register_plugin(HalfBroken(), name="half_broken")
    with caplog.at_level(logging.WARNING, logger="pix2pix_zoo"):
        registry = fresh_plugins.get_registry()
    assert "half_gen" not in registry and "unet_256" in registry
    record = next(r for r in fresh_plugins.plugin_records() if r.name == "half_broken")
    assert record.error == "RuntimeError: boom" and record.registered == []
    assert any("raised in register_objectives" in m for m in caplog.messages)


def _bad_positional(channels: int, out_channels: int) -> nn.Module: ...
def _no_default(in_channels: int, out_channels: int, *, ngf: int) -> nn.Module: ...
def _unannotated(in_channels: int, out_channels: int, *, ngf=64) -> nn.Module: ...
def _kwargs(in_channels: int, out_channels: int, **options) -> nn.Module: ...
def _bad_default(in_channels: int, out_channels: int, *, ngf: int = "many") -> nn.Module: ...  # type: ignore


@pytest.mark.parametrize(
    ("name", "factory", "message"),
    [
        ("Bad-Name", tiny_generator, "invalid"),
        ("1net", tiny_generator, "invalid"),
        ("ok_name", _bad_positional, r"must take \(in_channels, out_channels\) first"),
        ("ok_name", _no_default, "needs a default"),
        ("ok_name", _unannotated, "must be annotated"),
        ("ok_name", _kwargs, r"\*\*kwargs"),
        ("ok_name", _bad_default, "default of option 'ngf'"),
        ("ok_name", "not callable", "not callable"),
    ],
)
def test_register_validates_name_and_signature(register_plugin, fresh_plugins, name, factory, message):
    class Plugin:
        @hookimpl
        def register_generators(self, register):
            register(name, factory)

    register_plugin(Plugin(), name="validated")
    with pytest.raises(PluginError, match=message):
        fresh_plugins.get_registry()


def test_plugin_command(register_plugin, capsys):
    import typer

    from pix2pix_zoo.cli import main

    calls = []

    class CommandPlugin:
        @hookimpl
        def register_commands(self, app: typer.Typer):
            @app.command("hello")
            def hello(who: str = "zoo") -> None:
                """Say hello."""
                calls.append(who)

    class TwoCommands:
        @hookimpl
        def register_commands(self, app: typer.Typer):
            app.command("first")(lambda: None)
            app.add_typer(typer.Typer(), name="group-two")

    register_plugin(CommandPlugin(), name="commands")
    register_plugin(TwoCommands(), name="two")
    with pytest.raises(SystemExit) as exit_info:
        main(["hello", "--who", "plugin"])
    assert exit_info.value.code == 0 and calls == ["plugin"]
    # `zoo plugins` says which plugin added which command.
    code, out, _ = run_main(capsys, "plugins", "--json")
    added = {r["name"]: [(e["kind"], e["name"]) for e in r["registered"]] for r in json.loads(out)}
    assert code == 0 and added["commands"] == [("command", "hello")]
    assert added["two"] == [("command", "first"), ("command", "group-two")]


def test_dataset_plugin_registers_and_builds(register_plugin, capsys):
    import torch

    from pix2pix_zoo.cli import main
    from pix2pix_zoo.interfaces import DatasetInfo, PairedDataset

    class Squares(PairedDataset):
        info = DatasetInfo(name="squares", a_channels=1, b_channels=3, default_direction="AtoB")

        def __init__(self, root: str, split: str, size: int) -> None:
            self.root, self.split, self.size = root, split, size

        def __len__(self) -> int:
            return self.size

        def __getitem__(self, index: int) -> dict:
            a = torch.full((1, 8, 8), index / self.size * 2 - 1)
            return {"a": a, "b": a.expand(3, 8, 8), "name": f"{self.split}/{index}"}

    def squares(root: str, split: str, *, size: int = 4) -> PairedDataset:
        return Squares(root, split, size)

    class DatasetPlugin:
        @hookimpl
        def register_datasets(self, register):
            register("squares", squares, summary="constant squares")

    register_plugin(DatasetPlugin(), name="runtime_datasets")
    from pix2pix_zoo.plugins import get_registry

    component = get_registry().get("squares", "dataset")
    dataset = component.build("/data", "val", size="3")  # options coerced like spec values
    assert len(dataset) == 3 and dataset[2]["name"] == "val/2" and dataset.info.b_channels == 3
    with pytest.raises(SystemExit):
        main(["components", "dataset", "--json"])
    assert "squares" in [c["name"] for c in json.loads(capsys.readouterr().out)]


AUTHORS_TEST = '''
from types import SimpleNamespace

from pix2pix_zoo import hookimpl
from pix2pix_zoo.spec import resolve
from pix2pix_zoo.testing import check_plugin


def tiny(in_channels: int, out_channels: int, *, ngf: int = 4):
    import torch
    net = torch.nn.Sequential(torch.nn.Conv2d(in_channels, out_channels, 1), torch.nn.Tanh())
    net.size_multiple = 1
    return net


PLUGIN = SimpleNamespace(register_generators=hookimpl(lambda register: register("authors_net", tiny)))


def test_with_the_packaged_fixtures(register_plugin, fresh_plugins):
    register_plugin(PLUGIN, "authors")
    assert str(resolve("authors_net+l1")) == "authors_net+l1"
    assert check_plugin(PLUGIN, "authors-checked") == ["authors_net"]


def test_installed_distribution(installed_distribution, fresh_plugins):
    installed_distribution("pix2pix-zoo-authors", "authors", "zoo_authors_plugin", """
        from pix2pix_zoo import hookimpl

        @hookimpl
        def register_objectives(register):
            pass
    """)
    fresh_plugins.reset()
    assert "authors" in {record.name for record in fresh_plugins.plugin_records()}
'''


def test_plugin_authors_get_the_fixtures_from_the_installed_package(tmp_path):
    (tmp_path / "test_mine.py").write_text(AUTHORS_TEST)
    assert not (tmp_path / "conftest.py").exists()
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_mine.py"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 passed" in result.stdout


def test_a_lazy_factory_is_imported_when_first_used(register_plugin, tmp_path, monkeypatch):
    from pix2pix_zoo.components import LazyFactory
    from pix2pix_zoo.data import dataset_info
    from pix2pix_zoo.interfaces import DatasetInfo
    from pix2pix_zoo.plugins import get_registry
    from pix2pix_zoo.spec import resolve

    (tmp_path / "lazy_nets.py").write_text(textwrap.dedent(GOOD_PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    info = DatasetInfo("lazy_data", task="nothing <-> nothing")

    class Plugin:
        @hookimpl
        def register_generators(self, register):
            register("lazy_net", LazyFactory("lazy_nets:tiny_net"), summary="imported on first use")

        @hookimpl
        def register_datasets(self, register):
            register("lazy_data", LazyFactory("no_such_module_here:reader", info=info))

    register_plugin(Plugin(), "lazy")

    component = get_registry().get("lazy_net")
    assert component.summary == "imported on first use" and "lazy_nets" not in sys.modules
    assert str(resolve("lazy_net+l1")) == "lazy_net+l1" and "lazy_nets" not in sys.modules  # no options to read
    assert str(resolve("lazy_net(width=8)+l1")) == "lazy_net(width=8)+l1" and "lazy_nets" in sys.modules
    assert resolve("lazy_net+l1").build_generator(3, 3).size_multiple == 1
    data = get_registry().get("lazy_data")
    assert dataset_info(data.factory) is info  # declared: read without importing
    with pytest.raises(PluginError, match="cannot import the factory 'no_such_module_here:reader': ModuleNotFound"):
        data.build(tmp_path, "train")
    with pytest.raises(PluginError, match="an import path 'package.module:function'"):
        LazyFactory("lazy_nets.tiny_net")
    sys.modules.pop("lazy_nets")
