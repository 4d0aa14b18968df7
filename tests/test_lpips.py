"""LPIPS (pix2pix_zoo.perceptual): parity with the ``lpips`` package on the same random weights, the
places its weights come from, ``zoo eval --lpips-weights``, the trainer's eval.json, bad files."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from helpers import run_zoo
from safetensors.torch import save_file
from test_trainer import tiny_config

from pix2pix_zoo.cli.output import print_evaluation
from pix2pix_zoo.engine.config import TrainConfig
from pix2pix_zoo.engine.trainer import Trainer
from pix2pix_zoo.errors import ZooError
from pix2pix_zoo.evaluation import NO_LPIPS, evaluate
from pix2pix_zoo.perceptual import ALEXNET_CACHE_FILE, MIN_SIZE, load_lpips
from pix2pix_zoo.spec import resolve
from pix2pix_zoo.translator import Card, Translator, save_translator

CPU = torch.device("cpu")
SHAPES = [(2, 3, 64, 64), (3, 3, 48, 80), (1, 3, MIN_SIZE, 57), (2, 1, 40, 40)]  # grey: lpips broadcasts it
TOLERANCE = 1e-5


@pytest.fixture(autouse=True)
def empty_torch_home(tmp_path, monkeypatch):
    """No torchvision cache but the one a test writes: torch.hub.get_dir() is $TORCH_HOME/hub."""
    home = tmp_path / "torch-home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def reference_lpips(pretrained_heads: bool = False):
    """``lpips.LPIPS`` on AlexNet with a random backbone (``pnet_rand=True``: torchvision's alexnet
    with ``pretrained=False``, which is ``weights=None``, so nothing is downloaded) and, unless
    ``pretrained_heads``, seeded random linear heads (``pretrained=False``: the heads file is not read)."""
    import lpips

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's deprecation of `pretrained`
        network = lpips.LPIPS(net="alex", pretrained=pretrained_heads, pnet_rand=True, verbose=False)
    if not pretrained_heads:
        with torch.no_grad():
            for head in network.lins:
                head.model[-1].weight.copy_(torch.rand_like(head.model[-1].weight))
    return network.eval()


@pytest.fixture(scope="module")
def reference():
    return reference_lpips()


def torchvision_backbone(reference) -> dict[str, torch.Tensor]:
    """The reference's AlexNet features under torchvision's names (``features.0.weight`` ...)."""
    return {f"features.{key.split('.', 1)[1]}": value.clone() for key, value in reference.net.state_dict().items()}


def heads(reference) -> dict[str, torch.Tensor]:
    """The reference's heads as the lpips package ships them (``lin0.model.1.weight`` ...)."""
    return {f"lin{k}.model.1.weight": head.model[-1].weight.detach().clone() for k, head in enumerate(reference.lins)}


def whole_state_file(reference, path):
    """The reference's whole state dict (lin0 ... and lins.0 ... alike) as a safetensors file."""
    save_file({key: value.clone().contiguous() for key, value in reference.state_dict().items()}, str(path))
    return path


def largest_difference(ours, reference, shapes=SHAPES) -> float:
    torch.manual_seed(1)
    worst = 0.0
    for shape in shapes:
        a, b = torch.rand(shape) * 2 - 1, torch.rand(shape) * 2 - 1
        with torch.no_grad():
            expected = reference(a, b).flatten()
            found = ours(a, b)
        assert found.shape == (shape[0],) and expected.abs().min() > 0.01
        worst = max(worst, (found - expected).abs().max().item())
    return worst


def test_parity_with_the_lpips_package_from_its_whole_state_dict(reference, tmp_path):
    ours = load_lpips(whole_state_file(reference, tmp_path / "lpips.safetensors"), CPU)
    assert largest_difference(ours, reference) <= TOLERANCE


def test_parity_from_a_heads_file_and_torchvisions_cache(reference, tmp_path, empty_torch_home):
    """The lpips package's heads-file layout (.pth), the backbone from torch.hub's checkpoints folder."""
    cache = empty_torch_home / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    classifier = {"classifier.6.bias": torch.zeros(1000)}  # torchvision's file has it: ignored
    torch.save(torchvision_backbone(reference) | classifier, cache / ALEXNET_CACHE_FILE)
    torch.save(heads(reference), tmp_path / "alex.pth")
    ours = load_lpips(tmp_path / "alex.pth", CPU)
    assert largest_difference(ours, reference) <= TOLERANCE


