"""ONNX exports run by onnxruntime behind a module's interface, as generators
:class:`~pix2pix_zoo.translator.Translator` runs (the files are read and checked by
:mod:`pix2pix_zoo.onnx_session`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pix2pix_zoo.export import INPUT_NAME, OUTPUT_NAME
from pix2pix_zoo.onnx_session import new_session, read_onnx_export
from pix2pix_zoo.translator_file import Card

BACKENDS = ("auto", "torch", "onnxruntime")


class OnnxGenerator(nn.Module):
    """An onnxruntime session behind a module's interface: NCHW float tensors in and out, on the
    device the inputs are on (onnxruntime's CUDA provider where the device is a GPU and the
    installed onnxruntime has it, else its CPU provider).

    ``model`` is the export's bytes, or a session already made for it with ``seed``. A paper-mode
    session draws dropout from the seed it was made with (:func:`~pix2pix_zoo.onnx_session.new_session`),
    kept as :attr:`seed`: a seeded session repeats its whole sequence of calls, where the torch
    backend restarts from the seed at each batch."""

    def __init__(self, model: bytes | Any, card: Card, device: torch.device | str = "cpu", seed: int | None = None
                 ) -> None:
        super().__init__()
        device = torch.device(device)
        self.seed = seed
        self.session = new_session(model, cuda_device=(device.index or 0) if device.type == "cuda" else None,
                                   seed=seed) if isinstance(model, bytes) else model
        self.card = card
        self.modes = (card.inference_mode,)  # what the exported graph computes (Translator checks it)
        self.size_multiple = card.size_multiple
        self.half = self.session.get_inputs()[0].type == "tensor(float16)"

    def forward(self, images: Tensor) -> Tensor:
        array = images.detach().to("cpu", torch.float16 if self.half else torch.float32).contiguous().numpy()
        (output,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: array})
        return torch.from_numpy(output).to(images.device, torch.float32)


def load_onnx_generator(path: Path, device: torch.device | str = "cpu", seed: int | None = None
                        ) -> tuple[OnnxGenerator, Card]:
    """The export at ``path`` ready to run, and its card; one-line errors for what is not a zoo export."""
    data, card = read_onnx_export(path)
    return OnnxGenerator(data, card, device, seed), card
