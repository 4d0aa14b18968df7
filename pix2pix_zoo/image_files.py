"""Image files in, PNG files out, around any function that translates PIL images.

Both ways a translator runs share it: :class:`~pix2pix_zoo.translator.Translator` (torch) and
:class:`~pix2pix_zoo.onnx_translator.OnnxTranslator` (onnxruntime on arrays, without torch). It
imports no torch itself.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from pix2pix_zoo.atomic import write_bytes_atomic
from pix2pix_zoo.data.images import open_image
from pix2pix_zoo.errors import BadImageError

FILES_AHEAD = 2
"""Batches :func:`translate_files` decodes ahead of the forward passes, and encodes behind."""

TranslateImages = Callable[[Sequence[Image.Image], int], list[Image.Image]]
"""Images and a batch size in, their translations out, in the same order."""

Sheet = Callable[[Image.Image, Image.Image], Image.Image]
"""An input and its output in, the picture written for them out."""


def same_size_batches(images: Sequence[Image.Image], batch_size: int) -> Iterator[list[int]]:
    """The indices of ``images`` in batches of one size each, at most ``batch_size`` long: every
    image once, sizes in the order they first appear."""
    by_size: dict[tuple[int, int], list[int]] = {}
    for index, image in enumerate(images):
        by_size.setdefault(image.size, []).append(index)
    step = max(1, batch_size)
    for indices in by_size.values():
        for start in range(0, len(indices), step):
            yield indices[start : start + step]


def translate_files(
    translate_images: TranslateImages, jobs: Sequence[tuple[Path, Path]], output: Path, *, batch_size: int = 1,
    sheet: Sheet | None = None, file_threads: bool = False,
) -> Iterator[tuple[Path, Path | BadImageError]]:
    """Translate image files into PNGs under ``output``: each job is a source file and its output
    name relative to ``output``. Yields, in the jobs' order, each source with the file written or
    the BadImageError that kept it from being read; any other error (a full disk) is raised.

    With ``file_threads`` the forward passes do not wait for files: decoding runs up to
    :data:`FILES_AHEAD` batches ahead and encoding as many behind, each on a thread of its own (PIL
    decodes and encodes without the GIL); without, they run in turn. Each output is written whole or
    not at all (a temporary file renamed), so an interrupted run leaves no half-written PNG;
    ``sheet`` makes the picture written from an input and its output (default: the output).
    """
    batch_size = max(1, batch_size)
    batches = [jobs[start : start + batch_size] for start in range(0, len(jobs), batch_size)]
    with _file_worker(file_threads, "zoo-decode") as readers, _file_worker(file_threads, "zoo-encode") as writers:
        reads: deque[Future] = deque(readers.submit(_read_batch, batch) for batch in batches[:FILES_AHEAD])
        writes: deque[Future] = deque()
        try:
            for index in range(len(batches)):
                decoded = reads.popleft().result()
                if index + FILES_AHEAD < len(batches):
                    reads.append(readers.submit(_read_batch, batches[index + FILES_AHEAD]))
                images = [image for _, _, image in decoded if isinstance(image, Image.Image)]
                outputs = iter(translate_images(images, batch_size))
                pairs = [(source, name, image, None if isinstance(image, BadImageError) else next(outputs))
                         for source, name, image in decoded]
                writes.append(writers.submit(_write_batch, pairs, output, sheet))
                while len(writes) > FILES_AHEAD or (writes and writes[0].done()):
                    yield from writes.popleft().result()
            while writes:
                yield from writes.popleft().result()
        finally:
            for pending in (*reads, *writes):
                pending.cancel()


def _read_batch(jobs: Sequence[tuple[Path, Path]]) -> list[tuple[Path, Path, Image.Image | BadImageError]]:
    """Each job's source decoded (or the error that kept it from being read), with its output name."""
    decoded: list[tuple[Path, Path, Image.Image | BadImageError]] = []
    for source, name in jobs:
        try:
            decoded.append((source, name, open_image(source)))
        except BadImageError as error:
            decoded.append((source, name, error))
    return decoded


def _write_batch(pairs: list[tuple[Path, Path, Image.Image | BadImageError, Image.Image | None]], output: Path,
                 sheet: Sheet | None) -> list[tuple[Path, Path | BadImageError]]:
    written: list[tuple[Path, Path | BadImageError]] = []
    for source, name, image, result in pairs:
        if result is None:
            written.append((source, image))  # type: ignore[arg-type]  # the BadImageError
            continue
        target = output / name
        target.parent.mkdir(parents=True, exist_ok=True)
        encoded = io.BytesIO()
        (result if sheet is None else sheet(image, result)).save(encoded, format="PNG")  # type: ignore[arg-type]
        write_bytes_atomic(target, encoded.getvalue())
        written.append((source, target))
    return written


class _InTurn(Executor):
    """An executor that runs each task when it is submitted, on the caller's thread."""

    def submit(self, fn, /, *args, **kwargs) -> Future:  # type: ignore[override]
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as error:  # handed to whoever asks for the result, as a thread's would be
            future.set_exception(error)
        return future


def _file_worker(own_thread: bool, name: str) -> Executor:
    return ThreadPoolExecutor(1, thread_name_prefix=name) if own_thread else _InTurn()
