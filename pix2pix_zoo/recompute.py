"""Activation checkpointing for generators: segments whose activations are freed after the forward
pass and recomputed in the backward pass (``zoo train --activation-checkpointing``).

A generator that supports it has ``set_activation_checkpointing(enabled)`` (see
:class:`~pix2pix_zoo.interfaces.ActivationCheckpointing`) and, while it is enabled and
:func:`applies`, runs its segments through :func:`recompute`. That is
``torch.utils.checkpoint.checkpoint`` (non-reentrant) with two guarantees the trainer relies on:

* the recomputation draws the same random numbers as the first pass (the RNG state is restored for
  it, and put back after), so dropout masks match and gradients equal the plain ones to rounding;
* it leaves the segment's buffers as the first pass left them: batch norm's running statistics and
  step counter are updated once per forward pass, not again when the backward pass recomputes them.

Only the segments' inputs stay in memory between the forward and the backward pass. A segment must
not modify its inputs in place (an in-place activation opening it would rewrite the very tensor the
recomputation starts from), and nothing may modify them afterwards either; checkpoint's own check
fails the backward pass if something does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint


def applies(module: nn.Module) -> bool:
    """Whether a generator with checkpointing enabled should recompute now: in training mode with
    gradients on. Evaluation, ``no_grad`` and inference (a translator's paper mode included) run the
    plain forward pass."""
    return module.training and torch.is_grad_enabled()


@contextlib.contextmanager
def _buffers_kept(buffers: list[Tensor]) -> Iterator[None]:
    """Put ``buffers`` back as they were once the block ends (their values; tiny for norms)."""
    saved = [buffer.clone() for buffer in buffers]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in zip(buffers, saved):
                buffer.copy_(value)


def recompute(run: Callable[..., Tensor], *inputs: Tensor, modules: Iterable[nn.Module]) -> Tensor:
    """``run(*inputs)``, keeping only ``inputs`` for the backward pass, which runs it again.

    ``modules`` are the layers ``run`` calls (non-modules, such as functions, are skipped): their
    buffers are restored after the recomputation, so running statistics count the step once. Under
    ``torch.compile`` the compiler plans the recomputation itself and updates buffers once anyway.
    """
    buffers = [buffer for module in modules if isinstance(module, nn.Module) for buffer in module.buffers()]

    def contexts() -> tuple[contextlib.AbstractContextManager, contextlib.AbstractContextManager]:
        return contextlib.nullcontext(), _buffers_kept(buffers)

    if torch.compiler.is_compiling() or not buffers:
        return checkpoint(run, *inputs, use_reentrant=False, preserve_rng_state=True)
    return checkpoint(run, *inputs, use_reentrant=False, preserve_rng_state=True, context_fn=contexts)


def kept_for_backward(run: Callable[[], object], weights: Iterable[Tensor] = ()) -> int:
    """Bytes of the distinct storages autograd keeps from the forward pass ``run()`` for the backward
    pass, ``weights`` (e.g. the parameters, kept anyway) left out: what checkpointing cuts."""
    left_out = {weight.untyped_storage().data_ptr() for weight in weights}
    kept: dict[int, int] = {}

    def pack(tensor: Tensor) -> Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in left_out:
            kept[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        run()
    return sum(kept.values())


def run_layers(layers: Iterable[Callable[[Tensor], Tensor]], x: Tensor) -> Tensor:
    """``x`` through ``layers`` in order (a slice of an ``nn.Sequential`` without building one)."""
    for layer in layers:
        x = layer(x)
    return x
