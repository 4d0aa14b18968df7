"""`zoo serve`: translators behind an HTTP API and a web page, on starlette and uvicorn (the ``serve`` extra).

``POST /translators/{name}/translate?mode=eval&seed=3`` takes the image file as the raw request body
(no multipart parser: those spool large uploads to temporary files) and answers a PNG of the input's
size. Uploads stay in memory and are bounded twice: the body is read in chunks and refused (413) as
soon as it passes ``max_upload_bytes``, and the pixel count is read from the image header and refused
(413) before anything is decoded. Inference runs on one worker thread, never on the event loop; its
queue is bounded and a full queue answers 503 with ``Retry-After``. In eval mode, waiting requests for
the same translator and image size run as one batch (eval mode has no batch statistics, so batching
changes nothing); paper mode runs each request alone, so one user's image never normalises another's.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import io
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from PIL import Image

from pix2pix_zoo.engine import rundir
from pix2pix_zoo.errors import ZooError
from pix2pix_zoo.translator import WEIGHTS_FILE, Translator, check_seed

INSTALL_HINT = 'zoo serve needs the serve extra: pip install "pix2pix-zoo[serve]"'
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "PPM")
"""What an upload may be: PIL opens only these (fewer decoders, less to attack)."""
MODES = ("eval", "paper")
RETRY_AFTER_SECONDS = 1
LOOPBACK = ("127.0.0.1", "localhost", "::1")
CONNECTIONS_BESIDE_THE_QUEUE = 8
"""Connections beyond the queue and the running batch: uploads being read, /health, the page."""


@dataclass(frozen=True)
class Limits:
    """What one server accepts: upload size, image size, waiting requests, images per batch."""

    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 4096 * 4096
    queue: int = 32
    max_batch: int = 8

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_pixels", "queue", "max_batch"):
            if getattr(self, name) < 1:
                raise ZooError(f"{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")


API = "GET / (the page), GET /health, GET /translators, POST /translators/NAME/translate"


class RequestError(Exception):
    """A request the server refuses: its HTTP status and a one-line reason for the JSON body."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def require_extra() -> None:
    """A ZooError saying how to install the ``serve`` extra where starlette or uvicorn is missing."""
    if any(importlib.util.find_spec(package) is None for package in ("starlette", "uvicorn")):
        raise ZooError(INSTALL_HINT)


def translator_names(arguments: Sequence[str]) -> list[str]:
    """The name each translator is served under: a catalog name as given, a path by its last part
    without the suffix (``runs/tiny`` -> ``tiny``; ``.../facades/model.safetensors`` -> ``facades``), a
    run's translator folder by its run (``runs/tiny/translator``, the path ``zoo train`` prints -> ``tiny``)."""
    names = []
    for argument in arguments:
        path = Path(argument.rstrip("/"))
        names_its_folder = path.name == WEIGHTS_FILE and bool(path.parent.name)
        folder = path.parent if names_its_folder else path
        if folder.name == rundir.TRANSLATOR and (folder.parent / rundir.MARKER).is_file():
            name = folder.parent.name
        else:
            name = folder.name if names_its_folder else path.stem
        if not name:
            raise ZooError(f"cannot name a translator after {argument!r}")
        if name in names:
            raise ZooError(f"two translators would be served as {name!r}: serve each name once")
        names.append(name)
    return names


def decode_upload(body: bytes, max_pixels: int) -> Image.Image:
    """The uploaded image, decoded; its pixel count is checked from the header before decoding
    (413), anything that is not a readable image of :data:`IMAGE_FORMATS` is a 400."""
    try:
        image = Image.open(io.BytesIO(body), formats=IMAGE_FORMATS)
    except Image.DecompressionBombError as error:  # PIL's own guard, at twice its MAX_IMAGE_PIXELS
        raise RequestError(413, f"the image is too large: {error}") from None
    except (OSError, SyntaxError, ValueError):
        raise RequestError(400, f"the upload is not an image this server reads ({', '.join(IMAGE_FORMATS)})") from None
    width, height = image.size
    if width * height > max_pixels:
        raise RequestError(413, f"the image has {width}x{height} = {width * height} pixels; the limit is {max_pixels}")
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise RequestError(400, f"the image cannot be decoded: {error}") from None
    return image


