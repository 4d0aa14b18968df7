"""``zoo eval`` and pix2pix_zoo.evaluation: per-pair figures and means, repeatability, FID and KID."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from helpers import run_zoo
from safetensors.torch import save_file

from pix2pix_zoo.errors import ZooError
from pix2pix_zoo.evaluation import evaluate
from pix2pix_zoo.metrics import frechet_distance, kernel_inception_distance, load_inception
from pix2pix_zoo.spec import resolve
from pix2pix_zoo.translator import Card, Translator, save_translator

TINY_SPEC = "resnet_6blocks(ngf=4,norm=batch)+l1"
DATA_OPTIONS = {"size": 32, "count": 4}


@pytest.fixture(scope="module")
def translator_dir(tmp_path_factory):
    torch.manual_seed(0)
    spec = resolve(TINY_SPEC)
    generator = spec.build(3, 3).generator
    folder = tmp_path_factory.mktemp("translator")
    save_translator(folder, generator, Card(spec=str(spec), in_channels=3, out_channels=3, size_multiple=4))
    return folder


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory):
    """torchvision's Inception-v3 at random, its batch norms calibrated on one random batch so the
    features are of order one; saved as safetensors (real shapes, no download)."""
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    network = inception_v3(weights=None, aux_logits=False, init_weights=False)
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 1.0  # running statistics := this batch's
    with torch.no_grad():
        network(torch.rand(2, 3, 299, 299) * 2 - 1)
    path = tmp_path_factory.mktemp("inception") / "inception.safetensors"
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(path))
    return path


def test_per_pair_records_and_means(translator_dir):
    translator = Translator.from_pretrained(translator_dir, device="cpu", mode="eval")
    result = evaluate(translator, "synthfacades", data_options=DATA_OPTIONS, batch_size=2).to_dict()
    assert result["pairs"] == 4 and result["split"] == "test" and result["mode"] == "eval"
    assert [record["name"] for record in result["images"]] == [f"test/{i:05d}" for i in range(4)]
    for metric in ("l1", "psnr", "ssim"):
        values = [record["translator"][metric] for record in result["images"]]
        assert result["translator"][metric] == pytest.approx(sum(values) / 4, abs=1e-4)
    assert "fid" not in result["translator"]


def test_a_half_precision_is_recorded_with_figures_close_to_fp32(translator_dir):
    full = evaluate(Translator.from_pretrained(translator_dir, device="cpu", mode="eval"), "synthfacades",
                    data_options=DATA_OPTIONS).to_dict()
    half = evaluate(Translator.from_pretrained(translator_dir, device="cpu", mode="eval", precision="bf16"),
                    "synthfacades", data_options=DATA_OPTIONS).to_dict()
    assert (full["precision"], half["precision"]) == ("fp32", "bf16")
    assert half["translator"]["l1"] == pytest.approx(full["translator"]["l1"], rel=0.02)


def test_eval_mode_repeats_exactly(translator_dir):
    translator = Translator.from_pretrained(translator_dir, device="cpu", mode="eval")
    first, second = (evaluate(translator, "synthfacades", data_options=DATA_OPTIONS).to_dict() for _ in range(2))
    assert first == second


def test_the_translator_must_fit_the_data(translator_dir):
    translator = Translator.from_pretrained(translator_dir, device="cpu")
    translator.card.in_channels = 1
    with pytest.raises(ZooError, match="maps 1 to 3 channels"):
        evaluate(translator, "synthfacades", data_options=DATA_OPTIONS)


def test_zoo_eval_json_and_output_file(translator_dir, tmp_path):
    written = tmp_path / "eval.json"
    result = run_zoo("eval", str(translator_dir), "--data", "synthfacades", "--data-opt", "size=32",
                     "--data-opt", "count=3", "--mode", "eval", "--json", "--output", str(written))
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed == json.loads(written.read_text())
    assert printed["pairs"] == 3 and printed["model"] == str(translator_dir) and len(printed["images"]) == 3


def test_zoo_eval_table_and_one_line_errors(translator_dir):
    result = run_zoo("eval", str(translator_dir), "--data", "synthfacades", "--data-opt", "size=32",
                     "--data-opt", "count=2")
    assert result.returncode == 0 and "2 pairs" in result.stdout and "PSNR" in result.stdout
    result = run_zoo("eval", str(translator_dir), "--data", "synthfacades", "--data-opt", "size")
    assert result.returncode == 1 and result.stderr.strip() == "error: --data-opt 'size' is not KEY=VALUE"


def test_fid_and_kid_on_inception_features(translator_dir, inception_weights):
    translator = Translator.from_pretrained(translator_dir, device="cpu", mode="eval")
    options = {**DATA_OPTIONS, "count": 2}  # Inception at 299 x 299 is slow on a CPU
    figures = evaluate(translator, "synthfacades", data_options=options, inception_weights=inception_weights).means
    assert figures["translator"]["fid"] > 0 and {"kid", "kid_std"} <= set(figures["translator"])


def test_fid_and_kid_of_a_set_with_itself_and_another():
    torch.manual_seed(0)
    features, other = torch.randn(64, 8).double(), (torch.randn(64, 8) * 1.5 + 1).double()
    different = frechet_distance(features, other)
    assert different > 1 and abs(frechet_distance(features, features)) < 1e-9
    kid, kid_std = kernel_inception_distance(features, other)
    assert kid > 0.1 and kid_std == 0  # one subset: the whole sets
    assert abs(kernel_inception_distance(features, features)[0]) < 0.05 * kid


def test_kid_averages_random_subsets_of_large_sets():
    torch.manual_seed(0)
    real, fake = torch.randn(1100, 4).double(), (torch.randn(1100, 4) + 0.5).double()
    kid, kid_std = kernel_inception_distance(real, fake)
    assert kid > 0 and 0 < kid_std < kid
    assert kernel_inception_distance(real, fake) == (kid, kid_std)  # seeded subsets


def test_frechet_distance_agrees_for_few_and_many_images():
    """The small-sample route (centred features) and the covariance route give the formula's value."""
    torch.manual_seed(0)
    for count in (3, 40):
        real, fake = torch.randn(count, 5).double(), (torch.randn(count, 5) * 2 + 1).double()
        cov_real, cov_fake = real.T.cov(), fake.T.cov()
        cross = torch.linalg.eigvals(cov_real @ cov_fake).real.clamp_min(0).sqrt().sum()
        expected = (real.mean(0) - fake.mean(0)).square().sum() + cov_real.trace() + cov_fake.trace() - 2 * cross
        assert frechet_distance(real, fake) == pytest.approx(expected.item(), rel=1e-6)


def test_only_flat_tensor_dicts_are_loaded(tmp_path):
    nested = tmp_path / "nested.pth"
    torch.save({"model": {"weight": torch.zeros(1)}}, nested)
    with pytest.raises(ZooError, match="not a tensor"):
        load_inception(nested, torch.device("cpu"))
    arbitrary = tmp_path / "object.pth"
    arbitrary.write_bytes(pickle.dumps(ZooError("not weights"), protocol=2))
    with pytest.raises(ZooError, match="not a weights-only PyTorch checkpoint"):
        load_inception(arbitrary, torch.device("cpu"))
    wrong = tmp_path / "wrong.safetensors"
    save_file({"weight": torch.zeros(1)}, str(wrong))
    with pytest.raises(ZooError, match="do not fit torchvision's Inception-v3"):
        load_inception(wrong, torch.device("cpu"))
