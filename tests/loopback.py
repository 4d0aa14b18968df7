"""Real downloads without the internet: an HTTP server on 127.0.0.1 and the archives it serves,
and :class:`LoopbackHub`, the same server answering as the Hugging Face Hub does (``HF_ENDPOINT``).

The archives are built like the reference pix2pix ones (``NAME/<split>/<n>.jpg``, each a tiny
side-by-side JPEG, A left and B right), and the official Cityscapes trees like the real ones.
"""

from __future__ import annotations

import hashlib
import io
import sys
import tarfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from PIL import Image

# Colours of the left (A) and right (B) halves of every generated pair.
A_COLOUR, B_COLOUR = (200, 30, 30), (30, 30, 200)


class _Handler(SimpleHTTPRequestHandler):
    server: LoopbackServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.server.requests.append(self.path)
        behaviour = self.server.behaviours.get(self.path)
        if behaviour == "hang":  # accept, then never answer: the client times out
            self.server.release.wait(10)
        elif behaviour == "cut":  # promise the whole file, send half of it, close
            body = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
        elif behaviour == "trickle":  # promise the whole file, send it a byte at a time, slowly
            body = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self._send_while_listened((body[i : i + 1] for i in range(len(body))), pause=self.server.trickle_interval)
        elif behaviour == "trickle-headers":  # headers that never end, a byte at a time
            self.wfile.write(b"HTTP/1.0 200 OK\r\n")
            self._send_while_listened(iter(lambda: b"X", None), pause=self.server.trickle_interval)
        elif behaviour == "unsized":  # the whole file, its length not announced (ended by closing)
            self.send_response(200)
            self.end_headers()
            self.wfile.write((Path(self.directory) / self.path.lstrip("/")).read_bytes())
        elif behaviour == "endless":  # no length, and zeros until the client hangs up
            self.send_response(200)
            self.end_headers()
            self._send_while_listened(iter(lambda: bytes(1 << 16), None), pause=0)
        else:
            super().do_GET()

    def _send_while_listened(self, pieces, pause: float) -> None:
        """Send ``pieces``, ``pause`` seconds after each, until the client or the server stops."""
        try:
            for piece in pieces:
                self.wfile.write(piece)
                self.wfile.flush()
                if self.server.release.wait(pause):
                    return
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should

    def log_message(self, *args) -> None:
        pass


class LoopbackServer(ThreadingHTTPServer):
    """Serves the files of ``folder`` on 127.0.0.1 (any free port), recording every request path.

    ``behaviours[path]`` makes one path misbehave: ``"hang"`` (no answer), ``"cut"`` (half the
    promised body), ``"trickle"`` (a byte every ``trickle_interval`` seconds), ``"trickle-headers"``
    (the same, in headers that never end), ``"unsized"`` (no length announced) or ``"endless"``
    (zeros, no length, never done).
    """

    daemon_threads = True

    def __init__(self, folder: Path, handler: type[SimpleHTTPRequestHandler] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), partial(handler or _Handler, directory=str(folder)))
        self.folder = Path(folder)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.requests: list[str] = []
        self.behaviours: dict[str, str] = {}
        self.release = threading.Event()
        self.trickle_interval = 0.3
        # A short poll keeps shutdown() quick: it waits for the serving loop's next look.
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):  # a client may hang up
            super().handle_error(request, client_address)

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()
        self._thread.join()


