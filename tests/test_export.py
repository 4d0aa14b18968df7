"""Exports (pix2pix_zoo/export.py, `zoo export`) and running ONNX files (pix2pix_zoo/onnx_backend.py)."""

from __future__ import annotations

import copy
import json

import numpy as np
import onnx
import pytest
import torch
from helpers import assert_one_line, run_main, run_zoo
from PIL import Image
from torch import nn

from pix2pix_zoo.errors import ZooError
from pix2pix_zoo.export import (
    TORCHSCRIPT_CARD,
    export_generator,
    exported,
    fold_batch_norms,
    load_torchscript,
    read_export_card,
)
from pix2pix_zoo.spec import resolve
from pix2pix_zoo.testing import check_exportable
from pix2pix_zoo.onnx_backend import OnnxGenerator
from pix2pix_zoo.translator import Card, Translator, pad_to_multiple, save_translator
from pix2pix_zoo.translator_file import CARD_KEY

FAMILIES = {  # every built-in generator family, tiny; a size that is a multiple, and a non-square one
    "unet_128(ngf=4)": (256, (256, 384)),
    "unet_256(ngf=4)": (256, (256, 512)),
    "encdec_256(ngf=4)": (256, (256, 512)),
    "resnet_6blocks(ngf=4)": (256, (256, 200)),
    "resnet_9blocks(ngf=4)": (256, (200, 256)),
    "timm_unet(backbone=resnet18,ngf=4)": (256, (256, 320)),
    "timm_unet(backbone=mobilenetv3_small_050,ngf=4)": (256, (192, 256)),
}


def trained_looking(spec: str, channels: tuple[int, int] = (3, 3)) -> nn.Module:
    """The generator of ``spec`` with weights and running statistics of a trained network's scale
    (the paper's N(0, 0.02) initialisation gives outputs near 0, where any export would agree)."""
    torch.manual_seed(0)
    generator = resolve(f"{spec}+l1").build(*channels).generator
    with torch.no_grad():
        for module in generator.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                fan_in = module.weight[0].numel() if isinstance(module, nn.Conv2d) else module.weight[:, 0].numel()
                module.weight.normal_(0, 1.5 / fan_in**0.5)
            elif isinstance(module, nn.BatchNorm2d) and module.running_mean is not None:
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.2)
    return generator.eval()


def card_of(spec: str, generator: nn.Module, channels: tuple[int, int] = (3, 3)) -> Card:
    return Card(spec=str(resolve(f"{spec}+l1")), in_channels=channels[0], out_channels=channels[1],
                size_multiple=generator.size_multiple)


@pytest.mark.parametrize("spec", FAMILIES)
def test_onnx_and_torchscript_compute_the_translator_in_eval_mode(spec):
    """To 1e-4 beyond torch's own fp32 rounding, measured against the same network in fp64: on an AVX2
    CPU torch's fp32 output of timm_unet(resnet18) is 2.0e-4 from the fp64 one (onnxruntime's 7.5e-5),
    so two fp32 implementations cannot agree to 1e-4 there however right the export is."""
    generator = trained_looking(spec)
    exact = copy.deepcopy(generator).double().eval()
    card = card_of(spec, generator)
    translator = Translator(generator, card, device="cpu", mode="eval", tile=None)
    onnx_file, onnx_card = exported(generator, card, "onnx")
    torchscript, _ = exported(generator, card, "torchscript")
    runs = {"onnxruntime": OnnxGenerator(onnx_file, onnx_card), "torchscript": load_torchscript(torchscript)}
    square, (height, width) = FAMILIES[spec]
    for shape in ((1, 3, square, square), (2, 3, height, width)):
        images = torch.rand(*shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
        expected = translator.translate(images)  # padded to the size multiple and cropped back
        assert expected.shape == images.shape and expected.abs().max() > 0.2, spec  # a real range, where errors show
        padded, _ = pad_to_multiple(images, card.size_multiple)  # the caller's part, as the module docstring says
        with torch.no_grad():
            rounding = (exact(padded.double())[..., : shape[2], : shape[3]] - expected).abs().max().item()
        for name, run in runs.items():
            with torch.no_grad():
                got = run(padded)[..., : shape[2], : shape[3]]
            assert (got - expected).abs().max() < 1e-4 + rounding, (name, shape, rounding)


def test_eval_mode_folds_every_batch_norm_of_the_papers_networks():
    for spec in ("unet_256(ngf=4)", "encdec_256(ngf=4)", "resnet_6blocks(ngf=4,norm=batch)"):
        generator = trained_looking(spec)
        folded = fold_batch_norms(generator)
        assert sum(isinstance(m, nn.BatchNorm2d) for m in generator.modules()) > 0
        assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules()), spec
        images = torch.rand(2, 3, 256, 256) * 2 - 1
        with torch.no_grad():
            assert (folded(images) - generator(images)).abs().max() < 1e-4
        assert generator.training is False and any(isinstance(m, nn.BatchNorm2d) for m in generator.modules())
        data, _ = exported(generator, card_of(spec, generator), "onnx")
        kinds = {node.op_type for node in onnx.load_from_string(data).graph.node}
        assert "BatchNormalization" not in kinds and kinds & {"Conv", "ConvTranspose"}