def test_without_a_file_the_cache_and_the_installed_lpips_heads(reference, empty_torch_home):
    assert load_lpips(None, CPU) is None  # no cache: no LPIPS, and nothing downloaded
    cache = empty_torch_home / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(torchvision_backbone(reference), cache / ALEXNET_CACHE_FILE)
    shipped = reference_lpips(pretrained_heads=True)  # reads the heads the lpips package ships
    shipped.net.load_state_dict(reference.net.state_dict())
    ours = load_lpips(None, CPU)
    assert largest_difference(ours, shipped, SHAPES[:1]) <= TOLERANCE


def test_one_combined_file_of_torchvision_and_lpips_names(reference, tmp_path):
    path = tmp_path / "combined.safetensors"
    save_file(torchvision_backbone(reference) | heads(reference), str(path))
    assert largest_difference(load_lpips(path, CPU), reference, SHAPES[:1]) <= TOLERANCE


def test_identical_images_are_at_distance_zero(reference, tmp_path):
    ours = load_lpips(whole_state_file(reference, tmp_path / "lpips.safetensors"), CPU)
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    assert ours(images, images).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("case", ["missing", "folder", "garbage", "wrong-shape", "no-heads", "no-backbone",
                                  "unknown-key", "nested", "disagreeing-names"])
def test_a_file_that_does_not_fit_is_one_line(case, reference, tmp_path):
    path = tmp_path / "weights.safetensors"
    if case == "folder":
        path = tmp_path
    elif case == "garbage":
        path.write_bytes(b"\x00garbage" * 40)
    elif case == "wrong-shape":
        state = torchvision_backbone(reference) | heads(reference)
        state["lin2.model.1.weight"] = torch.zeros(1, 256, 1, 1)
        save_file(state, str(path))
    elif case == "no-heads":
        save_file(torchvision_backbone(reference), str(path))
    elif case == "no-backbone":
        save_file(heads(reference), str(path))  # and no torchvision cache
    elif case == "unknown-key":
        save_file(torchvision_backbone(reference) | heads(reference) | {"model.fc.weight": torch.zeros(2)}, str(path))
    elif case == "nested":
        path = tmp_path / "nested.pth"
        torch.save({"state_dict": heads(reference)}, path)
    elif case == "disagreeing-names":
        state = {key: value.clone().contiguous() for key, value in reference.state_dict().items()}
        state["lins.0.model.1.weight"] = state["lins.0.model.1.weight"] + 1
        save_file(state, str(path))
    expected = {"missing": "no LPIPS weights at", "folder": "no LPIPS weights at",
                "garbage": "not a readable safetensors file",
                "wrong-shape": r"another shape \(lin2.model.1.weight is \[1, 256, 1, 1\]",
                "no-heads": "holds no LPIPS linear heads", "no-backbone": "torchvision's cache has no",
                "unknown-key": "do not fit LPIPS.*model.fc.weight.*unexpected", "nested": "not a tensor",
                "disagreeing-names": "hold different tensors"}[case]
    with pytest.raises(ZooError, match=expected) as error:
        load_lpips(path, CPU)
    assert "\n" not in str(error.value)


def test_images_too_small_or_of_other_channels_are_refused(reference, tmp_path):
    ours = load_lpips(whole_state_file(reference, tmp_path / "lpips.safetensors"), CPU)
    with pytest.raises(ZooError, match=f"at least {MIN_SIZE} x {MIN_SIZE}"):
        ours(torch.zeros(1, 3, MIN_SIZE - 1, 64), torch.zeros(1, 3, MIN_SIZE - 1, 64))
    with pytest.raises(ZooError, match="1- or 3-channel"):
        ours(torch.zeros(1, 2, 64, 64), torch.zeros(1, 2, 64, 64))


# -- zoo eval and the trainer ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lpips_file(reference, tmp_path_factory):
    return whole_state_file(reference, tmp_path_factory.mktemp("lpips") / "lpips.safetensors")


@pytest.fixture(scope="module")
def translator_dir(tmp_path_factory):
    torch.manual_seed(0)
    spec = resolve("resnet_6blocks(ngf=4,norm=batch)+l1")
    folder = tmp_path_factory.mktemp("translator")
    card = Card(spec=str(spec), in_channels=3, out_channels=3, size_multiple=4)
    save_translator(folder, spec.build(3, 3).generator, card)
    return folder


EVAL = ["--data", "synthfacades", "--data-opt", "size=32", "--data-opt", "count=2", "--mode", "eval", "--json"]


