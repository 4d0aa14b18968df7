"""The one distribution: the wheel carries the core, the built-in plugins and the catalog data, and a
non-editable install gives a working ``zoo`` with every built-in."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import pip, run_env, shared_venv

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # From a copy of the tracked files: a checkout's build/ folder keeps files deleted since, and
    # setuptools would put them into the wheel.
    source = tmp_path_factory.mktemp("source") / "pix2pix-zoo"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    # --no-isolation: build with this environment's setuptools, no download.
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(source)],
        check=True,
        capture_output=True,
        cwd=out,
    )
    (built,) = out.glob("pix2pix_zoo-*.whl")
    return built


def test_wheel_carries_plugins_registry_and_entry_points(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        entry_text = archive.read(entry_points).decode()
    for module in (
        "pix2pix_zoo/__init__.py",
        "pix2pix_zoo/__main__.py",
        "pix2pix_zoo/cli/__init__.py",
        "pix2pix_zoo/engine/gan_step.py",
        "pix2pix_zoo/engine/trainer.py",
        "pix2pix_zoo/data/augment.py",
        "pix2pix_zoo_datasets/__init__.py",
        "pix2pix_zoo_datasets/synthfacades.py",
        "pix2pix_zoo_datasets/reference.py",
        "pix2pix_zoo_nets/__init__.py",
        "pix2pix_zoo_nets/unet.py",
        "pix2pix_zoo_nets/patchgan.py",
        "pix2pix_zoo_nets/resnet.py",
        "pix2pix_zoo_objectives/pix2pix.py",
        "pix2pix_zoo/registry_data/__init__.py",
        "pix2pix_zoo/registry_data/README.md",
        "pix2pix_zoo/registry_data/sat2map.toml",
        "pix2pix_zoo/catalog.py",  # the deprecated name, forwarding to translators/
        "pix2pix_zoo/registry.py",  # likewise, to components.py
        *(f"pix2pix_zoo/translators/{part}.py" for part in ("__init__", "entries", "pull", "publish")),
        *(f"pix2pix_zoo/{module}.py" for module in ("components", "pictures", "devices", "translator_file", "metrics",
                                                      "download", "moved")),
        "pix2pix_zoo/cli/translators.py",
        "pix2pix_zoo/cli/sweep.py",
        "pix2pix_zoo/experiments/__init__.py",
        "pix2pix_zoo/experiments/sweep.py",
        "pix2pix_zoo/experiments/recipes.py",
        "pix2pix_zoo/experiments/compare.py",
        "pix2pix_zoo/cli/compare.py",
        *(f"pix2pix_zoo/experiments/recipes/paper-{table}.toml" for table in ("objectives", "generators", "discriminators")),
        *(f"pix2pix_zoo/plugin_template/{part}/{kind}.py.tmpl" for part in ("module", "tests")
          for kind in ("generator", "discriminator", "objective", "dataset", "codec")),
        "pix2pix_zoo/plugin_template/pyproject.toml.tmpl",
        "pix2pix_zoo/data/photos.py",
        "pix2pix_zoo/pytest_plugin.py",
        "pix2pix_zoo/plugin_template/README.md.tmpl",
    ):
        assert module in names, module
    assert not any(n.startswith(("tests/", "plugins/", "registry/")) for n in names)
    assert "pix2pix_zoo/plugin_template/module/__init__.py.tmpl" not in names  # a template that was removed
    assert "[pix2pix_zoo]" in entry_text
    assert "nets = pix2pix_zoo_nets" in entry_text and "objectives = pix2pix_zoo_objectives" in entry_text
    assert "datasets = pix2pix_zoo_datasets" in entry_text
    assert "zoo = pix2pix_zoo.cli:main" in entry_text
    assert "[pytest11]\npix2pix_zoo = pix2pix_zoo.pytest_plugin" in entry_text


def test_non_editable_install_gives_a_working_zoo(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    # Dependencies (torch, typer, ...) come from this environment; the project itself only from the wheel.
    python = shared_venv(env_dir, with_this_install=False)
    installed = pip(python, "install", str(wheel))
    assert installed.returncode == 0, installed.stderr
    # Run from outside the checkout, so the source tree cannot shadow the installed package.
    where = subprocess.run(
        [str(python), "-c", "import pix2pix_zoo, pix2pix_zoo_nets; print(pix2pix_zoo.__file__, pix2pix_zoo_nets.__file__)"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    ).stdout
    assert str(ROOT) not in where and where.count(str(env_dir)) == 2
    zoo = env_dir / "bin" / "zoo"
    components = subprocess.run(
        [str(zoo), "components", "--json"], capture_output=True, text=True, cwd=tmp_path, env=run_env()
    )
    assert components.returncode == 0, components.stderr
    names = {c["name"] for c in json.loads(components.stdout)}
    assert {"unet_256", "encdec_256", "resnet_9blocks", "pixel", "patch70", "image", "l1cgan"} <= names
    assert {"facades", "synthfacades", "folder", "pairs"} <= names
    info = subprocess.run(
        [str(zoo), "info", "unet+patch70+l1cgan", "--json"], capture_output=True, text=True, cwd=tmp_path, env=run_env()
    )
    assert json.loads(info.stdout)["generator"]["parameters"] == 54_413_955
    data = subprocess.run(
        [str(python), "-c", "from importlib.resources import files; "
         "print(files('pix2pix_zoo.registry_data').joinpath('README.md').is_file())"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )
    assert data.stdout.strip() == "True"
    scaffold = subprocess.run([str(zoo), "plugins", "new", "wheelnet", "--output", str(tmp_path / "wheelnet")],
                              capture_output=True, text=True, cwd=tmp_path, env=run_env())
    assert scaffold.returncode == 0, scaffold.stderr
    assert (tmp_path / "wheelnet" / "pix2pix_zoo_wheelnet" / "__init__.py").is_file()