def test_the_card_travels_in_both_files_with_the_mode_exported(tmp_path):
    generator = trained_looking("unet_128(ngf=4)")
    card = Card(spec="unet_128(ngf=4)+l1", in_channels=3, out_channels=3, size_multiple=128, dataset="facades",
                metrics={"l1": 0.2}, inference_mode="paper")
    onnx_path = export_generator(generator, card, tmp_path / "model.onnx", "onnx")
    read = read_export_card(onnx_path)
    assert read.inference_mode == "eval" and read.dataset == "facades" and read.metrics == {"l1": 0.2}
    assert read.provenance["export"]["format"] == "onnx" and read.provenance["export"]["dtype"] == "float32"
    script = export_generator(generator, card, tmp_path / "model.pt", "torchscript", mode="paper")
    extra = {TORCHSCRIPT_CARD: ""}
    load_torchscript(script.read_bytes(), extra_files=extra)
    assert json.loads(extra[TORCHSCRIPT_CARD])["inference_mode"] == "paper"


def test_paper_mode_is_exported_faithfully_to_torchscript():
    generator = trained_looking("unet_128(ngf=4)")
    generator.train()
    card = card_of("unet_128(ngf=4)", generator)
    data, _ = exported(generator, card, "torchscript", mode="paper")
    script = load_torchscript(data)
    translator = Translator(generator, card, device="cpu", mode="paper", seed=3, tile=None)
    images = torch.rand(2, 3, 128, 256) * 2 - 1
    running = [m.running_mean.clone() for m in generator.modules() if isinstance(m, nn.BatchNorm2d)]
    torch.manual_seed(3)
    with torch.no_grad():
        traced = script(images)
    assert (traced - translator.translate(images)).abs().max() < 1e-5  # same statistics, same dropout masks
    with torch.no_grad():
        again = script(images)
    assert (again - traced).abs().max() > 1e-3  # dropout stays random, as in paper mode
    torch.manual_seed(3)
    with torch.no_grad():
        alone = script(images[:1])
    assert (alone - traced[:1]).abs().max() > 1e-3  # each batch is normalised by its own statistics
    assert all(torch.equal(a, m.running_mean) for a, m in
               zip(running, (m for m in generator.modules() if isinstance(m, nn.BatchNorm2d))))


def running_statistics(generator: nn.Module) -> list[torch.Tensor]:
    return [buffer.clone() for module in generator.modules() if isinstance(module, nn.BatchNorm2d)
            for buffer in (module.running_mean, module.running_var)]


def without_dropout(generator: nn.Module) -> nn.Module:
    silent = copy.deepcopy(generator)
    for module in silent.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    return silent


