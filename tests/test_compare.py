"""``zoo compare``: runs and sweeps side by side from what each run wrote, the best of each group marked,
runs evaluated on other data not ranked with them; translators evaluated on ``--data``; the comparison
page, rendered in headless Chromium."""

from __future__ import annotations

import gc
import json
import os
import weakref
from pathlib import Path

import pytest
from helpers import assert_one_line, chromium, random_lpips_weights, render_in_chromium, run_zoo

from pix2pix_zoo.engine.config import TrainConfig
from pix2pix_zoo.engine.trainer import Trainer
from pix2pix_zoo.evaluation import NO_LPIPS
from pix2pix_zoo.experiments.compare import EvaluationSetting, compare
from pix2pix_zoo.experiments.sweep import check_sweep, grid_sweep, run_sweep, write_manifest

GRID = "resnet_6blocks(ngf=4,norm=batch)+{patch16(ndf=4),pixel(ndf=4)}+l1cgan"


def tiny(**overrides) -> TrainConfig:
    settings = dict(data="synthfacades", data_options={"size": 32, "count": 24}, load_size=36, crop_size=32,
                    batch_size=2, workers=0, device="cpu", log_every=1, sample_every=100, max_steps=2)
    return TrainConfig(**(settings | overrides))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A finished sweep of two runs, and one run evaluated on other data."""
    root = tmp_path_factory.mktemp("compare")
    sweep = grid_sweep(GRID, tiny(), name="discs")
    check_sweep(sweep, root)
    write_manifest(sweep, root)
    assert [o.outcome for o in run_sweep(list(sweep.runs), sweep.folder(root), progress=False)] == ["trained"] * 2
    Trainer(tiny(spec="resnet_6blocks(ngf=4,norm=batch)+l1", data_options={"size": 32, "count": 20}),
            root / "other", progress=False).fit()
    return root


def test_a_sweeps_runs_are_rows_with_their_facts_and_the_best_marked(runs):
    rows, notes = compare([str(runs / "discs")])
    assert notes == []
    assert [row.spec for row in rows] == ["resnet_6blocks(ngf=4,norm=batch)+patch16(ndf=4)+l1cgan",
                                          "resnet_6blocks(ngf=4,norm=batch)+pixel(ndf=4)+l1cgan"]
    assert [row.receptive_field for row in rows] == [16, 1]
    assert rows[0].generator_parameters == rows[1].generator_parameters > 0
    assert rows[0].discriminator_parameters > rows[1].discriminator_parameters > 0
    assert all(row.steps == 2 and row.images_per_second > 0 and row.wall_seconds > 0 for row in rows)
    assert all(set(row.translator) == {"l1", "psnr", "ssim"} for row in rows)
    assert all(set(row.baselines) == {"input unchanged", "mean training target"} for row in rows)
    for column, pick in (("l1", min), ("psnr", max), ("ssim", max)):
        best = pick(row.translator[column] for row in rows)
        assert [column in row.best for row in rows] == [row.translator[column] == best for row in rows]


def test_runs_evaluated_on_other_data_are_not_ranked_with_them(runs):
    rows, notes = compare([str(runs / "discs"), str(runs / "other")])
    assert len(rows) == 3 and rows[2].spec == "resnet_6blocks(ngf=4,norm=batch)+l1"
    assert rows[2].best == [] and rows[2].discriminator_parameters is None and rows[2].receptive_field is None
    assert len(notes) == 1 and notes[0].startswith("not ranked with the first runs: other were evaluated on other data")
    assert '"count": 20' in notes[0]


def test_the_command_prints_a_table_json_and_markdown(runs):
    table = run_zoo("compare", str(runs / "discs"), str(runs / "other"))
    assert table.returncode == 0, table.stderr
    assert "patch16" in table.stdout and "0." in table.stdout
    assert table.stderr.startswith("note: not ranked with the first runs: other")
    as_json = json.loads(run_zoo("compare", str(runs / "discs"), "--json").stdout)
    assert [row["receptive_field"] for row in as_json] == [16, 1]
    markdown = run_zoo("compare", str(runs / "discs"), "--markdown").stdout.splitlines()
    assert markdown[0].startswith("| spec | G params | D params | RF |") and markdown[1].startswith("|---|")
    assert len(markdown) == 4 and sum(line.count("**") for line in markdown[2:]) >= 6  # 3 columns, each marked


def test_something_that_is_not_a_run_is_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    result = run_zoo("compare", str(tmp_path / "notes.txt"))
    assert_one_line(result.returncode, result.stderr, "is neither a run directory")


def test_translators_and_runs_are_evaluated_afresh_on_data_and_ranked_together(runs, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no cached AlexNet: LPIPS left out, with a note
    first, second = _discs(runs)
    weights = first / "translator" / "model.safetensors"
    rows, notes = compare([str(weights), str(second)], EvaluationSetting(
        data="synthfacades", data_options={"size": 32, "count": 30}, size=32, device="cpu"))
    assert notes == [NO_LPIPS] and [row.kind for row in rows] == ["translator", "run"]
    assert rows[0].spec == "resnet_6blocks(ngf=4,norm=batch)+patch16(ndf=4)+l1cgan" and rows[0].steps == 2
    assert rows[0].generator_parameters == rows[1].generator_parameters and rows[0].receptive_field == 16
    assert rows[0].evaluated_on == rows[1].evaluated_on and '"count": 30' in rows[0].evaluated_on
    assert all(set(row.translator) == {"l1", "psnr", "ssim"} for row in rows)
    # The same figures zoo eval gives for that translator on that split.
    evaluated = run_zoo("eval", str(weights), "--data", "synthfacades", "--data-opt", "size=32",
                        "--data-opt", "count=30", "--size", "32", "--device", "cpu", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["translator"]["l1"] == rows[0].translator["l1"]
    assert sum(len(row.best) for row in rows) >= 3
    # With LPIPS weights, a column more; the runs without --data keep their trainer's figures.
    lpips = random_lpips_weights(tmp_path / "lpips.safetensors")
    again, notes = compare([str(runs / "discs")], EvaluationSetting(lpips_weights=lpips, device="cpu"))
    own, _ = compare([str(runs / "discs")])
    assert notes == [] and all(0 < row.translator["lpips"] for row in again)
    assert [{k: v for k, v in row.translator.items() if k != "lpips"} for row in again] == [r.translator for r in own]
    assert sum("lpips" in row.best for row in again) >= 1


def test_the_onnxruntime_backend_evaluates_runs_weights_and_exports_in_their_own_modes(runs, tmp_path):
    first = _discs(runs)[0]
    weights = first / "translator" / "model.safetensors"
    exported = run_zoo("export", str(weights), "--format", "onnx", "-o", str(tmp_path / "model.onnx"))  # eval mode
    assert exported.returncode == 0, exported.stderr
    data = ["--data", "synthfacades", "--data-opt", "size=32", "--data-opt", "count=30", "--size", "32", "--device", "cpu"]
    result = run_zoo("compare", str(first), str(weights), str(tmp_path / "model.onnx"), *data, "--backend", "onnxruntime",
                     "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [row["kind"] for row in rows] == ["run", "translator", "translator"]
    assert len({row["spec"] for row in rows}) == 1 and len({row["evaluated_on"] for row in rows}) == 1
    scores = {}
    for mode in ("eval", "paper"):
        evaluated = run_zoo("eval", str(weights), *data, "--mode", mode, "--json")
        assert evaluated.returncode == 0, evaluated.stderr
        scores[mode] = json.loads(evaluated.stdout)["translator"]
    # The eval-mode export computes torch's eval mode.
    assert rows[2]["translator"]["l1"] == pytest.approx(scores["eval"]["l1"], abs=1e-5)
    assert rows[2]["translator"]["psnr"] == pytest.approx(scores["eval"]["psnr"], abs=1e-3)
    # The run and its weights, exported in memory in their card's paper mode: the same sessions, both seeded 0.
    assert rows[0]["translator"] == rows[1]["translator"]
    assert rows[0]["translator"]["l1"] != pytest.approx(scores["eval"]["l1"], abs=1e-4)
    assert rows[0]["translator"]["l1"] == pytest.approx(scores["paper"]["l1"], rel=0.05)  # other masks, same law


def test_a_translator_without_data_is_one_line(runs):
    weights = _discs(runs)[0] / "translator" / "model.safetensors"
    result = run_zoo("compare", str(runs / "discs"), str(weights))
    assert_one_line(result.returncode, result.stderr, "translators (catalog names, weights files) are compared on --data")


@pytest.mark.skipif(chromium() is None and not os.environ.get("CI"), reason="chromium is not installed here")
def test_the_page_shows_samples_side_by_side_the_table_and_overlaid_curves_in_chromium(runs, tmp_path):
    page = tmp_path / "compare.html"
    lpips = random_lpips_weights(tmp_path / "lpips.safetensors")
    result = run_zoo("compare", str(runs / "discs"), str(runs / "other"), "--html", str(page), "--samples", "3",
                     "--lpips-weights", str(lpips))
    assert result.returncode == 0, result.stderr
    assert f"wrote {page}" in result.stderr
    seen = render_in_chromium(page, tmp_path)
    specs = ["resnet_6blocks(ngf=4,norm=batch)+patch16(ndf=4)+l1cgan",
             "resnet_6blocks(ngf=4,norm=batch)+pixel(ndf=4)+l1cgan", "resnet_6blocks(ngf=4,norm=batch)+l1"]
    # The figure: input | each run's output | target, labelled by spec, for 3 held-out inputs.
    assert seen["headers"][:5] == ["input", *specs, "target"]
    pictures = seen["images"]
    assert len(pictures) == 3 * 5
    assert all(p["complete"] and (p["width"], p["height"]) == (32, 32) and p["shown"][0] >= 96 for p in pictures)
    # The table: one row per run, its figures.
    assert all(spec in seen["cells"] for spec in specs) and "LPIPS" in seen["headers"]
    rows, _ = compare([str(runs / "discs"), str(runs / "other")])
    assert f"{rows[0].translator['l1']:.4f}" in seen["cells"]
    # The loss curves: every run on one chart per loss, with a legend naming them.
    charts = seen["charts"]
    assert charts and all(chart["box"][0] > 200 and chart["box"][1] > 100 for chart in charts)
    g_l1 = next(chart for chart in charts if "g_l1" in chart["texts"])
    assert all(spec in g_l1["texts"] for spec in specs)
    d = next(chart for chart in charts if "d" in chart["texts"])
    assert specs[2] not in d["texts"] and specs[0] in d["texts"]  # L1 alone trains no discriminator


def _discs(runs: Path) -> list[Path]:
    manifest = json.loads((runs / "discs" / "sweep.json").read_text())
    return [runs / "discs" / run["name"] for run in manifest["runs"]]


def test_the_page_holds_one_translator_at_a_time(runs, tmp_path, monkeypatch):
    """A sweep of many full-size translators must not be in memory all at once for its figure."""
    from pix2pix_zoo.experiments.compare_page import write_compare_page

    setting = EvaluationSetting(data="synthfacades", data_options={"size": 32, "count": 4}, size=32, device="cpu")
    rows, notes = compare([str(runs / "discs"), str(runs / "other")], setting)
    load, loaded, alive_when_loading = EvaluationSetting.translator, [], []

    def tracked(self, name):
        gc.collect()
        alive_when_loading.append(sum(ref() is not None for ref in loaded))
        translator = load(self, name)
        loaded.append(weakref.ref(translator))
        return translator

    monkeypatch.setattr(EvaluationSetting, "translator", tracked)
    write_compare_page(tmp_path / "page.html", rows, notes, setting, samples=2)
    assert alive_when_loading == [0, 0, 0]
    page = (tmp_path / "page.html").read_text()
    assert page.count("<img ") == 2 * (1 + 3 + 1)  # input | 3 outputs | target
    assert "<h1>Comparison of 3 translators</h1>" in page
    write_compare_page(tmp_path / "one.html", rows[:1], notes, setting, samples=1)
    assert "<h1>Comparison of 1 translator</h1>" in (tmp_path / "one.html").read_text()
