"""How fast a translator runs in each form it can take (``zoo benchmark``).

For one translator, one image size and each batch size, every format translates the same random
batch in eval mode (running statistics, no dropout: the mode in which every format computes the
same function) and is timed the same way: warm-up calls, then the median of ``repeats`` timed calls
(on a GPU each ends with a device synchronisation). Formats:

* ``torch``: the generator as ``zoo translate`` runs it, fp32, under ``torch.inference_mode`` (on a
  CPU, small maps on ATen's native kernels: :func:`~pix2pix_zoo.cpu_kernels.use_native_kernels_where_faster`);
* ``torch-channels-last``: the same with weights and inputs in channels-last layout;
* ``torch-bf16``: as ``zoo translate --precision bf16`` runs it: bfloat16 autocast (fp32 weights,
  bf16 products), weights and inputs channels-last;
* ``torchscript``: the eval-mode export of :mod:`pix2pix_zoo.export` (batch norm folded), run by torch.jit;
* ``onnxruntime``: the ONNX eval-mode export, run by onnxruntime (the ``onnx`` extra).

Each row gives the file's size (the weights file for the torch formats, the export's bytes for the
others), milliseconds per image and images per second, the peak memory the format added (on a GPU
``torch.cuda.max_memory_allocated`` over the model's own; on a CPU the largest resident set seen
while it ran, sampled every few milliseconds, over the set before it was loaded, with the memory freed
until then handed back to the system: onnxruntime's arenas and torch's buffers alike), and the largest
difference of its output from the generator's as the weights file builds it (fp32, torch's default kernels).
"""

from __future__ import annotations

import copy
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pix2pix_zoo.cpu_kernels import use_native_kernels_where_faster
from pix2pix_zoo.cpu_memory import hand_back_freed_memory
from pix2pix_zoo.devices import emulated_precision_note
from pix2pix_zoo.errors import ZooError
from pix2pix_zoo.export import exported, load_torchscript
from pix2pix_zoo.onnx_backend import OnnxGenerator
from pix2pix_zoo.translator import load_generator, locate, read_card

FORMATS = ("torch", "torch-channels-last", "torch-bf16", "torchscript", "onnxruntime")
MiB = 2**20


@dataclass
class BenchmarkRow:
    """One format at one batch size."""

    format: str
    batch: int
    file_mib: float
    ms_per_image: float
    images_per_s: float
    peak_mib: float
    max_difference: float


def native_formats(device: torch.device) -> tuple[str, ...]:
    """The formats worth timing on ``device``: all but ``torch-bf16`` where bf16 has no native kernels
    (:func:`~pix2pix_zoo.devices.emulated_precision_note`; on an AVX2 CPU it runs 100-200x slower)."""
    return tuple(name for name in FORMATS if name != "torch-bf16" or not emulated_precision_note(device, "bf16"))