def test_paper_mode_goes_to_onnx_as_plain_operators_any_runtime_computes():
    generator = trained_looking("unet_128(ngf=4)")  # its innermost decoder levels have dropout
    card = card_of("unet_128(ngf=4)", generator)
    running = running_statistics(generator)
    data, paper_card = exported(generator, card, "onnx", mode="paper")
    kinds = {node.op_type for node in onnx.load_from_string(data).graph.node}
    # No node whose training flag a runtime may ignore: onnxruntime's optimiser removes Dropout nodes.
    assert not kinds & {"BatchNormalization", "Dropout"} and {"ReduceMean", "RandomUniformLike"} <= kinds
    assert paper_card.inference_mode == "paper" and paper_card.provenance["export"]["mode"] == "paper"
    assert all(torch.equal(a, b) for a, b in zip(running, running_statistics(generator)))
    images = torch.rand(2, 3, 128, 256) * 2 - 1

    # Batch statistics: without dropout the file computes torch's paper mode, batch by batch.
    silent = without_dropout(generator)
    silent_file = OnnxGenerator(exported(silent, card, "onnx", mode="paper")[0], paper_card)
    torch_paper = Translator(silent, card, device="cpu", mode="paper", tile=None)
    assert (silent_file(images) - torch_paper.translate(images)).abs().max() < 1e-4
    assert (silent_file(images[:1]) - torch_paper.translate(images[:1])).abs().max() < 1e-4
    eval_mode = Translator(silent, card, device="cpu", mode="eval", tile=None).translate(images)
    assert (silent_file(images) - eval_mode).abs().max() > 1e-2  # not the running statistics

    # Dropout: random call by call; a session repeats its calls for the same seed, not for another.
    seeded = OnnxGenerator(data, paper_card, seed=7)
    first, second = seeded(images), seeded(images)
    assert (first - second).abs().max() > 1e-3 and (first - silent_file(images)).abs().max() > 1e-3
    again = OnnxGenerator(data, paper_card, seed=7)
    assert torch.equal(again(images), first) and torch.equal(again(images), second)
    assert (OnnxGenerator(data, paper_card, seed=8)(images) - first).abs().max() > 1e-3
    assert (OnnxGenerator(data, paper_card)(images) - first).abs().max() > 1e-3  # unseeded after seeded: random


def test_the_onnx_dropout_keeps_each_element_with_probability_one_minus_p():
    layer = nn.Sequential(nn.Dropout(0.25))
    layer.size_multiple = 1
    card = Card(spec="dropout", in_channels=3, out_channels=3, size_multiple=1)
    model = OnnxGenerator(exported(layer, card, "onnx", mode="paper")[0], card, seed=0)
    output = model(torch.full((4, 3, 256, 256), 3.0))
    assert set(output.unique().tolist()) == {0.0, 4.0}  # dropped, or kept and scaled by 1 / (1 - p)
    kept = (output > 0).float().mean().item()
    assert abs(kept - 0.75) < 0.005  # 786k draws: the standard error is 0.0005


class TrainingFlagInForward(nn.Module):
    """Dropout called as a function on ``self.training``: no layer for the export to replace."""

    size_multiple = 1

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return nn.functional.dropout(self.conv(images), 0.5, self.training)


def test_paper_mode_that_onnx_cannot_carry_is_refused_in_one_line_never_exported_as_eval():
    card = Card(spec="custom", in_channels=3, out_channels=3, size_multiple=1)
    with pytest.raises(ZooError, match=r"^--mode paper cannot be exported to ONNX: the generator's forward computes "
                                       r"something else in training mode .*; use --format torchscript$"):
        exported(TrainingFlagInForward(), card, "onnx", mode="paper")
    spatial = nn.Sequential(nn.Conv2d(3, 3, 1), nn.Dropout2d(0.5), nn.BatchNorm1d(3))
    spatial.size_multiple = 1
    with pytest.raises(ZooError, match=r"the generator has BatchNorm1d, Dropout2d layers, which the zoo writes as "
                                       r"plain operators only for BatchNorm2d and Dropout; use --format torchscript$"):
        exported(spatial, card, "onnx", mode="paper")
    assert exported(TrainingFlagInForward(), card, "torchscript", mode="paper")[1].inference_mode == "paper"