def encode_png(image: Image.Image) -> bytes:
    """An image as PNG bytes, in memory."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class _Job:
    name: str
    image: Image.Image
    mode: str
    seed: int | None
    done: Future = field(default_factory=Future)

    def batch_key(self) -> tuple | None:
        """Jobs with the same key may run together: eval mode only, same translator and image size."""
        return (self.name, self.image.size) if self.mode == "eval" else None


class BatchingQueue:
    """A bounded queue of translation jobs and the one worker thread that runs them.

    The worker takes the oldest job and, in eval mode, every waiting job for the same translator and
    image size (up to ``max_batch``), and runs them as one batch. ``batches`` counts the batches run.
    """

    def __init__(self, translators: dict[str, Translator], limits: Limits) -> None:
        self.translators = translators
        self.limits = limits
        self.batches = 0
        self._waiting: deque[_Job] = deque()
        self._running = 0
        self._changed = threading.Condition()
        self._stopping = False
        self._worker = threading.Thread(target=self._work, name="zoo-serve-worker", daemon=True)

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        """Let the worker finish its batch and end; jobs still waiting are cancelled."""
        with self._changed:
            self._stopping = True
            for job in self._waiting:
                job.done.cancel()
            self._waiting.clear()
            self._changed.notify_all()
        if self._worker.is_alive():
            self._worker.join()

    @property
    def depth(self) -> int:
        """Jobs waiting (not the batch running)."""
        return len(self._waiting)

    @property
    def running(self) -> int:
        """Images in the batch running now."""
        return self._running

    def submit(self, name: str, image: Image.Image, mode: str, seed: int | None) -> Future:
        """Queue one image; its future gives ``(output image, batch size)``. A full queue is a 503."""
        job = _Job(name, image, mode, seed)
        with self._changed:
            if len(self._waiting) >= self.limits.queue:
                raise RequestError(503, f"the server is busy ({self.limits.queue} requests waiting); retry shortly",
                                   {"Retry-After": str(RETRY_AFTER_SECONDS)})
            self._waiting.append(job)
            self._changed.notify()
        return job.done

    def _next_batch(self) -> list[_Job]:
        with self._changed:
            while not self._waiting and not self._stopping:
                self._changed.wait()
            if self._stopping:
                return []
            first = self._waiting.popleft()
            batch = [first]
            key = first.batch_key()
            if key is not None:
                for job in list(self._waiting):
                    if len(batch) >= self.limits.max_batch:
                        break
                    if job.batch_key() == key:
                        self._waiting.remove(job)
                        batch.append(job)
            self._running = len(batch)
            return batch

    def _work(self) -> None:
        while batch := self._next_batch():
            batch = [job for job in batch if job.done.set_running_or_notify_cancel()]  # not the abandoned
            if not batch:
                with self._changed:
                    self._running = 0
                continue
            try:
                outputs = self._run(batch)
            except Exception as error:  # the requests' failure, answered to them; the worker goes on
                for job in batch:
                    job.done.set_exception(error)
            else:
                for job, output in zip(batch, outputs):
                    job.done.set_result((output, len(batch)))
            finally:
                with self._changed:
                    self._running = 0
                    self.batches += 1

    def _run(self, batch: list[_Job]) -> list[Image.Image]:
        first = batch[0]
        served = self.translators[first.name]
        translator = served if (first.mode, first.seed) == (served.mode, served.seed) else Translator(
            served.generator, served.card, device=served.device, mode=first.mode, seed=first.seed,
            tile=served.tile, overlap=served.overlap, precision=served.precision,
        )
        return translator.translate_images([job.image for job in batch], batch_size=len(batch))


def _page() -> bytes:
    return resources.files("pix2pix_zoo").joinpath("serving_page.html").read_bytes()


def make_app(translators: dict[str, Translator], limits: Limits = Limits()) -> Any:
    """The starlette app serving ``translators`` by name within ``limits``; its lifespan starts and
    stops the worker thread. The queue is ``app.state.queue``."""
    require_extra()
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    queue = BatchingQueue(translators, limits)
    page = _page()

    def refusal(error: RequestError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=error.status, headers=error.headers)

    async def unrouted(request: Request, error: HTTPException) -> JSONResponse:
        """An unknown path or a method a path does not take: JSON like every other answer, naming the API."""
        what = (f"{request.url.path!r} takes {error.headers.get('Allow', 'other methods')}, not {request.method}"
                if error.status_code == 405 else f"no {request.method} {request.url.path!r}")
        return refusal(RequestError(error.status_code, f"{what}; the API: {API}", dict(error.headers or {})))

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(page)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "translators": list(translators), "queue": queue.depth,
                             "queue_limit": limits.queue, "running": queue.running, "batches": queue.batches})

    async def listing(request: Request) -> JSONResponse:
        return JSONResponse([{"name": name, "mode": translator.mode, "modes": list(translator.modes),
                              "card": asdict(translator.card)} for name, translator in translators.items()])

    async def translate(request: Request) -> Response:
        try:
            name = request.path_params["name"]
            if name not in translators:
                raise RequestError(404, f"no translator {name!r}; choose one of: {', '.join(translators)}")
            mode, seed = _parameters(request.query_params, translators[name])
            body = await _read_body(request, limits.max_upload_bytes)
            image = await run_in_threadpool(decode_upload, body, limits.max_pixels)
            del body
            job = queue.submit(name, image, mode, seed)
            try:
                output, batch_size = await asyncio.wrap_future(job)
            except ZooError as error:  # the translator cannot take this image (its channels, say)
                raise RequestError(400, str(error)) from None
            except Exception as error:  # a defect: said in JSON like every other answer
                raise RequestError(500, f"translation failed: {type(error).__name__}") from None
            png = await run_in_threadpool(encode_png, output)
        except RequestError as error:
            return refusal(error)
        return Response(png, media_type="image/png", headers={"X-Batch-Size": str(batch_size)})

    @contextlib.asynccontextmanager
    async def lifespan(app):
        queue.start()
        try:
            yield
        finally:
            await run_in_threadpool(queue.stop)

    app = Starlette(routes=[
        Route("/", index),
        Route("/health", health),
        Route("/translators", listing),
        Route("/translators/{name}/translate", translate, methods=["POST"]),
    ], lifespan=lifespan, exception_handlers={HTTPException: unrouted})
    app.state.queue = queue
    return app


def _parameters(query: Any, translator: Translator) -> tuple[str, int | None]:
    """``mode`` (default: the translator's) and ``seed`` (an integer, for paper mode's dropout)."""
    mode = query.get("mode") or translator.mode
    if mode not in MODES:
        raise RequestError(400, f"mode must be one of: {', '.join(MODES)}; not {mode!r}")
    if mode not in translator.modes:  # an ONNX export computes the mode it was exported in
        raise RequestError(400, f"this translator runs {' or '.join(translator.modes)} mode only, not {mode}")
    seed_text = query.get("seed")
    if seed_text is None or seed_text == "":
        return mode, translator.seed
    try:
        seed = int(seed_text)
    except ValueError:
        raise RequestError(400, f"seed must be an integer, not {seed_text[:40]!r}") from None
    if not 0 <= seed < 2**63:
        raise RequestError(400, f"seed must be from 0 to 2**63 - 1, not {seed}")
    try:
        check_seed(translator.generator, mode, seed)
    except ZooError as error:
        raise RequestError(400, str(error)) from None
    return mode, seed


async def _read_body(request: Any, limit: int) -> bytes:
    """The request body, read chunk by chunk and refused (413) once it passes ``limit`` bytes."""
    too_large = RequestError(413, f"the upload is larger than the limit of {limit} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    if not body:
        raise RequestError(400, "the request has no body: send the image file's bytes as the body")
    return bytes(body)


def serve(
    translators: dict[str, Translator],
    limits: Limits,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve until interrupted. The socket is bound here, before uvicorn starts, so a port in use
    is an OSError of its own; ``announce`` gets ``serving NAME,... on http://HOST:PORT`` once it listens,
    after a warning where ``host`` is not a loopback address."""
    require_extra()
    import socket

    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.create_server((host, port), family=family)
    bound_port = listener.getsockname()[1]
    if host not in LOOPBACK:
        announce(f"warning: listening on {host}: anyone who can reach this machine can use the server")
    shown_host = f"[{host}]" if family == socket.AF_INET6 else host

    class AnnouncingServer(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if not self.should_exit:
                announce(f"serving {','.join(translators)} on http://{shown_host}:{bound_port}")

    # Connections at once, uploads being read included: bounded so that the uploads held in memory are
    # too (at most this many times max_upload_bytes); uvicorn answers 503 beyond it.
    connections = limits.queue + limits.max_batch + CONNECTIONS_BESIDE_THE_QUEUE
    config = uvicorn.Config(make_app(translators, limits), log_level="warning", access_log=False,
                            timeout_graceful_shutdown=5, limit_concurrency=connections)
    with listener:
        AnnouncingServer(config).run(sockets=[listener])
