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