def benchmark_translator(name_or_path: str | os.PathLike[str], *, formats: Sequence[str] | None = None,
                         size: int = 256, batches: Sequence[int] = (1, 8), device: str | torch.device = "cpu",
                         repeats: int = 10, warmup: int = 2) -> list[BenchmarkRow]:
    """Time ``formats`` (default: :func:`native_formats`) of a translator (a weights file, its folder, a
    run directory or a catalog name) at ``size`` x ``size`` (rounded up to the size multiple) for each
    of ``batches``; rows in that order."""
    device = torch.device(device)
    formats = native_formats(device) if formats is None else formats
    unknown = [name for name in formats if name not in FORMATS]
    if unknown:
        raise ZooError(f"unknown format {unknown[0]!r}; choose from: {', '.join(FORMATS)}")
    if not formats or not batches or min(batches) < 1 or size < 1 or repeats < 1 or warmup < 0:
        raise ZooError("benchmark needs at least one format and batch size, and positive sizes and repeats")
    path = locate(name_or_path)
    if path.suffix.lower() != ".safetensors":
        raise ZooError(f"{str(path)!r} is not a translator weights file: benchmark the weights (model.safetensors)")
    card = read_card(path)
    generator = load_generator(path, card).to(device).eval()
    multiple = card.size_multiple
    side = -(-size // multiple) * multiple
    rows = []
    for batch in batches:
        images = torch.rand(batch, card.in_channels, side, side, generator=torch.Generator().manual_seed(batch))
        images = (images * 2 - 1).to(device)
        with torch.inference_mode():
            reference = generator(images).float()
        for name in formats:
            with _peak_memory(device) as peak:
                run, file_bytes = _prepare(name, generator, card, path, device)
                seconds, output = median_call_seconds(run, images, device, repeats, warmup)
            rows.append(BenchmarkRow(
                format=name, batch=batch, file_mib=round(file_bytes / MiB, 2),
                ms_per_image=round(seconds * 1000 / batch, 3), images_per_s=round(batch / seconds, 2),
                peak_mib=round(peak() / MiB, 1), max_difference=float((output.float() - reference).abs().max()),
            ))
            del run
    return rows


def rows_as_dicts(rows: Sequence[BenchmarkRow]) -> list[dict[str, Any]]:
    return [asdict(row) for row in rows]


def _prepare(name: str, generator: nn.Module, card: Any, path: Path,
             device: torch.device) -> tuple[Callable[[Tensor], Tensor], int]:
    """A callable that translates a batch in format ``name``, and the size of the format's file."""
    weights = path.stat().st_size
    if name == "torch":
        if device.type != "cpu":
            return generator, weights
        tuned = copy.deepcopy(generator)
        use_native_kernels_where_faster(tuned)
        return tuned, weights
    if name == "torch-channels-last":
        layout = torch.channels_last
        copied = copy.deepcopy(generator).to(memory_format=layout)
        return (lambda images: copied(images.contiguous(memory_format=layout))), weights
    if name == "torch-bf16":
        layout = torch.channels_last
        copied = copy.deepcopy(generator).to(memory_format=layout)

        def in_bf16(images: Tensor) -> Tensor:
            with torch.autocast(device.type, dtype=torch.bfloat16):
                return copied(images.contiguous(memory_format=layout))
        return in_bf16, weights
    export_format = "torchscript" if name == "torchscript" else "onnx"
    data, export_card = exported(generator, card, export_format, mode="eval")
    if name == "onnxruntime":
        return OnnxGenerator(data, export_card, device), len(data)
    return load_torchscript(data, device), len(data)


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (a CUDA device's kernels run after their calls return)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_call_seconds(run: Callable[[Tensor], Tensor], images: Tensor, device: torch.device, repeats: int,
          warmup: int) -> tuple[float, Tensor]:
    """The median seconds of one call over ``repeats`` after ``warmup``, and the last output."""
    times, output = [], None
    context = torch.inference_mode if not isinstance(run, OnnxGenerator) else nullcontext
    with context():
        for call in range(warmup + repeats):
            started = time.perf_counter()
            output = run(images)
            synchronize(device)
            if call >= warmup:
                times.append(time.perf_counter() - started)
    return statistics.median(times), output


@contextmanager
def _peak_memory(device: torch.device) -> Iterator[Callable[[], int]]:
    """The bytes a block added at its peak: CUDA's allocator's count, or the resident set sampled."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        yield lambda: max(0, torch.cuda.max_memory_allocated(device) - before)
        return
    hand_back_freed_memory()  # else memory kept from earlier formats would hide what this one takes
    before = _resident()
    peak = [before]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.002):
            peak[0] = max(peak[0], _resident())

    sampler = threading.Thread(target=sample, daemon=True, name="resident set sampler")
    sampler.start()
    try:
        yield lambda: max(0, peak[0] - before)
    finally:
        stop.set()
        sampler.join()
        peak[0] = max(peak[0], _resident())


def _resident() -> int:
    """This process's resident set in bytes (Linux's /proc; 0 where there is none)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
