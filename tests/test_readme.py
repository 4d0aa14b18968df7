"""The README's examples run as written: the quick-tour commands, the error example, the Python API."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

from helpers import run_env, zoo_executable

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


def tour_commands() -> list[list[str]]:
    (tour,) = [block for block in code_blocks("bash") if "zoo info" in block]
    commands = []
    for line in tour.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            commands.append(words)
    return commands


def test_quick_tour_commands_succeed(tmp_path):
    commands = tour_commands()
    assert len(commands) >= 6
    for words in commands:
        executable = {"zoo": zoo_executable(), "python": sys.executable}[words[0]]
        result = subprocess.run([executable, *words[1:]], capture_output=True, text=True, env=run_env(), cwd=tmp_path)
        assert result.returncode == 0, (words, result.stderr)
        assert result.stdout.strip(), words


def test_documented_error_is_what_the_cli_prints(tmp_path):
    (example,) = re.findall(r"```\n\$ (zoo .*?)\n(error: .*?)\n```", README, re.S)
    command, expected = example
    words = shlex.split(command)
    result = subprocess.run([zoo_executable(), *words[1:]], capture_output=True, text=True, env=run_env(), cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.strip() == expected


def test_python_examples_run():
    blocks = [block for block in code_blocks("python") if "resolve(" in block]
    assert blocks
    for block in blocks:
        namespace: dict = {}
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - our own documentation
    assert set(namespace["losses"]) == {"d", "g", "g_gan", "g_l1"}


def test_plugin_example_registers(register_plugin, fresh_plugins):
    (block,) = [block for block in code_blocks("python") if "@hookimpl" in block]
    module = type(sys)("readme_plugin")
    exec(compile(block, "README.md", "exec"), module.__dict__)  # noqa: S102
    register_plugin(module, name="readme_plugin")
    from pix2pix_zoo.spec import canonical

    assert canonical("tiny(width=8)+patch70+l1cgan") == "tiny(width=8)+patch70+l1cgan"
    models = fresh_plugins.get_registry().get("tiny").build(3, 3, width=4)
    assert models.size_multiple == 1


def test_main_job_command_runs(tmp_path):
    """The README's main job, cut short to two steps (the full run is the README's 6-minute figure)."""
    block = README.split("## The main job", 1)[1]
    (command,) = re.findall(r"```bash\n(zoo train .*?)\n```", block, re.S)[:1]
    words = shlex.split(command)
    result = subprocess.run(
        [zoo_executable(), *words[1:], "--max-steps", "2", "--no-progress", "--runs", str(tmp_path), "--json"],
        capture_output=True, text=True, env=run_env(), cwd=tmp_path, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    evaluation = json.loads(result.stdout)
    assert set(evaluation) >= {"translator", "mean training target", "input unchanged"}
    assert evaluation["split"] == "test" and evaluation["pairs"] == 100
