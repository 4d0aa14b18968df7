"""Shared fixtures: a fresh plugin host per test that touches plugins, fake installed distributions."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest
from loopback import LoopbackServer

from pix2pix_zoo import plugins

# Deterministic, small CPU work on the 2-core CI machine.
os.environ.setdefault("OMP_NUM_THREADS", "2")
# Tests choose their plugins: the built-ins only, whatever else is installed here (a contributor's
# editable install of the example, say), unless a test allows more (installed_distribution does).
os.environ[plugins.ALLOW_LIST_VARIABLE] = ""


@pytest.fixture
def fresh_plugins(monkeypatch):
    """A plugin host rebuilt from entry points for this test (the built-ins only unless the test
    allows more), and rebuilt again afterwards."""
    monkeypatch.setenv(plugins.ALLOW_LIST_VARIABLE, "")
    plugins.reset()
    yield plugins
    plugins.reset()


@pytest.fixture
def register_plugin(fresh_plugins):
    """Register plugin objects at run time; every one is unregistered when the test ends."""
    names: list[str] = []

    def register(plugin: object, name: str | None = None) -> str:
        registered = fresh_plugins.register(plugin, name)
        names.append(registered)
        return registered

    yield register
    for name in names:
        fresh_plugins.unregister(name)


@pytest.fixture
def installed_distribution(tmp_path, monkeypatch):
    """Make a real (unpacked) distribution with a ``pix2pix_zoo`` entry point importable.

    ``installed_distribution(dist, entry_name, module, source)`` writes ``module.py`` and a
    ``.dist-info`` folder into a directory put on ``sys.path``, the way pip would install it, and
    adds ``entry_name`` to ``ZOO_LOAD_PLUGINS`` (subprocesses inherit it); it returns that directory (add it to PYTHONPATH to see the plugin from a subprocess).
    """
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def install(dist: str, entry_name: str, module: str, source: str) -> Path:
        (site / f"{module}.py").write_text(textwrap.dedent(source))
        info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[pix2pix_zoo]\n{entry_name} = {module}\n")
        sys.modules.pop(module, None)
        allowed = os.environ.get(plugins.ALLOW_LIST_VARIABLE)
        if allowed is not None:  # unset: every plugin loads already
            monkeypatch.setenv(plugins.ALLOW_LIST_VARIABLE, ",".join(filter(None, [allowed, entry_name])))
        return site

    yield install
    plugins.reset()


@pytest.fixture
def http_server(tmp_path):
    """A real HTTP server on 127.0.0.1 serving the folder ``tmp_path / "served"`` (see tests/loopback.py)."""
    folder = tmp_path / "served"
    folder.mkdir()
    with LoopbackServer(folder) as server:
        yield server


@pytest.fixture
def home(tmp_path, monkeypatch):
    """$ZOO_HOME in a temporary folder, with no translator mirror set."""
    from pix2pix_zoo import catalog

    folder = tmp_path / "home"
    monkeypatch.setenv("ZOO_HOME", str(folder))
    monkeypatch.delenv(catalog.MIRROR_VARIABLE, raising=False)
    return folder
