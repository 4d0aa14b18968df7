"""``zoo serve NAME...``: translators behind an HTTP API and a web page (the ``serve`` extra)."""

from __future__ import annotations

from typing import Optional

import typer


def serve(
    models: list[str] = typer.Argument(..., metavar="NAME...", help="Catalog names, hf://ORG/NAME[@REVISION], model.safetensors or .onnx files, their folders or run directories."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; any but loopback is reachable from the network."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port to listen on (0: a free one)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, mps."),
    backend: str = typer.Option("auto", "--backend", help="torch, or onnxruntime (ONNX files always; a weights file is exported in memory in the mode run); auto: by the file."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, or bf16 / fp16 (autocast: faster where the hardware has them, outputs a few levels apart)."),
    mode: Optional[str] = typer.Option(None, "--mode", help="Default mode of requests that name none: eval or paper; default: each card's."),
    queue: int = typer.Option(32, "--queue", min=1, help="Requests that may wait; more are answered 503 with Retry-After."),
    max_batch: int = typer.Option(8, "--max-batch", min=1, help="Waiting eval-mode requests of one translator and size run together, up to this many."),
    max_upload_mb: float = typer.Option(20.0, "--max-upload-mb", min=0.001, help="Largest upload in MB (1 MB = 1,048,576 bytes); larger is answered 413."),
    max_pixels: int = typer.Option(4096 * 4096, "--max-pixels", min=1, help="Largest image in pixels (width x height); larger is answered 413."),
) -> None:
    """Serve translators over HTTP: an API and a web page, on 127.0.0.1 unless told otherwise.

    The page is at /; GET /health, GET /translators (their cards), and POST
    /translators/NAME/translate?mode=eval&seed=3 with the image file as the body answers a PNG of its
    size. Every translator is loaded before the port opens.
    """
    import sys

    from pix2pix_zoo.cli.output import note_emulated_precision
    from pix2pix_zoo.cpu_memory import keep_freed_memory
    from pix2pix_zoo.serving import Limits, require_extra, serve as run_server, translator_names
    from pix2pix_zoo.translator import Translator

    require_extra()
    limits = Limits(max_upload_bytes=int(max_upload_mb * 1024 * 1024), max_pixels=max_pixels, queue=queue,
                    max_batch=max_batch)
    names = translator_names(models)
    keep_freed_memory()  # the process is ours (see its docstring)
    translators = {name: Translator.from_pretrained(model, device=device, mode=mode, backend=backend, precision=precision)
                   for name, model in zip(names, models)}
    note_emulated_precision(next(iter(translators.values())).device, precision)
    run_server(translators, limits, host=host, port=port, announce=lambda line: print(line, file=sys.stderr, flush=True))
