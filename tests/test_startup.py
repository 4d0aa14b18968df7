"""``zoo --version``, every ``--help``, ``zoo list`` and ``zoo data list`` build no network and read
no tensor, so they import no torch and start in a fraction of its import time (``benchmarks/startup.py``
measures it), as long as no installed plugin imports torch itself: the built-in plugins register
their components by import path, and these tests load only them (``tests/conftest.py``).

Each command runs in a real process with a watch in front of the importers, which names the frames
that first import torch.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import run_env
from test_cli import HELP_COMMANDS

from pix2pix_zoo.cli import command_paths, make_app

MARKER = "torch was imported"
# Runs the command line as `zoo` does, after putting a watch in front of every importer: the first
# import of torch prints the marker and the Python frames that asked for it, then the import goes on.
WATCHED_ZOO = f"MARKER = {MARKER!r}\n" + """
import sys, traceback

if "torch" in sys.modules:
    print(MARKER + " before the zoo started", file=sys.stderr)

class TorchImportWatch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            sys.meta_path.remove(self)
            frames = [f"{f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_stack()[:-1]
                      if not f.filename.startswith("<")]
            print(MARKER + ", by:\\n  " + "\\n  ".join(frames), file=sys.stderr)
        return None

sys.meta_path.insert(0, TorchImportWatch())
from pix2pix_zoo.cli import main
main(sys.argv[1:])
"""

HELP = [(*words, "--help") for words in command_paths(make_app())]
TORCH_FREE = [("--version",), *HELP, ("list",), ("list", "--json"), ("data", "list"), ("data", "list", "--json")]


def run_watched(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WATCHED_ZOO, *args], capture_output=True, text=True,
                          env=run_env(**env), timeout=300)


def test_every_command_of_the_help_snapshots_is_checked():
    assert {(*words, "--help") for words in HELP_COMMANDS.values()} <= set(HELP)
    assert ("data", "list", "--help") in HELP and ("plugins", "new", "--help") in HELP  # subcommands too


@pytest.mark.parametrize("args", TORCH_FREE, ids=" ".join)
def test_the_command_does_not_import_torch(args, tmp_path):
    result = run_watched(*args, ZOO_HOME=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert MARKER not in result.stderr, f"`zoo {' '.join(args)}`: {result.stderr}"


def test_the_watch_names_the_importer(tmp_path):
    result = run_watched("info", "unet_256+l1", ZOO_HOME=str(tmp_path))
    assert result.returncode == 0 and f"{MARKER}, by:" in result.stderr
    assert "pix2pix_zoo/spec.py" in result.stderr  # describe builds the networks on the meta device
