"""Choosing the device: ``auto`` prefers CUDA (this rank's GPU), then MPS, then the CPU; a device the
machine lacks is one clear line, not torch's traceback at first use. Availability is simulated, so
the CUDA and MPS branches are exercised on a CPU-only machine."""

from __future__ import annotations

import pytest
import torch
from helpers import run_main
from PIL import Image

from pix2pix_zoo import devices
from pix2pix_zoo.devices import emulated_precision_note, pick_device
from pix2pix_zoo.errors import ZooError
from pix2pix_zoo.spec import resolve
from pix2pix_zoo.translator import Card, save_translator


@pytest.fixture
def machine(monkeypatch):
    """Pretend the machine has ``cuda`` CUDA devices and MPS or not."""

    def have(cuda: int = 0, mps: bool = False) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)

    return have


@pytest.mark.parametrize(("cuda", "mps", "local_rank", "expected"), [
    (2, True, 1, "cuda:1"),   # CUDA first, this rank's GPU
    (1, True, 0, "cuda:0"),
    (0, True, 0, "mps"),      # then MPS
    (0, False, 0, "cpu"),     # then the CPU
])
def test_auto_prefers_cuda_then_mps_then_cpu(machine, cuda, mps, local_rank, expected):
    machine(cuda=cuda, mps=mps)
    assert pick_device("auto", local_rank) == torch.device(expected)


def test_explicit_devices_are_checked(machine):
    machine(cuda=2)
    assert pick_device("cuda", local_rank=1) == torch.device("cuda", 1)
    assert pick_device("cuda:0") == torch.device("cuda", 0)
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(ZooError, match=r"'cuda:2' is not available: this machine has 2 CUDA devices"):
        pick_device("cuda:2")
    with pytest.raises(ZooError, match="'mps' is not available"):
        pick_device("mps")
    machine(cuda=0, mps=True)
    assert pick_device("mps") == torch.device("mps")
    with pytest.raises(ZooError, match="'cuda:0' is not available: this machine has no CUDA device"):
        pick_device("cuda")
    with pytest.raises(ZooError, match="unknown device 'tpu'; use auto, cpu, cuda, cuda:N or mps"):
        pick_device("tpu")
    with pytest.raises(ZooError, match="'meta' is not supported"):
        pick_device("meta")


@pytest.fixture(scope="module")
def translator(tmp_path_factory) -> str:
    spec = "resnet_6blocks(ngf=4)+l1"
    folder = tmp_path_factory.mktemp("translator")
    save_translator(folder, resolve(spec).build(3, 3).generator, Card(spec=spec, in_channels=3, out_channels=3, size_multiple=4))
    Image.new("RGB", (20, 12)).save(folder / "in.png")
    return str(folder)


@pytest.mark.parametrize("command", [
    ["translate", "{t}", "{t}/in.png", "-o", "out"],
    ["train", "unet(ngf=4)+l1", "--data", "synthfacades", "--max-steps", "1"],
    ["eval", "{t}", "--data", "synthfacades"],
])
def test_a_missing_device_is_one_line_before_anything_runs(machine, capsys, tmp_path, monkeypatch, translator, command):
    machine(cuda=0, mps=False)
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(capsys, *(part.format(t=translator) for part in command), "--device", "cuda")
    assert code == 1 and err.count("\n") == 1 and "'cuda:0' is not available" in err, err
    assert not any(tmp_path.iterdir())  # nothing written


def test_a_16_bit_precision_without_native_products_is_named(monkeypatch):
    cpu = torch.device("cpu")
    # As this machine's oneDNN reports it, whichever way that goes.
    assert (emulated_precision_note(cpu, "bf16") is None) == torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert emulated_precision_note(cpu, "fp32") is None
    monkeypatch.setattr(devices, "_cpu_multiplies_natively", lambda precision: False)
    capability = torch.backends.cpu.get_cpu_capability()
    assert emulated_precision_note(cpu, "bf16") == (
        f"this CPU has no native bf16 products (they need AVX512-BF16 or AMX; it has {capability}): bf16 runs "
        "emulated here, far slower than fp32")
    assert "(they need AVX512-FP16 or AMX-FP16;" in emulated_precision_note(cpu, "fp16")
    monkeypatch.setattr(devices, "_cpu_multiplies_natively", lambda precision: True)
    assert emulated_precision_note(cpu, "bf16") is emulated_precision_note(cpu, "fp16") is None
    gpu = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert emulated_precision_note(gpu, "bf16") == (
        "Tesla V100 has no native bf16 products: bf16 runs emulated, slower than fp32")
    assert emulated_precision_note(gpu, "fp16") is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert emulated_precision_note(gpu, "bf16") is None


@pytest.mark.parametrize("native", [False, True])
@pytest.mark.parametrize("command", [
    ["translate", "{t}", "{t}/in.png", "-o", "out", "--mode", "eval", "--no-progress"],
    ["eval", "{t}", "--data", "synthfacades", "--data-opt", "count=2", "--data-opt", "size=32", "--size", "32"],
    ["train", "resnet_6blocks(ngf=4)+l1", "--data", "synthfacades", "--data-opt", "count=2", "--data-opt", "size=32",
     "--crop-size", "32", "--load-size", "32", "--max-steps", "1", "--no-progress"],
])
def test_commands_say_when_their_precision_is_emulated(capsys, tmp_path, monkeypatch, translator, command, native):
    monkeypatch.setattr(devices, "_cpu_multiplies_natively", lambda precision: native)
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(capsys, *(part.format(t=translator) for part in command), "--device", "cpu",
                            "--precision", "bf16")
    assert code == 0, err
    assert ("note: this CPU has no native bf16 products" in err) is not native, err
