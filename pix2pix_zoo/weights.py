"""Reading files of named tensors without executing anything: safetensors, or a PyTorch ``.pth``
holding a flat state dict (read with ``weights_only=True``). Every failure is one clear ZooError.
:func:`misfit` says in one line how tensors' names and shapes differ from a network's."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from safetensors import safe_open

from pix2pix_zoo.errors import ZooError

if TYPE_CHECKING:  # torch is imported where tensors are read: the translator catalog lists without it
    from torch import Tensor


def read_safetensors(path: Path) -> dict[str, Tensor]:
    """A safetensors file's tensors, on the CPU."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as error:  # safetensors raises its own error types for corrupt files
        raise ZooError(f"{path} is not a readable safetensors file: {error}") from None


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """The name and shape of each tensor in a safetensors file, from its header: no tensor is read."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except Exception as error:  # safetensors raises its own error types for corrupt files
        raise ZooError(f"{path} is not a readable safetensors file: {error}") from None


def misfit(expected: Mapping[str, Sequence[int]], found: Mapping[str, Sequence[int]]) -> str:
    """``""`` when ``found`` has exactly the tensor names and shapes of ``expected``; else one line
    counting the missing, unexpected and reshaped keys, naming the first few."""
    missing = [key for key in expected if key not in found]
    unexpected = [key for key in found if key not in expected]
    reshaped = [key for key in expected if key in found and tuple(found[key]) != tuple(expected[key])]
    problems = []
    if missing:
        problems.append(f"{_some(missing)} missing")
    if unexpected:
        problems.append(f"{_some(unexpected)} unexpected")
    if reshaped:
        key, more = reshaped[0], ", ..." if len(reshaped) > 1 else ""
        problems.append(
            f"{len(reshaped)} key{'s' if len(reshaped) > 1 else ''} of another shape "
            f"({_name(key)} is {list(found[key])}, not {list(expected[key])}{more})"
        )
    return ", ".join(problems)


def _some(keys: list[str], shown: int = 3) -> str:
    """``"2 keys (a, b)"``, with at most ``shown`` keys named."""
    more = ", ..." if len(keys) > shown else ""
    return f"{len(keys)} key{'s' if len(keys) > 1 else ''} ({', '.join(map(_name, keys[:shown]))}{more})"


def _name(key: str, longest: int = 80) -> str:
    """A tensor name fit for a one-line message (a file's names are anyone's text)."""
    return key if key.isprintable() and len(key) <= longest else repr(key[:longest])


def read_state_dict_pth(path: Path, label: str | None = None) -> dict[str, Tensor]:
    """A ``.pth`` holding a flat dict of names to tensors; ``label`` names it in errors (e.g. its URL).

    Nothing but tensors is accepted: the weights-only unpickler refuses other Python objects, and a
    nested dict, a list or a number is refused here. No ``module.`` prefix is stripped.
    """
    import torch

    label = label or str(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        why = f"it holds a Python object ({found.group(1)})" if found else f"{type(error).__name__}"
        raise ZooError(f"{label} is not a weights-only PyTorch checkpoint: {why}; it was not loaded") from None
    if not isinstance(state, dict):
        raise ZooError(f"{label} holds a {type(state).__name__}, not a state dict of tensors")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ZooError(f"{label}: entry {key!r} is a {type(value).__name__}, not a tensor; only a flat state dict is accepted")
    return dict(state)  # a plain dict: drops the per-module versions of an OrderedDict's _metadata


def read_weights(path: Path) -> dict[str, Tensor]:
    """Tensors from a ``.safetensors`` file, or else from a weights-only ``.pth``."""
    return read_safetensors(path) if path.suffix == ".safetensors" else read_state_dict_pth(path)
