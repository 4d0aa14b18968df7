"""Where tensors run: a device named by the user (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``),
checked to exist before anything runs. Used by the trainer and by :class:`~pix2pix_zoo.translator.Translator`."""

from __future__ import annotations

import torch

from pix2pix_zoo.errors import ZooError


def pick_device(preference: str, local_rank: int = 0) -> torch.device:
    """``auto``: CUDA (this rank's GPU), then MPS, then CPU; anything else is taken as given, once
    checked to exist here (a ZooError in one line otherwise, not torch's traceback at first use)."""
    if preference != "auto":
        try:
            device = torch.device(preference)
        except RuntimeError:
            raise ZooError(f"unknown device {preference!r}; use auto, cpu, cuda, cuda:N or mps") from None
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", local_rank)
        _check_available(device)
        return device
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _check_available(device: torch.device) -> None:
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if device.index >= count:
            have = f"{count} CUDA device{'s' if count != 1 else ''}" if count else "no CUDA device"
            raise ZooError(f"device {str(device)!r} is not available: this machine has {have} (try --device auto)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ZooError("device 'mps' is not available: it needs Apple silicon and a PyTorch built for it (try --device auto)")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ZooError(f"device {str(device)!r} is not supported; use auto, cpu, cuda, cuda:N or mps")


def emulated_precision_note(device: torch.device, precision: str) -> str | None:
    """One line saying that ``precision`` (``bf16``/``fp16`` autocast) has no native kernels on
    ``device``, so that it runs far slower than fp32 there; None where it runs natively, and for fp32.

    A CPU multiplies in 16 bits only with AVX512-BF16/AMX (bf16) or AVX512-FP16/AMX-FP16 (fp16), as
    oneDNN reports; elsewhere (an AVX2 CPU, say) torch emulates the products: on a 2-core AVX2 EPYC
    one 64->128 convolution on a 128x128 map took 15 ms in fp32 and 3.3 s in bf16 or fp16. A CUDA
    GPU before Ampere has no bf16 products either."""
    if precision not in ("bf16", "fp16"):
        return None
    if device.type == "cpu":
        if _cpu_multiplies_natively(precision):
            return None
        needs = "AVX512-BF16 or AMX" if precision == "bf16" else "AVX512-FP16 or AMX-FP16"
        return (f"this CPU has no native {precision} products (they need {needs}; it has "
                f"{torch.backends.cpu.get_cpu_capability()}): {precision} runs emulated here, far slower than fp32")
    if device.type == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
        return f"{torch.cuda.get_device_name(device)} has no native bf16 products: bf16 runs emulated, slower than fp32"
    return None


def _cpu_multiplies_natively(precision: str) -> bool:
    """Whether oneDNN has native ``precision`` ("bf16" or "fp16") kernels on this CPU."""
    if precision == "bf16":
        return torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return torch.ops.mkldnn._is_mkldnn_fp16_supported()
