"""pytest fixtures for testing pix2pix-zoo plugins, loaded by pytest wherever pix2pix-zoo is installed
(entry point ``pytest11``): fixtures only, nothing that changes how other tests run.

* ``fresh_plugins``: the :mod:`pix2pix_zoo.plugins` module, its host rebuilt from entry points for
  the test (the built-ins only: ``ZOO_LOAD_PLUGINS`` is set empty; allow more with
  ``monkeypatch.setenv``) and forgotten afterwards;
* ``register_plugin(plugin, name=None)``: register a plugin object (a module or any object with
  ``@hookimpl`` functions) for this test only;
* ``installed_distribution(dist, entry_name, module, source)``: a real installed distribution (a
  module and its ``.dist-info`` with an entry point in a folder on ``sys.path``, allowed by
  ``ZOO_LOAD_PLUGINS``); returns the folder, to put on ``PYTHONPATH`` for a subprocess.

A fixture of the same name in your own ``conftest.py`` takes precedence over these.
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from pix2pix_zoo import plugins


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
    adds ``entry_name`` to ``ZOO_LOAD_PLUGINS`` (subprocesses inherit it); it returns that directory
    (add it to PYTHONPATH to see the plugin from a subprocess).
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
