"""Every command, given hostile arguments, ends with one line on stderr and exit code 1.

The probes run ``main`` in this process (a traceback fails the test as an uncaught exception) against
one tiny finished run, a translator file, a folder of images and a throw-away ``$ZOO_HOME``. A probe
must be refused with a sentence of its own: the catch-all for defects ("unexpected ...") fails too.
Every command the app has must be probed, so a new command cannot arrive unprobed.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from helpers import run_main, run_zoo
from PIL import Image
from safetensors.torch import save_file
from test_trainer import tiny_config

from pix2pix_zoo.cli import make_app
from pix2pix_zoo.engine.trainer import Trainer

SPEC = "unet_128(ngf=8)+patch70(ndf=8)+l1cgan"
TRAIN = ["--data", "synthfacades", "--data-opt", "size=128", "--data-opt", "count=8", "--load-size", "128",
         "--crop-size", "128", "--max-steps", "2", "--no-progress", "--workers", "0"]


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    """A folder with a finished run, images, a plain file and garbage files; probes name them as {run}, ..."""
    root = tmp_path_factory.mktemp("probe")
    run = root / "runs" / "tiny"
    Trainer(tiny_config(max_steps=2, data_options={"size": 32, "count": 8}), run, progress=False).fit()
    (root / "images").mkdir()
    for index, size in enumerate([(32, 32), (45, 29)]):
        Image.new("RGB", size, (40 * index, 90, 200)).save(root / "images" / f"in{index}.png")
    (root / "plain.txt").write_text("a file, not a folder\n")
    (root / "clash.toml").write_text(f'[[run]]\nspec = "{SPEC}"\nname = "tiny"\n')  # runs/tiny has other settings
    (root / "garbage.safetensors").write_bytes(os.urandom(300))
    (root / "garbage.onnx").write_bytes(os.urandom(300))
    (root / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    # LPIPS weights of the wrong shapes: a head and an AlexNet layer (see pix2pix_zoo.perceptual).
    save_file({"lin0.model.1.weight": torch.zeros(1, 3, 1, 1), "features.0.weight": torch.zeros(2)},
              str(root / "wrong-lpips.safetensors"))
    broken = root / "runs" / "broken"
    shutil.copytree(run, broken)
    (broken / "checkpoints" / "latest").write_bytes(b"\xff\xfe\x00\x81binary")
    badconfig = root / "runs" / "badconfig"
    shutil.copytree(run, badconfig)
    (badconfig / "config.json").write_text("{not json")
    badeval = root / "runs" / "badeval"
    shutil.copytree(run, badeval)
    (badeval / "eval.json").write_text("[1, 2")
    (root / "home").mkdir()
    return root


# Bad --lpips-weights files: (id, path).
LPIPS_WEIGHTS = [("missing", "{no_such.safetensors}"), ("folder", "{images}"), ("garbage", "{garbage.safetensors}"),
                 ("wrong-shapes", "{wrong-lpips.safetensors}")]

# (id, arguments): each must be refused in one line with exit code 1. "{x}" is a path under the probe folder.
PROBES = [
    ("root-unknown-option", ["--no-such-option"]),
    ("root-unknown-command", ["no-such-command"]),
    ("components-unknown-kind", ["components", "gizmo"]),
    ("components-unknown-option", ["components", "--no-such-option"]),
    ("info-missing-spec", ["info"]),
    ("info-huge-option", ["info", "unet(ngf=99999999999999999999999)+patch70+l1cgan"]),
    ("info-huge-width", ["info", "unet+patch70(ndf=100000000)+l1cgan"]),
    ("info-float-channels", ["info", "unet+l1", "--in-channels", "1e20"]),
    ("info-huge-channels", ["info", "unet+l1", "--in-channels", "100000000000000000000"]),
    ("info-zero-channels", ["info", "unet+l1", "--out-channels", "0"]),
    ("info-bad-spec", ["info", "unet++l1"]),
    ("plugins-unknown-option", ["plugins", "--no-such-option"]),
    ("plugins-new-missing-name", ["plugins", "new"]),
    ("plugins-new-output-is-file", ["plugins", "new", "mynet", "-o", "{plain.txt}"]),
    ("plugins-new-unknown-kind", ["plugins", "new", "mynet", "--kind", "sampler"]),
    ("plugins-new-taken-name", ["plugins", "new", "unet"]),
    ("plugins-new-keyword", ["plugins", "new", "class"]),
    ("data-list-unknown-option", ["data", "list", "--no-such-option"]),
    ("data-info-unknown", ["data", "info", "no_such_dataset"]),
    ("data-download-unknown", ["data", "download", "no_such_dataset"]),
    ("data-prepare-unknown", ["data", "prepare", "no_such_dataset"]),
    ("train-missing-spec", ["train", *TRAIN]),
    ("train-float-seed", ["train", SPEC, *TRAIN, "--seed", "1e20"]),
    ("train-huge-seed", ["train", SPEC, *TRAIN, "--seed", "100000000000000000000000"]),
    ("train-runs-is-file", ["train", SPEC, *TRAIN, "--runs", "{plain.txt}"]),
    ("train-lr-inf", ["train", SPEC, *TRAIN, "--lr", "inf"]),
    ("train-lr-nan", ["train", SPEC, *TRAIN, "--lr", "nan"]),
    ("train-workers-negative", ["train", SPEC, *TRAIN, "--workers", "-1"]),
    ("train-batch-too-large", ["train", SPEC, *TRAIN, "--batch-size", "9"]),
    ("train-load-size-huge", ["train", SPEC, *TRAIN, "--load-size", "100000"]),
    ("train-unknown-optimizer", ["train", SPEC, *TRAIN, "--optimizer", "sgdx"]),
    ("train-unknown-dataset", ["train", SPEC, "--data", "no_such_dataset", "--max-steps", "1"]),
    ("train-resume-missing", ["train", "--resume", "{runs/nothing}"]),
    ("train-resume-file", ["train", "--resume", "{plain.txt}"]),
    ("train-resume-binary-latest", ["train", "--resume", "{runs/broken}", "--max-steps", "3"]),
    ("train-resume-bad-config", ["train", "--resume", "{runs/badconfig}", "--max-steps", "3"]),
    ("train-workers-word", ["train", SPEC, *TRAIN, "--workers", "many"]),
    ("train-resume-with-other-options", ["train", "--resume", "{runs/tiny}", "--batch-size", "4"]),
    ("train-resume-activation-checkpointing", ["train", "--resume", "{runs/tiny}", "--activation-checkpointing"]),
    ("train-activation-checkpointing-value", ["train", SPEC, *TRAIN, "--activation-checkpointing=yes"]),
    ("train-activation-checkpointing-unsupported",
     ["train", "timm_unet(backbone=resnet18,ngf=8)+l1", *TRAIN, "--activation-checkpointing"]),
    *[(f"train-lpips-{what}", ["train", SPEC, *TRAIN, "--lpips-weights", weights]) for what, weights in LPIPS_WEIGHTS],
    ("list-unknown-option", ["list", "--no-such-option"]),
    ("pull-unknown", ["pull", "no_such_translator"]),
    # Hub names that would leave their folder or are no Hub name at all (tests/test_hub.py has the rest).
    ("pull-hub-escape", ["pull", "hf://zoo-org/.."]),
    ("pull-hub-revision-escape", ["pull", "hf://zoo-org/tiny@../../x"]),
    ("pull-hub-percent-escape", ["pull", "hf://zoo-org/%2e%2e"]),
    ("translate-hub-bad-name", ["translate", "hf://zoo org/tiny", "{images}", "-o", "{out}", "--no-progress"]),
    ("eval-hub-bad-name", ["eval", "hf:///etc/passwd", "--data", "synthfacades"]),
    ("compare-hub-bad-name", ["compare", "hf://zoo-org/tiny@", "--data", "synthfacades"]),
    ("export-hub-bad-name", ["export", "hf://a/b/c", "--format", "onnx"]),
    ("publish-missing-run", ["publish", "{runs/nothing}"]),
    ("publish-file", ["publish", "{plain.txt}"]),
    ("publish-bad-eval", ["publish", "{runs/badeval}", "--name", "badeval"]),
    ("publish-bad-config", ["publish", "{runs/badconfig}", "--name", "badconfig"]),
    ("publish-hub-offline", ["publish", "{runs/tiny}", "--name", "offline", "--to", "hf://org/name"]),
    ("publish-hub-bad-target", ["publish", "{runs/tiny}", "--name", "badtarget", "--to", "s3://bucket"]),
    ("translate-missing-output", ["translate", "{runs/tiny}", "{images}"]),
    ("translate-output-is-file", ["translate", "{runs/tiny}", "{images}", "-o", "{plain.txt}", "--no-progress"]),
    ("translate-output-is-input", ["translate", "{runs/tiny}", "{images}", "-o", "{images}", "--no-progress"]),
    ("translate-unknown-model", ["translate", "no_such_translator", "{images}", "-o", "{out}", "--no-progress"]),
    ("translate-garbage-model", ["translate", "{garbage.safetensors}", "{images}", "-o", "{out}", "--no-progress"]),
    ("translate-missing-input", ["translate", "{runs/tiny}", "{no_such.png}", "-o", "{out}", "--no-progress"]),
    ("translate-garbage-image", ["translate", "{runs/tiny}", "{garbage.png}", "-o", "{out}", "--no-progress"]),
    ("translate-tile-one", ["translate", "{runs/tiny}", "{images}", "-o", "{out}", "--no-progress", "--tile", "1"]),
    ("translate-bad-mode", ["translate", "{runs/tiny}", "{images}", "-o", "{out}", "--no-progress", "--mode", "fast"]),
    ("translate-bad-backend", ["translate", "{runs/tiny}", "{images}", "-o", "{out}", "--no-progress", "--backend", "tvm"]),
    ("translate-bad-precision", ["translate", "{runs/tiny}", "{images}", "-o", "{out}", "--no-progress",
                                 "--precision", "int8"]),
    ("translate-onnxruntime-bf16", ["translate", "{runs/tiny}", "{images}", "-o", "{out}", "--no-progress",
                                    "--backend", "onnxruntime", "--mode", "eval", "--precision", "bf16"]),
    ("translate-garbage-onnx", ["translate", "{garbage.onnx}", "{images}", "-o", "{out}", "--no-progress"]),
    ("export-unknown-format", ["export", "{runs/tiny}", "--format", "coreml"]),
    ("export-missing-format", ["export", "{runs/tiny}"]),
    ("export-bad-mode", ["export", "{runs/tiny}", "--format", "torchscript", "--mode", "fast", "-o", "{out.pt}"]),
    ("export-output-exists", ["export", "{runs/tiny}", "--format", "onnx", "-o", "{plain.txt}"]),
    ("export-output-is-folder", ["export", "{runs/tiny}", "--format", "onnx", "-o", "{images}"]),
    ("export-output-missing-folder", ["export", "{runs/tiny}", "--format", "onnx", "-o", "{missing/dir/m.onnx}"]),
    ("export-over-its-weights", ["export", "{runs/tiny/translator/model.safetensors}", "--format", "onnx",
                                 "-o", "{runs/tiny/translator/model.safetensors}", "--overwrite"]),
    ("export-unknown-model", ["export", "no_such_translator", "--format", "onnx"]),
    ("export-garbage-model", ["export", "{garbage.safetensors}", "--format", "onnx"]),
    ("export-an-onnx-file", ["export", "{garbage.onnx}", "--format", "torchscript"]),
    ("export-bad-opset", ["export", "{runs/tiny}", "--format", "onnx", "--opset", "3"]),
    ("benchmark-unknown-format", ["benchmark", "{runs/tiny}", "--formats", "tensorrt"]),
    ("benchmark-zero-batch", ["benchmark", "{runs/tiny}", "--batch", "0"]),
    ("benchmark-huge-size", ["benchmark", "{runs/tiny}", "--size", "100000"]),
    ("benchmark-missing-device", ["benchmark", "{runs/tiny}", "--device", "cuda:7"]),
    ("benchmark-garbage-model", ["benchmark", "{garbage.safetensors}"]),
    ("benchmark-an-onnx-file", ["benchmark", "{garbage.onnx}"]),
    ("serve-missing-name", ["serve"]),
    ("serve-unknown-model", ["serve", "no_such_translator", "--port", "0"]),
    ("serve-garbage-model", ["serve", "{garbage.safetensors}", "--port", "0"]),
    ("serve-not-a-translator", ["serve", "{plain.txt}", "--port", "0"]),
    ("serve-port-too-large", ["serve", "{runs/tiny}", "--port", "70000"]),
    ("serve-port-word", ["serve", "{runs/tiny}", "--port", "http"]),
    ("serve-bad-mode", ["serve", "{runs/tiny}", "--port", "0", "--mode", "fast"]),
    ("serve-zero-queue", ["serve", "{runs/tiny}", "--port", "0", "--queue", "0"]),
    ("serve-same-name-twice", ["serve", "{runs/tiny}", "{runs/tiny}", "--port", "0"]),
    ("serve-unknown-host", ["serve", "{runs/tiny}", "--port", "0", "--host", "no-such-host.invalid"]),
    ("serve-bad-backend", ["serve", "{runs/tiny}", "--port", "0", "--backend", "tvm"]),
    ("eval-output-missing-folder", ["eval", "{runs/tiny}", "--data", "synthfacades", "--data-opt", "size=32",
                                    "--data-opt", "count=2", "--output", "{missing/dir/x.json}"]),
    ("eval-unknown-dataset", ["eval", "{runs/tiny}", "--data", "no_such_dataset"]),
    ("eval-garbage-model", ["eval", "{garbage.safetensors}", "--data", "synthfacades"]),
    *[(f"eval-lpips-{what}", ["eval", "{runs/tiny}", "--data", "synthfacades", "--data-opt", "size=32",
                              "--data-opt", "count=2", "--lpips-weights", weights])
      for what, weights in LPIPS_WEIGHTS],
    ("sweep-nothing-to-run", ["sweep", *TRAIN]),
    ("sweep-unclosed-brace", ["sweep", "unet+{patch16,patch70+l1cgan", *TRAIN]),
    ("sweep-huge-grid", ["sweep", "unet(ngf={1,2,3,4,5,6,7,8,9,10})" * 5 + "+l1", *TRAIN]),
    ("sweep-bad-alternative", ["sweep", "unet_128(ngf=8)+{patch70,patch71}+l1cgan", *TRAIN]),
    ("sweep-runs-is-file", ["sweep", SPEC, *TRAIN, "--runs", "{plain.txt}"]),
    ("sweep-bad-shard", ["sweep", SPEC, *TRAIN, "--shard", "3/2"]),
    ("sweep-no-devices", ["sweep", SPEC, *TRAIN, "--devices", ","]),
    ("sweep-missing-device", ["sweep", SPEC, *TRAIN, "--devices", "cpu,cuda:7"]),
    ("sweep-name-escapes", ["sweep", SPEC, *TRAIN, "--name", "../up"]),
    ("sweep-file-missing", ["sweep", "--sweep", "{no_such.toml}", *TRAIN]),
    ("sweep-file-garbage", ["sweep", "--sweep", "{garbage.png}", *TRAIN]),
    ("sweep-file-other-settings", ["sweep", "--sweep", "{clash.toml}", *TRAIN, "--runs", "{.}", "--name", "runs"]),
    ("sweep-unknown-recipe", ["sweep", "--recipe", "no-such-recipe"]),
    ("sweep-lpips-garbage", ["sweep", SPEC, *TRAIN, "--lpips-weights", "{garbage.safetensors}"]),
    ("compare-missing-run", ["compare"]),
    ("compare-not-a-run", ["compare", "{plain.txt}"]),
    ("compare-no-such-folder", ["compare", "{runs/nothing}"]),
    ("compare-broken-config", ["compare", "{runs/badconfig}"]),
    ("compare-translator-without-data", ["compare", "{runs/tiny}", "{garbage.safetensors}"]),
    ("compare-garbage-translator", ["compare", "{garbage.safetensors}", "--data", "synthfacades"]),
    ("compare-unknown-translator", ["compare", "no_such_translator", "--data", "synthfacades"]),
    ("compare-unknown-dataset", ["compare", "{runs/tiny}", "--data", "no_such_dataset"]),
    ("compare-bad-backend", ["compare", "{runs/tiny}", "--data", "synthfacades", "--data-opt", "size=32",
                             "--data-opt", "count=2", "--backend", "tvm"]),
    ("compare-torch-backend-onnx", ["compare", "{garbage.onnx}", "--data", "synthfacades", "--backend", "torch"]),
    ("compare-html-missing-folder", ["compare", "{runs/tiny}", "--html", "{missing/dir/page.html}"]),
    ("compare-html-is-folder", ["compare", "{runs/tiny}", "--html", "{runs}"]),
    ("compare-lpips-garbage", ["compare", "{runs/tiny}", "--lpips-weights", "{garbage.safetensors}"]),
]

# Probes that need $ZOO_HOME itself to be hostile: (id, arguments).
HOME_IS_A_FILE = [
    ("pull-home-is-file", ["pull", "facades_label2photo"]),
    ("list-home-is-file", ["list"]),
    ("publish-home-is-file", ["publish", "{runs/tiny}", "--name", "homefile"]),
]


def fill(arguments: list[str], root: Path) -> list[str]:
    return [str(root / a[1:-1]) if a.startswith("{") and a.endswith("}") else a for a in arguments]


def assert_one_line_refusal(code: int, out: str, err: str) -> None:
    lines = err.strip().splitlines()
    assert code == 1, f"exit code {code}; stderr: {err[-2000:]}"
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    assert "Traceback" not in err and "unexpected" not in lines[0], lines[0]


@pytest.mark.parametrize("arguments", [p[1] for p in PROBES], ids=[p[0] for p in PROBES])
def test_hostile_arguments_are_one_line_and_exit_1(arguments, place, capsys, monkeypatch):
    monkeypatch.chdir(place)
    monkeypatch.setenv("ZOO_HOME", str(place / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.delenv("ZOO_DEBUG", raising=False)
    before = sorted(p.relative_to(place) for p in place.rglob("*"))
    code, out, err = run_main(capsys, *fill(arguments, place))
    assert_one_line_refusal(code, out, err)
    after = sorted(p.relative_to(place) for p in place.rglob("*"))
    assert after == before, f"a refused command changed the files: {sorted(set(after) ^ set(before))}"


@pytest.mark.parametrize("arguments", [p[1] for p in HOME_IS_A_FILE], ids=[p[0] for p in HOME_IS_A_FILE])
def test_zoo_home_that_is_a_file_is_one_line(arguments, place, capsys, monkeypatch):
    monkeypatch.chdir(place)
    monkeypatch.setenv("ZOO_HOME", str(place / "plain.txt"))
    monkeypatch.delenv("ZOO_DEBUG", raising=False)
    code, out, err = run_main(capsys, *fill(arguments, place))
    assert_one_line_refusal(code, out, err)
    assert "ZOO_HOME" in err


def command_paths(group, prefix=()) -> list[tuple[str, ...]]:
    """Every command of a click group, as the words that invoke it."""
    found = []
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            found += command_paths(command, (*prefix, name))
            if command.invoke_without_command:
                found.append((*prefix, name))
        else:
            found.append((*prefix, name))
    return found


def test_every_command_is_probed():
    import typer.main

    commands = command_paths(typer.main.get_command(make_app()))
    probed = {tuple(w for w in arguments if not w.startswith("-") and not w.startswith("{"))[: len(c)]
              for _, arguments in PROBES + HOME_IS_A_FILE for c in commands}
    missing = [" ".join(c) for c in commands if c not in probed]
    assert not missing, f"commands without a hostile probe in tests/test_bad_input.py: {missing}"


@pytest.mark.parametrize("arguments", [
    ["no-such-command"],
    ["info", "unet+l1", "--in-channels", "1e20"],
    ["train", "unet+l1", "--seed", "1e20"],
    ["translate", "no_such_translator", "x.png", "-o", "out"],
], ids=["unknown-command", "bad-int", "bad-seed", "unknown-translator"])
def test_console_script_refusals_are_one_line(arguments, tmp_path):
    result = run_zoo(*arguments, cwd=tmp_path, ZOO_HOME=str(tmp_path / "home"))
    assert_one_line_refusal(result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""


def test_debug_variable_shows_a_usage_errors_traceback(tmp_path):
    result = run_zoo("info", "unet+l1", "--in-channels", "1e20", cwd=tmp_path, ZOO_DEBUG="1")
    assert result.returncode == 1 and "Traceback" in result.stderr and "BadParameter" in result.stderr


def test_a_defect_is_still_one_line(capsys, monkeypatch):
    """An exception the zoo does not expect says it is a defect, in one line, with the way to see more."""
    from pix2pix_zoo.cli import info

    def broken(*args, **kwargs):
        raise KeyError("generator")

    monkeypatch.setattr(info, "describe", broken)
    monkeypatch.delenv("ZOO_DEBUG", raising=False)
    code, out, err = run_main(capsys, "info", "unet+l1")
    assert code == 1 and err.count("\n") == 1
    assert "unexpected KeyError" in err and "ZOO_DEBUG=1" in err and "defect" in err


def test_json_of_a_refusal_is_not_on_stdout(place, capsys, monkeypatch):
    """Data on stdout, diagnostics on stderr: a refused --json command prints nothing to stdout."""
    monkeypatch.chdir(place)
    code, out, err = run_main(capsys, "info", "unet+patchh70+l1cgan", "--json")
    assert code == 1 and out == "" and err.startswith("error: ")
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)
