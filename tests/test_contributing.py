"""CONTRIBUTING's quick start, run as written: each line of its shell block, in a fresh environment
that shares this one's packages (pip offline), from an empty folder."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from helpers import run_env, shared_venv

CONTRIBUTING = Path(__file__).resolve().parents[1] / "CONTRIBUTING.md"


def quick_start() -> list[str]:
    text = CONTRIBUTING.read_text()
    (block,) = re.findall(r"The quickest start is the scaffold.*?```bash\n(.*?)```", text, re.S)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_the_quick_start_works_as_written(tmp_path):
    python = shared_venv(tmp_path / "venv", with_this_install=True)
    bin_dir = python.parent
    # The environment's `zoo`, as pip would install the console script.
    (bin_dir / "zoo").write_text(f'#!/bin/sh\nexec "{python}" -m pix2pix_zoo "$@"\n')
    (bin_dir / "zoo").chmod(0o755)
    env = run_env(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", ZOO_HOME=str(tmp_path / "home"),
                  PIP_NO_INDEX="1", PIP_NO_DEPS="1", PIP_NO_BUILD_ISOLATION="0")
    env.pop("ZOO_LOAD_PLUGINS")  # a contributor's shell: every installed plugin loads
    work = tmp_path / "work"
    work.mkdir()
    outputs = []
    for line in quick_start():
        done = subprocess.run(["bash", "-c", line], capture_output=True, text=True, cwd=work, env=env, timeout=600)
        assert done.returncode == 0, (line, done.stdout[-2000:], done.stderr[-2000:])
        outputs.append(done.stdout)
    assert (work / "pix2pix-zoo-mynet" / "pyproject.toml").is_file()
    assert " passed" in outputs[2] and "failed" not in outputs[2]
    assert "mynet" in outputs[3]
    (run,) = (work / "runs").iterdir()
    assert (run / "translator" / "model.safetensors").is_file()
    assert json.loads((run / "eval.json").read_text())["split"] == "test"
