"""``--workers auto`` (the default): loader processes chosen from the cores and the device so that
decoding never takes the step's threads, the choice recorded in config.json."""

from __future__ import annotations

import json

import pytest
from test_trainer import tiny_config

from pix2pix_zoo.engine.config import ConfigFileError, TrainConfig
from pix2pix_zoo.engine.loading import loader_workers, usable_cores
from pix2pix_zoo.engine.trainer import Trainer


@pytest.mark.parametrize(("cores", "device", "processes", "expected"), [
    (2, "cpu", 1, 1),     # the measured case: two workers took the step's cores; one overlaps decoding
    (1, "cpu", 1, 0),     # one core: decode in the training process
    (8, "cpu", 1, 2),     # a CPU step uses every core; decoding gets one in four
    (64, "cpu", 1, 4),
    (16, "cuda", 1, 8),   # the step runs on the device: decode on the free cores, at most 8
    (4, "cuda", 1, 3),
    (16, "cuda", 8, 1),   # eight training processes share 16 cores: 2 each, one for the process
    (8, "cuda", 8, 0),
])
def test_auto_leaves_the_step_its_cores(cores, device, processes, expected):
    assert loader_workers("auto", device, processes, cores) == expected


def test_a_number_is_taken_as_it_is():
    assert loader_workers(3, "cpu", 1, 2) == 3 and loader_workers(0, "cuda", 1, 64) == 0


def test_the_default_is_auto_and_config_json_records_the_choice(tmp_path):
    assert TrainConfig().workers == "auto"
    run_dir = tmp_path / "run"
    Trainer(tiny_config(workers="auto", max_steps=2), run_dir, progress=False).fit()
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["config"]["workers"] == "auto"
    assert saved["loader_workers"] == loader_workers("auto", "cpu", 1, usable_cores())


@pytest.mark.parametrize("value", ["many", -1, 1.5, True])
def test_a_saved_workers_setting_must_be_auto_or_a_count(value):
    saved = TrainConfig().to_dict() | {"workers": value}
    with pytest.raises(ConfigFileError, match="'workers' in the config"):
        TrainConfig.from_dict(saved)
    assert TrainConfig.from_dict(TrainConfig().to_dict() | {"workers": 2}).workers == 2
