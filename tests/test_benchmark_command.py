"""`zoo benchmark` (pix2pix_zoo/benchmarking.py): every format timed on the same batch, agreeing with torch."""

from __future__ import annotations

import json

import pytest
from helpers import assert_one_line, run_main, run_zoo
from test_export import card_of, trained_looking

from pix2pix_zoo import devices
from pix2pix_zoo.benchmarking import FORMATS, benchmark_translator
from pix2pix_zoo.translator import save_translator


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    generator = trained_looking("unet_128(ngf=4)")
    return save_translator(tmp_path_factory.mktemp("bench") / "translator", generator, card_of("unet_128(ngf=4)", generator))


def test_every_format_at_every_batch_size_agrees_with_torch(weights):
    rows = benchmark_translator(weights, formats=FORMATS, size=100, batches=(1, 3), repeats=2, warmup=1)
    assert [(row.format, row.batch) for row in rows] == [(name, batch) for batch in (1, 3) for name in FORMATS]
    for row in rows:
        assert row.ms_per_image > 0 and row.images_per_s == pytest.approx(1000 / row.ms_per_image, rel=0.02)
        assert row.peak_mib >= 0
        limit = 0.05 if row.format == "torch-bf16" else 1e-4  # bf16 products round to 8 bits of mantissa
        assert row.max_difference <= limit, row
    by_format = {row.format: row for row in rows if row.batch == 1}
    # The torch row runs as zoo translate does (native kernels for small maps on a CPU): the same
    # sums as the default kernels, to float rounding.
    assert by_format["torch"].max_difference <= 1e-5
    assert by_format["torch-bf16"].max_difference > 0  # it did run in bf16
    weights_mib = weights.stat().st_size / 2**20
    assert by_format["torch"].file_mib == pytest.approx(weights_mib, abs=0.01)
    assert by_format["onnxruntime"].file_mib == pytest.approx(weights_mib, rel=0.1)  # the same fp32 weights


def test_zoo_benchmark_json_and_table(weights):
    result = run_zoo("benchmark", str(weights.parent), "--size", "64", "--batch", "2", "--formats", "torch",
                     "--formats", "onnxruntime", "--repeats", "1", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(row["format"], row["batch"]) for row in rows] == [("torch", 2), ("onnxruntime", 2)]
    assert set(rows[0]) == {"format", "batch", "file_mib", "ms_per_image", "images_per_s", "peak_mib", "max_difference"}
    table = run_zoo("benchmark", str(weights), "--size", "64", "--batch", "1", "--formats", "torchscript", "--repeats", "1")
    assert table.returncode == 0 and "torchscript" in table.stdout and "img/s" in table.stdout


@pytest.mark.parametrize("native", [False, True])
def test_bf16_is_timed_by_default_only_where_it_is_native(weights, capsys, monkeypatch, native):
    """On a CPU without bf16 products (AVX2), bf16 is emulated 100-200x slower: left out unless named."""
    monkeypatch.setattr(devices, "_cpu_multiplies_natively", lambda precision: native)
    code, out, err = run_main(capsys, "benchmark", str(weights), "--size", "32", "--batch", "1", "--repeats", "1",
                              "--json")
    assert code == 0, err
    assert [row["format"] for row in json.loads(out)] == [name for name in FORMATS if native or name != "torch-bf16"]
    left_out = "note: torch-bf16 left out: this CPU has no native bf16 products"
    assert (left_out in err) is not native and err.endswith("(--formats torch-bf16 times it anyway)\n") is not native
    code, out, err = run_main(capsys, "benchmark", str(weights), "--size", "32", "--batch", "1", "--repeats", "1",
                              "--formats", "torch-bf16", "--json")
    assert code == 0 and [row["format"] for row in json.loads(out)] == ["torch-bf16"]
    assert ("note: this CPU has no native bf16 products" in err) is not native, err


def test_zoo_benchmark_refuses_in_one_line(weights, tmp_path, capsys):
    for args, message in [
        (("--formats", "tensorrt"), "unknown format 'tensorrt'; choose from: torch, "),
        (("--device", "cuda:7"), "cuda:7"),
    ]:
        code, _, err = run_main(capsys, "benchmark", str(weights), "--size", "64", "--repeats", "1", *args)
        assert_one_line(code, err, message)
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"x")
    code, _, err = run_main(capsys, "benchmark", str(onnx_file))
    assert_one_line(code, err, "is not a translator weights file")
