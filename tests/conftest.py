"""The project's own fixtures (a loopback HTTP server, a private $ZOO_HOME, ...). The plugin fixtures
(fresh_plugins, register_plugin, installed_distribution) come from pix2pix_zoo.pytest_plugin, which
pytest loads from the installed package, as it does for a plugin author."""

from __future__ import annotations

import os

import pytest
from loopback import LoopbackServer

from pix2pix_zoo import plugins

# Deterministic, small CPU work on the 2-core CI machine. Under pytest-xdist (pyproject's addopts) each
# worker process, and what it starts, gets one thread: the workers share the cores instead of fighting
# over them.
os.environ.setdefault("OMP_NUM_THREADS", "1" if os.environ.get("PYTEST_XDIST_WORKER") else "2")
# Tests choose their plugins: the built-ins only, whatever else is installed here (a contributor's
# editable install of the example, say), unless a test allows more (installed_distribution does).
os.environ[plugins.ALLOW_LIST_VARIABLE] = ""


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
    from pix2pix_zoo import translators

    folder = tmp_path / "home"
    monkeypatch.setenv("ZOO_HOME", str(folder))
    monkeypatch.delenv(translators.MIRROR_VARIABLE, raising=False)
    return folder