class _HubHandler(_Handler):
    """The Hub's file-resolve URLs, ``/ORG/NAME/resolve/REVISION/FILE`` (HEAD and GET), answered from
    ``FOLDER/ORG/NAME/REVISION/FILE`` with the headers huggingface_hub reads: ``X-Repo-Commit``, an
    ``ETag`` (the file's sha256, as the Hub gives for LFS files) and ``Content-Length``. A missing
    repository, revision or file is a 404 with the Hub's ``X-Error-Code``."""

    server: LoopbackHub

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self._resolve(send_body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._resolve(send_body=True)

    def _resolve(self, send_body: bool) -> None:
        self.server.requests.append(self.path)
        parts = [unquote(part) for part in urlsplit(self.path).path.split("/")]
        if len(parts) != 6 or parts[3] != "resolve":
            return self._refuse("RepoNotFound")
        _, org, name, _, revision, filename = parts
        repo = self.server.folder / org / name
        if not repo.is_dir():
            return self._refuse("RepoNotFound")
        snapshot = repo / quote(revision, safe="")
        if not snapshot.is_dir():
            return self._refuse("RevisionNotFound")
        if not (snapshot / filename).is_file():
            return self._refuse("EntryNotFound")
        body = (snapshot / filename).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
        self.send_header("X-Repo-Commit", (snapshot / LoopbackHub.COMMIT).read_text())
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _refuse(self, code: str) -> None:
        self.send_response(404)
        self.send_header("X-Error-Code", code)
        self.send_header("Content-Length", "0")
        self.end_headers()


class LoopbackHub(LoopbackServer):
    """A stand-in for the Hugging Face Hub on 127.0.0.1: point ``HF_ENDPOINT`` at :attr:`url`.
    :meth:`put` commits a file to a repository's branch."""

    COMMIT = ".commit"  # beside a revision's files: the commit it stands for

    def __init__(self, folder: Path) -> None:
        super().__init__(folder, _HubHandler)

    def put(self, repo: str, data: bytes, filename: str = "model.safetensors", branch: str = "main") -> str:
        """Commit ``data`` as ``filename`` of ``repo`` on ``branch`` (which then points at it); return
        the commit's id, itself a revision from then on."""
        commit = hashlib.sha1(repo.encode() + data).hexdigest()
        for revision in (branch, commit):
            snapshot = self.folder / repo / quote(revision, safe="")
            snapshot.mkdir(parents=True, exist_ok=True)
            (snapshot / filename).write_bytes(data)
            (snapshot / self.COMMIT).write_text(commit)
        return commit


def side_by_side_jpeg(size: int = 8) -> bytes:
    """A ``2*size x size`` JPEG: A (left) and B (right) in their own flat colours."""
    image = Image.new("RGB", (2 * size, size), A_COLOUR)
    image.paste(B_COLOUR, (size, 0, 2 * size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95, subsampling=0)  # no colour bleeding across the seam
    return buffer.getvalue()


def add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    member = tarfile.TarInfo(name)
    member.size = len(data)
    tar.addfile(member, io.BytesIO(data))


def make_reference_archive(path: Path, name: str, sizes: dict[str, int]) -> Path:
    """``path`` as a reference archive: folder ``name/`` with ``sizes[split]`` JPEG pairs per split."""
    path.parent.mkdir(parents=True, exist_ok=True)
    jpeg = side_by_side_jpeg()
    with tarfile.open(path, "w:gz") as tar:
        for split, count in sizes.items():
            for index in range(1, count + 1):
                add_file(tar, f"{name}/{split}/{index}.jpg", jpeg)
    return path


def make_cityscapes_tree(root: Path, frames: dict[str, list[str]], size=(32, 16)) -> tuple[Path, Path]:
    """Official-looking ``gtFine`` and ``leftImg8bit`` folders under ``root``; ``frames[split]`` = ``city_x_y`` names.

    Photos are A-coloured and labels (RGBA, as the real ``*_gtFine_color.png``) B-coloured.
    """
    gtfine, leftimg8bit = root / "gtFine", root / "leftImg8bit"
    for split, names in frames.items():
        for frame in names:
            city = frame.split("_")[0]
            (gtfine / split / city).mkdir(parents=True, exist_ok=True)
            (leftimg8bit / split / city).mkdir(parents=True, exist_ok=True)
            Image.new("RGBA", size, (*B_COLOUR, 255)).save(gtfine / split / city / f"{frame}_gtFine_color.png")
            Image.new("RGB", size, A_COLOUR).save(leftimg8bit / split / city / f"{frame}_leftImg8bit.png")
    return gtfine, leftimg8bit
