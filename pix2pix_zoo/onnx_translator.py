"""An ONNX export run by onnxruntime on arrays, without torch: what ``zoo translate model.onnx`` runs.

``import torch`` alone takes 3-5 s on a 2-core CPU, longer than onnxruntime takes to translate
dozens of images, and nothing in translating files with an export needs it. So the common case
(images in their plain grey or RGB form, fp32, no side-by-side sheets, on the CPU) runs here on
numpy arrays: read, normalised, padded and cropped exactly as :class:`~pix2pix_zoo.translator.Translator`
does (:mod:`pix2pix_zoo.geometry`, :mod:`pix2pix_zoo.pictures`), and written by the same file
pipeline (:mod:`pix2pix_zoo.image_files`). An image large enough to be tiled is handed to a
:class:`~pix2pix_zoo.translator.Translator` around the same session, imported then, so the two
ways agree everywhere and share the session's random stream in paper mode.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from pix2pix_zoo.errors import BadImageError, ZooError
from pix2pix_zoo.export import INPUT_NAME, OUTPUT_NAME
from pix2pix_zoo.geometry import aligned_tiling, padding_steps
from pix2pix_zoo.image_files import same_size_batches, translate_files
from pix2pix_zoo.onnx_session import import_onnxruntime, new_session, read_onnx_export
from pix2pix_zoo.pictures import SUPPORTED_CHANNELS, array_to_image, image_to_array
from pix2pix_zoo.translator_file import Card, InferenceMode, check_mode

if TYPE_CHECKING:
    from pix2pix_zoo.translator import Translator


class OnnxTranslator:
    """An export's session translating PIL images and files on the CPU; see the module's docstring.
    ``mode`` must be the export's; ``seed`` seeds the session (paper mode's dropout), once."""

    def __init__(self, model: bytes, card: Card, *, mode: InferenceMode | None = None, seed: int | None = None,
                 tile: int | None = 1024, overlap: int = 128) -> None:
        self.card = card
        self.mode: InferenceMode = mode or card.inference_mode
        check_mode(self.mode, (card.inference_mode,))
        self.seed = seed
        self.tile, self.overlap = aligned_tiling(tile, overlap, card.size_multiple)
        self.session = new_session(model, seed=seed)
        self.half = self.session.get_inputs()[0].type == "tensor(float16)"
        self._tiling_translator: Translator | None = None

    @classmethod
    def runs(cls, path: Path, *, backend: str, device: str, precision: str, side_by_side: bool) -> bool:
        """Whether a command with these options can run the file at ``path`` here (else
        :class:`~pix2pix_zoo.translator.Translator` runs it, and says why not where it cannot)."""
        if path.suffix.lower() != ".onnx" or not path.is_file():
            return False
        if backend not in ("auto", "onnxruntime") or precision != "fp32" or side_by_side:
            return False
        try:
            cuda = "CUDAExecutionProvider" in import_onnxruntime().get_available_providers()
        except ZooError:  # no onnxruntime: the torch path says so in its words
            return False
        return device == "cpu" or (device == "auto" and not cuda)

    @classmethod
    def from_file(cls, path: Path, *, mode: InferenceMode | None = None, seed: int | None = None,
                  tile: int | None = 1024, overlap: int = 128) -> OnnxTranslator | None:
        """The export at ``path`` ready to run, or None where its images need torch (a codec, or
        channels that are not grey or RGB)."""
        model, card = read_onnx_export(path)
        if card.codec or card.in_channels not in SUPPORTED_CHANNELS or card.out_channels not in SUPPORTED_CHANNELS:
            return None
        return cls(model, card, mode=mode, seed=seed, tile=tile, overlap=overlap)

    def translate_images(self, images: Sequence[Image.Image], batch_size: int = 1) -> list[Image.Image]:
        """Translate PIL images, running images of the same size together in batches; same order out."""
        results: list[Image.Image | None] = [None] * len(images)
        multiple = self.card.size_multiple
        for chunk in same_size_batches(images, batch_size):
            width, height = images[chunk[0]].size
            if self.tile is not None and max(height + -height % multiple, width + -width % multiple) > self.tile:
                outputs = self._tiling().translate_images([images[i] for i in chunk], batch_size)
            else:
                reflections, rest, (top, left) = padding_steps(height, width, multiple)
                batch = np.stack([self._to_array(images[i]) for i in chunk])
                for step in reflections:
                    batch = _pad(batch, step, "reflect")
                if any(rest):
                    batch = _pad(batch, rest, "edge")
                cropped = self._run(batch)[..., top : top + height, left : left + width]
                outputs = [array_to_image(output) for output in cropped]
            for index, output in zip(chunk, outputs):
                results[index] = output
        return results  # type: ignore[return-value]

    def translate_files(self, jobs: Sequence[tuple[Path, Path]], output: Path, *, batch_size: int = 1,
                        side_by_side: bool = False) -> Iterator[tuple[Path, Path | BadImageError]]:
        """As :meth:`Translator.translate_files <pix2pix_zoo.translator.Translator.translate_files>`,
        decoding and encoding in turn with the forward passes (onnxruntime's threads use the cores).
        Sheets (``side_by_side``) are drawn by the torch Translator, not here."""
        if side_by_side:
            raise ZooError("side-by-side sheets are drawn by the torch Translator: load the file with it")
        yield from translate_files(self.translate_images, jobs, output, batch_size=batch_size)

    def _to_array(self, image: Image.Image) -> np.ndarray:
        """A PIL image as the export's input ``[C_in, H, W]`` in [-1, 1], as Translator.to_tensor makes it."""
        return image_to_array(image, self.card.in_channels).astype(np.float32) / np.float32(127.5) - np.float32(1)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        (output,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: batch.astype(np.float16 if self.half else np.float32,
                                                                             copy=False)})
        return output.astype(np.float32, copy=False)

    def _tiling(self) -> Translator:
        """A torch Translator around this session, for images that are tiled (torch imported now)."""
        if self._tiling_translator is None:
            from pix2pix_zoo.onnx_backend import OnnxGenerator
            from pix2pix_zoo.translator import Translator

            generator = OnnxGenerator(self.session, self.card, "cpu", self.seed)
            self._tiling_translator = Translator(generator, self.card, device="cpu", mode=self.mode, seed=self.seed,
                                                 tile=self.tile, overlap=self.overlap)
        return self._tiling_translator


def _pad(batch: np.ndarray, step: list[int], mode: Any) -> np.ndarray:
    """``[N, C, H, W]`` padded by ``step`` (left, right, top, bottom: torch's order) in numpy's ``mode``."""
    left, right, top, bottom = step
    return np.pad(batch, ((0, 0), (0, 0), (top, bottom), (left, right)), mode=mode)
