"""``zoo plugins new NAME``: the package it writes installs with pip and works everywhere at once."""

from __future__ import annotations

import json
import subprocess

import pytest
from helpers import pip, run_env, run_main, run_zoo, shared_venv

from pix2pix_zoo.scaffold import new_plugin


def test_writes_the_package_and_refuses_to_overwrite(tmp_path):
    folder = new_plugin("my_net", tmp_path / "plugin")
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert files == ["README.md", "pix2pix_zoo_my_net/__init__.py", "pyproject.toml", "tests/test_pix2pix_zoo_my_net.py"]
    pyproject = (folder / "pyproject.toml").read_text()
    assert 'name = "pix2pix-zoo-my-net"' in pyproject
    assert '[project.entry-points.pix2pix_zoo]\nmy_net = "pix2pix_zoo_my_net"' in pyproject
    assert "${" not in "".join(p.read_text() for p in folder.rglob("*") if p.is_file())
    compile((folder / "pix2pix_zoo_my_net" / "__init__.py").read_text(), "plugin", "exec")
    with pytest.raises(Exception, match="already exists"):
        new_plugin("my_net", folder)


@pytest.mark.parametrize("name", ["MyNet", "my-net", "3net", ""])
def test_bad_names_are_one_line_errors(capsys, tmp_path, name):
    code, out, err = run_main(capsys, "plugins", "new", name, "--output", str(tmp_path / "p"))
    assert code == 1 and out == "" and err.count("\n") == 1 and "lower case" in err
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("name", ["class", "def", "nn", "hookimpl"])
def test_names_the_module_cannot_define_are_refused(capsys, tmp_path, name):
    code, out, err = run_main(capsys, "plugins", "new", name, "--output", str(tmp_path / "p"))
    assert (code, out) == (1, "")
    assert err == f"error: plugin name {name!r} is a Python keyword or a name the generated module uses itself; choose another\n"
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize(("name", "owner"), [("unet", "generator 'unet_256'"), ("unet_256", "generator 'unet_256'"),
                                             ("patch70", "discriminator 'patch70'"), ("facades", "dataset 'facades'")])
def test_names_taken_by_installed_plugins_are_refused(capsys, tmp_path, fresh_plugins, name, owner):
    code, out, err = run_main(capsys, "plugins", "new", name, "--output", str(tmp_path / "p"))
    assert (code, out) == (1, "")
    assert err.startswith(f"error: the name {name!r} is taken by the {owner} of plugin ") and err.count("\n") == 1
    assert not (tmp_path / "p").exists()


def test_an_alias_is_taken_too(capsys, tmp_path, register_plugin):
    from types import SimpleNamespace

    from pix2pix_zoo import hookimpl

    def net(in_channels: int, out_channels: int) -> None: ...

    register_plugin(SimpleNamespace(register_generators=hookimpl(lambda register: register("mainnet", net, aliases=("mnet",)))),
                    "aliased")
    code, _, err = run_main(capsys, "plugins", "new", "mnet", "--output", str(tmp_path / "p"))
    assert code == 1 and "taken by the generator 'mainnet' of plugin 'aliased'" in err


KIND_NAMES = {"generator": "tinynet", "discriminator": "tinyd", "objective": "tinyobj", "dataset": "tinydata",
              "codec": "tinycodec"}


def test_every_kind_installs_as_printed_passes_its_tests_and_works(tmp_path):
    python = shared_venv(tmp_path / "venv", with_this_install=True)
    allowed = run_env(ZOO_LOAD_PLUGINS=",".join(KIND_NAMES.values()))

    def zoo(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(python), "-m", "pix2pix_zoo", *args], capture_output=True, text=True,
                              env=allowed, cwd=tmp_path, timeout=600)

    folders = {}
    for kind, name in KIND_NAMES.items():
        made = run_zoo("plugins", "new", name, "--kind", kind, cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        folder = tmp_path / f"pix2pix-zoo-{name}"
        assert made.stdout.strip() == folder.name
        # The next step as printed: an editable install with the test extra, then its tests.
        (install, test), = [line.removeprefix("next: ").split(" && ") for line in made.stderr.splitlines()]
        assert install == f'pip install -e "{folder.name}[test]"' and test == f"python -m pytest {folder.name}/tests"
        installed = pip(python, "install", "-e", f"{folder.name}[test]", cwd=tmp_path)
        assert installed.returncode == 0, installed.stderr
        folders[kind] = folder

    plugins = {record["name"]: record for record in json.loads(zoo("plugins", "--json").stdout)}
    for kind, name in KIND_NAMES.items():
        assert plugins[name]["distribution"] == f"pix2pix-zoo-{name}" and plugins[name]["error"] is None
        assert plugins[name]["registered"] == [{"kind": kind, "name": name}]
    (generator,) = json.loads(zoo("components", "generator", "--filter", "tiny*", "--json").stdout)
    assert generator["plugin"] == "tinynet" and [o["name"] for o in generator["options"]] == ["ngf", "depth"]

    # The generated tests (conformance checks, the component in use) pass against the installed packages.
    tests = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            *(f"{folder.name}/tests" for folder in folders.values())],
                           capture_output=True, text=True, cwd=tmp_path, env=allowed, timeout=600)
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert "18 passed" in tests.stdout

    # The README's commands that inspect the component work as written.
    for folder in folders.values():
        usage = folder.joinpath("README.md").read_text().split("## Use")[1].split("```")[1]
        for line in usage.strip().splitlines():
            if line.startswith(("zoo info", "zoo data info")):
                words = [word.strip('"') for word in line.split()]
                shown = zoo(*words[1:])
                assert shown.returncode == 0, (line, shown.stderr)

    trained = zoo("train", "tinynet(ngf=4,depth=3)+tinyd(ndf=4,layers=2)+tinyobj", "--data", "synthfacades",
                  "--data-opt", "size=32", "--data-opt", "count=8", "--preprocess", "none", "--epochs", "1",
                  "--epochs-decay", "0", "--max-steps", "2", "--workers", "0", "--runs", str(tmp_path / "runs"),
                  "--name", "tiny", "--no-progress")
    assert trained.returncode == 0, trained.stderr[-3000:]
    card = json.loads(zoo("info", "tinynet(ngf=4,depth=3)+patch16(ndf=4)+l1cgan", "--json").stdout)
    assert card["generator"]["name"] == "tinynet"
    assert (tmp_path / "runs" / "tiny" / "translator" / "model.safetensors").is_file()
