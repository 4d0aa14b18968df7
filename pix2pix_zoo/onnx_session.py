"""ONNX exports read and checked, and onnxruntime sessions made for them, without torch.

An ONNX file is anyone's data too: it is parsed without following external-data references (weights
kept in other files, which could name any path on the machine) and refused if it has any; onnxruntime
then gets the bytes, not the path, so it cannot look beside the file either. Its card is checked like
a weights file's (:func:`pix2pix_zoo.export.card_of_model`).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from pix2pix_zoo.errors import ZooError, first_line
from pix2pix_zoo.export import card_of_model, import_onnx
from pix2pix_zoo.translator_file import Card

MAX_ONNX_BYTES = 2**31 - 1
"""Protocol buffers' own limit: a larger file cannot be one ONNX model without external data."""


def import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ZooError('running ONNX files needs the onnx extra: pip install "pix2pix-zoo[onnx]"') from None
    return onnxruntime


def read_onnx_export(path: Path) -> tuple[bytes, Card]:
    """The bytes of the export at ``path`` and its card; one-line errors for what is not a zoo export."""
    onnx = import_onnx()
    where = f"{str(path)!r}"
    if path.stat().st_size > MAX_ONNX_BYTES:
        raise ZooError(f"{where} is larger than an ONNX model can be (2 GiB)")
    data = path.read_bytes()
    try:
        model = onnx.load_from_string(data)
    except Exception as error:
        raise ZooError(f"{where} is not an ONNX model: {first_line(str(error))}") from None
    card = card_of_model(model, where)
    if any(tensor.data_location == onnx.TensorProto.EXTERNAL for tensor in _tensors(model.graph)):
        raise ZooError(f"{where} keeps weights in external files, which the zoo does not read: "
                       "export with the weights inside (zoo export does)")
    return data, card


def new_session(model: bytes, *, cuda_device: int | None = None, seed: int | None = None) -> Any:
    """An onnxruntime session for ``model``: on its CUDA provider for ``cuda_device`` where the
    installed onnxruntime has one, else on its CPU provider.

    A paper-mode export draws dropout masks in the session, from a generator onnxruntime seeds when
    the session is made: ``seed`` (None: a fresh random one). So a seeded session repeats its whole
    sequence of calls, but one call cannot be reseeded on its own."""
    onnxruntime = import_onnxruntime()
    providers: list[Any] = ["CPUExecutionProvider"]
    if cuda_device is not None and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": cuda_device}))
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: its notes on the graph are not the user's business
    # The seed is process-wide in onnxruntime and read as sessions are made: set it every time, so
    # an unseeded session after a seeded one is random again.
    onnxruntime.set_seed(secrets.randbits(62) if seed is None else seed)
    try:
        return onnxruntime.InferenceSession(model, options, providers=providers)
    except Exception as error:
        raise ZooError(f"onnxruntime cannot run this model: {first_line(str(error))}") from None


def _tensors(graph: Any) -> list[Any]:
    """Every stored tensor of a graph: its initializers and the constants of its nodes, subgraphs too."""
    found = list(graph.initializer)
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                found.append(attribute.t)
            found += list(attribute.tensors)
            if attribute.HasField("g"):
                found += _tensors(attribute.g)
            for subgraph in attribute.graphs:
                found += _tensors(subgraph)
    return found