def test_half_exports_hold_fp16_weights():
    generator = trained_looking("resnet_6blocks(ngf=4)")
    card = card_of("resnet_6blocks(ngf=4)", generator)
    full, _ = exported(generator, card, "onnx")
    half, half_card = exported(generator, card, "onnx", half=True)
    graph = onnx.load_from_string(half).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert {t.data_type for t in graph.initializer} == {onnx.TensorProto.FLOAT16}

    def weight_bytes(data):
        return sum(len(t.raw_data) for t in onnx.load_from_string(data).graph.initializer)

    assert weight_bytes(half) * 2 == weight_bytes(full) and half_card.provenance["export"]["dtype"] == "float16"


def test_a_generator_that_cannot_be_exported_names_the_operator():
    class RunningMaximum(nn.Module):  # cumulative maximum along the rows: ONNX has no such operator
        size_multiple = 4

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            return torch.tanh(torch.cummax(self.conv(x), dim=3).values)

    with pytest.raises(AssertionError, match="aten::cummax") as raised:
        check_exportable(RunningMaximum(), 3, formats=("onnx",), name="odd")
    assert str(raised.value).startswith("generator 'odd': cannot export to ONNX") and "\n" not in str(raised.value)


def test_check_exportable_passes_the_built_ins_and_fails_an_export_that_differs(monkeypatch):
    check_exportable(trained_looking("unet_128(ngf=4)"), 3, name="unet_128")

    class NotTraceable(nn.Module):  # Python control flow on values: the trace keeps one branch
        size_multiple = 4

        def forward(self, x):
            return torch.tanh(x) if x.mean() > 0 else -torch.tanh(x)

    with pytest.raises(AssertionError, match="export differs from eval mode"):
        check_exportable(NotTraceable(), 3, formats=("torchscript",), name="branchy")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run") / "translator"
    generator = trained_looking("unet_128(ngf=4)")
    return save_translator(folder, generator, card_of("unet_128(ngf=4)", generator))


def picture(width, height, seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def test_zoo_export_then_translate_and_eval_run_the_onnx_file(tmp_path, weights):
    result = run_zoo("export", str(weights.parent), "--format", "onnx")
    assert result.returncode == 0, result.stderr
    onnx_path = weights.with_name("model.onnx")
    assert result.stdout.strip() == str(onnx_path) and onnx_path.is_file()
    (tmp_path / "in").mkdir()
    picture(200, 150).save(tmp_path / "in" / "a.png")
    for model, out in ((onnx_path, "from-onnx"), (weights, "from-torch")):
        done = run_zoo("translate", str(model), str(tmp_path / "in"), "-o", str(tmp_path / out), "--mode", "eval",
                       "--no-progress")
        assert done.returncode == 0, done.stderr
    onnx_out = np.asarray(Image.open(tmp_path / "from-onnx" / "a.png"), dtype=np.int16)
    torch_out = np.asarray(Image.open(tmp_path / "from-torch" / "a.png"), dtype=np.int16)
    assert onnx_out.shape == (150, 200, 3) and np.abs(onnx_out - torch_out).max() <= 1
    backend = run_zoo("translate", str(weights), str(tmp_path / "in"), "-o", str(tmp_path / "ort"), "--mode", "eval",
                      "--backend", "onnxruntime", "--no-progress")
    assert backend.returncode == 0, backend.stderr
    assert np.abs(np.asarray(Image.open(tmp_path / "ort" / "a.png"), dtype=np.int16) - torch_out).max() <= 1
    scored = run_zoo("eval", str(onnx_path), "--data", "synthfacades", "--data-opt", "size=128", "--data-opt",
                     "count=24", "--json")
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["translator"]["l1"] > 0


def test_zoo_export_refuses_in_one_line(tmp_path, weights, capsys):
    target = tmp_path / "exists.onnx"
    target.write_bytes(b"mine")
    cases = [
        (("export", str(weights), "--format", "onnx", "-o", str(target)), "exists: pass --overwrite"),
        (("export", str(weights), "--format", "coreml"), "is not one of: onnx, torchscript"),
        (("export", str(weights), "--format", "onnx", "-o", str(tmp_path)), "is a folder"),
    ]
    for args, message in cases:
        code, _, err = run_main(capsys, *args)
        assert_one_line(code, err, message)
    assert target.read_bytes() == b"mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.onnx"]  # nothing half written