def test_zoo_eval_with_lpips_weights(translator_dir, lpips_file, empty_torch_home):
    result = run_zoo("eval", str(translator_dir), *EVAL, "--lpips-weights", str(lpips_file),
                     TORCH_HOME=str(empty_torch_home))
    assert result.returncode == 0 and result.stderr == "", result.stderr
    printed = json.loads(result.stdout)
    assert 0 < printed["translator"]["lpips"] < 10
    values = [image["translator"]["lpips"] for image in printed["images"]]
    assert printed["translator"]["lpips"] == pytest.approx(sum(values) / len(values), abs=1e-4)


def test_zoo_eval_without_weights_says_so_once(translator_dir, empty_torch_home):
    result = run_zoo("eval", str(translator_dir), *EVAL, TORCH_HOME=str(empty_torch_home))
    assert result.returncode == 0
    assert result.stderr.splitlines() == [f"note: {NO_LPIPS}"]
    printed = json.loads(result.stdout)
    assert "lpips" not in printed["translator"] and "lpips" not in printed["images"][0]["translator"]


def test_the_table_shows_lpips_where_it_was_measured(translator_dir, lpips_file, capsys):
    translator = Translator.from_pretrained(translator_dir, device="cpu", mode="eval")
    evaluation = evaluate(translator, "synthfacades", data_options={"size": 32, "count": 2}, lpips_weights=lpips_file)
    assert evaluation.notes == [] and "lpips" in evaluation.means["translator"]
    print_evaluation(evaluation.summary(), "test")
    assert "LPIPS" in capsys.readouterr().out


def test_pairs_too_small_for_lpips_leave_it_out_with_a_note(translator_dir, lpips_file):
    translator = Translator.from_pretrained(translator_dir, device="cpu", mode="eval")
    evaluation = evaluate(translator, "synthfacades", data_options={"size": 32, "count": 2}, size=28,
                          lpips_weights=lpips_file)
    assert len(evaluation.notes) == 1 and "needs at least 31 x 31" in evaluation.notes[0]
    assert "lpips" not in evaluation.means["translator"] and "lpips" not in evaluation.images[0]["translator"]


def test_the_trainer_scores_the_translator_and_both_baselines(lpips_file, tmp_path):
    run_dir = tmp_path / "run"
    Trainer(tiny_config(max_steps=2, lpips_weights=str(lpips_file)), run_dir, progress=False).fit()
    evaluation = json.loads((run_dir / "eval.json").read_text())
    for candidate in ("translator", "input unchanged", "mean training target"):
        assert evaluation[candidate]["lpips"] > 0, candidate
    assert json.loads((run_dir / "config.json").read_text())["config"]["lpips_weights"] == str(lpips_file)
    # A run saved before the setting existed resumes, without LPIPS.
    saved = json.loads((run_dir / "config.json").read_text())
    del saved["config"]["lpips_weights"]
    (run_dir / "config.json").write_text(json.dumps(saved))
    Trainer(TrainConfig(device="cpu"), run_dir, resume=True, max_steps=3, progress=False).fit()
    assert "lpips" not in json.loads((run_dir / "eval.json").read_text())["translator"]


@pytest.mark.parametrize("case", ["garbage", "small-crop"])
def test_the_trainer_refuses_lpips_at_set_up_before_writing(case, lpips_file, tmp_path):
    run_dir = tmp_path / "run"
    if case == "garbage":
        (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
        config, match = tiny_config(lpips_weights=str(tmp_path / "garbage.pth")), "not a weights-only"
    else:
        config, match = tiny_config(lpips_weights=str(lpips_file), crop_size=28), "at least 31 x 31.*--crop-size 28"
    with pytest.raises(ZooError, match=match):
        Trainer(config, run_dir, progress=False)
    assert not run_dir.exists()


def test_a_config_from_before_the_setting_reads_with_its_default():
    saved = TrainConfig().to_dict()
    del saved["lpips_weights"]
    assert TrainConfig.from_dict(saved).lpips_weights is None


def test_a_sweeps_run_saved_before_the_setting_is_still_the_same_run(tmp_path):
    from pix2pix_zoo.experiments.sweep import SweepRun, run_status

    config = tiny_config()
    saved = config.to_dict()
    del saved["lpips_weights"]
    (tmp_path / "config.json").write_text(json.dumps({"config": saved, "canonical_spec": config.spec}))
    assert run_status(SweepRun("old", config), tmp_path) == "interrupted"
    with pytest.raises(ZooError, match="differs in lpips_weights"):
        run_status(SweepRun("old", tiny_config(lpips_weights="heads.pth")), tmp_path)
