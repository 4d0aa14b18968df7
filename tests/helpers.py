"""Helpers for tests that drive the real ``zoo`` console script in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from pix2pix_zoo.cli import main
from pix2pix_zoo.plugins import ALLOW_LIST_VARIABLE


def zoo_executable() -> str:
    """The ``zoo`` console script installed beside this interpreter."""
    candidate = Path(sys.executable).with_name("zoo")
    return str(candidate) if candidate.exists() else shutil.which("zoo") or "zoo"


def run_env(**extra: str) -> dict[str, str]:
    """Environment for CLI subprocesses: no colours, fixed width, no debug, no allow-list."""
    env = {k: v for k, v in os.environ.items() if k not in ("ZOO_DEBUG", ALLOW_LIST_VARIABLE)}
    env.update({"NO_COLOR": "1", "COLUMNS": "100", "TERMINAL_WIDTH": "100", "PYTHONIOENCODING": "utf-8"})
    env.update(extra)
    return env


def run_zoo(*args: str, cwd: Path | str | None = None, **env: str) -> subprocess.CompletedProcess:
    """Run the real ``zoo`` console script; returns the completed process (text output)."""
    return subprocess.run(
        [zoo_executable(), *args], capture_output=True, text=True, env=run_env(**env), cwd=cwd, timeout=300
    )


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``main`` in this process; return (exit code, stdout, stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code if isinstance(exit_info.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err
