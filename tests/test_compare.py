"""``zoo compare``: runs and sweeps side by side from what each run wrote, the best of each group marked,
runs evaluated on other data not ranked with them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import assert_one_line, run_zoo

from pix2pix_zoo.engine.config import TrainConfig
from pix2pix_zoo.engine.trainer import Trainer
from pix2pix_zoo.experiments.compare import compare_runs
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
    rows, notes = compare_runs([runs / "discs"])
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
    rows, notes = compare_runs([runs / "discs", runs / "other"])
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
