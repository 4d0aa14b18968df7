"""The ``zoo`` command line, driven as a real console script and in-process.

Help texts are snapshot-tested (``tests/snapshots/``) so that a typer, click or rich upgrade cannot
change them unnoticed; regenerate with ``ZOO_UPDATE_SNAPSHOTS=1 pytest tests/test_cli.py``.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run_env, run_main, run_zoo

from pix2pix_zoo import __version__

SNAPSHOTS = Path(__file__).parent / "snapshots"


def test_version_from_console_script_and_module():
    result = run_zoo("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"pix2pix-zoo {__version__}"
    module = subprocess.run(
        [sys.executable, "-m", "pix2pix_zoo", "--version"], capture_output=True, text=True, env=run_env()
    )
    assert module.returncode == 0 and module.stdout == result.stdout


FREEZE_WATCH = """
import atexit, gc, sys
atexit.register(lambda: print("frozen" if gc.get_freeze_count() else "not frozen"))
from pix2pix_zoo.cli import main
sys.argv = ["zoo", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("args", [("--version",), ("no-such-command",)])
def test_the_command_process_ends_with_the_collector_frozen_and_main_in_a_library_leaves_it(args, capsys):
    """Run as a process's command, main freezes the garbage collector for the interpreter's teardown
    (its exit code kept); called with arguments, as a library or a test does, it leaves it alone."""
    ended = subprocess.run([sys.executable, "-c", FREEZE_WATCH, *args], capture_output=True, text=True, env=run_env())
    assert ended.stdout.splitlines()[-1] == "frozen"
    assert ended.returncode == (0 if args == ("--version",) else 1)
    before = gc.get_freeze_count()
    code, _, _ = run_main(capsys, *args)
    assert code == ended.returncode and gc.get_freeze_count() == before


def test_components_json_subprocess():
    result = run_zoo("components", "--json")
    assert result.returncode == 0 and result.stderr == ""
    components = {c["name"]: c for c in json.loads(result.stdout)}
    assert components["unet_256"]["aliases"] == ["unet"] and components["unet_256"]["kind"] == "generator"
    assert components["unet_256"]["plugin"] == "nets"
    assert {"name": "norm", "type": "batch|instance|none|syncbatch", "default": "batch"} in components["unet_256"]["options"]
    assert components["patch70"]["aliases"] == ["patch"]
    assert {c["kind"] for c in components.values()} == {"generator", "discriminator", "objective", "dataset"}
    assert {"l1", "gan", "cgan", "l1gan", "l1cgan"} <= set(components)


@pytest.mark.parametrize(("kind", "expected"), [("discriminators", "discriminator"), ("objective", "objective")])
def test_components_of_one_kind(capsys, kind, expected):
    code, out, err = run_main(capsys, "components", kind, "--json")
    assert code == 0 and err == ""
    listed = json.loads(out)
    assert listed and {c["kind"] for c in listed} == {expected}


def test_components_filter_and_table(capsys):
    code, out, _ = run_main(capsys, "components", "--filter", "patch*", "--json")
    assert code == 0
    assert [c["name"] for c in json.loads(out)] == ["patch142", "patch16", "patch34", "patch70"]
    code, out, _ = run_main(capsys, "components", "generator")
    assert code == 0 and "unet_256" in out and "resnet_9blocks" in out and "patch70" not in out


def test_unknown_kind_is_one_line(capsys):
    code, out, err = run_main(capsys, "components", "generatrs")
    assert code == 1 and out == ""
    assert err == "error: unknown kind 'generatrs'; did you mean generator?\n"


def test_plugins_json(capsys):
    code, out, err = run_main(capsys, "plugins", "--json")
    assert code == 0 and err == ""
    records = {r["name"]: r for r in json.loads(out)}
    nets = records["nets"]
    assert nets["distribution"] == "pix2pix-zoo" and nets["version"] == __version__ and nets["builtin"]
    assert {"kind": "generator", "name": "unet_256"} in nets["registered"]
    code, out, _ = run_main(capsys, "plugins")
    assert code == 0 and "pix2pix-zoo" in out and "objectives" in out


def test_info_paper_setup_subprocess():
    result = run_zoo("info", "unet+patch+l1cgan", "--json")
    assert result.returncode == 0 and result.stderr == ""
    facts = json.loads(result.stdout)
    assert facts["spec"] == "unet_256+patch70+l1cgan"
    assert facts["generator"]["parameters"] == 54_413_955 and facts["generator"]["size_multiple"] == 256
    assert facts["discriminator"]["parameters"] == 2_768_705
    assert facts["discriminator"]["receptive_field"] == 70 and facts["discriminator"]["in_channels"] == 6
    assert facts["objective"]["conditional"] is True


def test_info_table_and_variants(capsys):
    code, out, _ = run_main(capsys, "info", "unet(norm=instance)+image+gan")
    assert code == 0
    assert "54,409,603" in out and "11,159,361" not in out  # unconditional: D sees 3 channels
    assert "286x286" in out and "unet_256(norm=instance)+image+gan" in out
    code, out, _ = run_main(capsys, "info", "unet_128+l1", "--json")
    facts = json.loads(out)
    assert facts["discriminator"] is None and facts["generator"]["parameters"] == 41_828_995
    code, out, _ = run_main(capsys, "info", "unet+pixel+cgan", "--in-channels", "1", "--out-channels", "2", "--json")
    facts = json.loads(out)
    assert facts["discriminator"]["in_channels"] == 3 and facts["in_channels"] == 1


def test_known_error_is_one_line_exit_1_and_no_traceback():
    result = run_zoo("info", "unet+patchh70+l1cgan")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "unknown discriminator 'patchh70'" in result.stderr and "patch70" in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_variable_shows_the_traceback():
    result = run_zoo("info", "unet+patchh70+l1cgan", ZOO_DEBUG="1")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "SpecError" in result.stderr


def test_usage_errors_are_clicks(capsys):
    code, _, err = run_main(capsys, "info")
    assert code == 1 and err == "error: zoo info: missing argument 'SPEC' (see 'zoo info --help')\n"


HELP_COMMANDS = {"zoo": [], "components": ["components"], "plugins": ["plugins"], "info": ["info"], "data": ["data"], "train": ["train"], "translate": ["translate"],
                 "list": ["list"], "pull": ["pull"], "publish": ["publish"],
                 "eval": ["eval"], "sweep": ["sweep"], "compare": ["compare"], "export": ["export"], "benchmark": ["benchmark"],
                 "serve": ["serve"]}


@pytest.mark.parametrize("name", sorted(HELP_COMMANDS))
def test_help_snapshot(name):
    result = run_zoo(*HELP_COMMANDS[name], "--help")
    assert result.returncode == 0 and result.stderr == ""
    snapshot = SNAPSHOTS / f"help_{name}.txt"
    if os.environ.get("ZOO_UPDATE_SNAPSHOTS") == "1":
        snapshot.write_text(result.stdout)
    assert result.stdout == snapshot.read_text(), f"`zoo {' '.join(HELP_COMMANDS[name])} --help` changed"


def test_no_arguments_shows_help():
    result = run_zoo()
    assert "Usage: zoo" in result.stdout + result.stderr
    assert "components" in result.stdout + result.stderr