def test_from_pretrained_takes_onnx_files_and_keeps_to_their_mode(tmp_path, weights):
    generator = trained_looking("unet_128(ngf=4)")
    onnx_path = export_generator(generator, card_of("unet_128(ngf=4)", generator), tmp_path / "m.onnx", "onnx")
    translator = Translator.from_pretrained(onnx_path, device="cpu")
    assert translator.mode == "eval" and translator(picture(130, 90)).size == (130, 90)
    with pytest.raises(ZooError, match="runs eval mode only, not paper"):
        Translator.from_pretrained(onnx_path, device="cpu", mode="paper")
    with pytest.raises(ZooError, match="ONNX export: it runs with the onnxruntime backend"):
        Translator.from_pretrained(onnx_path, device="cpu", backend="torch")
    in_memory = Translator.from_pretrained(weights, device="cpu", backend="onnxruntime", seed=2)  # card: paper
    assert isinstance(in_memory.generator, OnnxGenerator) and in_memory.modes == ("paper",)
    assert in_memory(picture(130, 90)).size == (130, 90)
    with pytest.raises(ZooError, match="runs paper mode only, not eval"):
        Translator(in_memory.generator, in_memory.card, device="cpu", mode="eval")
    with pytest.raises(ZooError, match="^this onnxruntime session draws paper mode's dropout from seed 2, set when "
                                       "it was loaded: load it again to change the seed$"):
        Translator(in_memory.generator, in_memory.card, device="cpu", seed=3)
    with pytest.raises(ZooError, match="unknown backend 'tensorrt'; choose one of: auto, torch, onnxruntime"):
        Translator.from_pretrained(weights, backend="tensorrt")


def test_an_onnx_file_is_checked_before_it_runs(tmp_path):
    generator = trained_looking("resnet_6blocks(ngf=4)")
    data, card = exported(generator, card_of("resnet_6blocks(ngf=4)", generator), "onnx")
    model = onnx.load_from_string(data)

    def saved(name, change):
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        change(copy)
        path = tmp_path / name
        path.write_bytes(copy.SerializeToString())
        return path

    no_card = saved("no-card.onnx", lambda m: m.ClearField("metadata_props"))
    bad_card = saved("bad-card.onnx", lambda m: setattr(m.metadata_props[0], "value",
                                                        json.dumps({**json.loads(m.metadata_props[0].value), "in_channels": 10**9})))

    def external(m):
        tensor = m.graph.initializer[0]
        tensor.data_location = onnx.TensorProto.EXTERNAL
        entry = tensor.external_data.add()
        entry.key, entry.value = "location", "../../../etc/passwd"
        tensor.ClearField("raw_data")

    outside = saved("external.onnx", external)
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf at all \xff\xfe")
    for path, message in ((no_card, "holds no pix2pix-zoo card"), (bad_card, "in_channels"),
                          (outside, "keeps weights in external files"), (tmp_path / "junk.onnx", "is not an ONNX model")):
        with pytest.raises(ZooError, match=message):
            Translator.from_pretrained(path, device="cpu")
    assert model.metadata_props[0].key == CARD_KEY
