"""Downloads that are verified and atomic, and tar extraction that cannot escape its folder.

Nothing here leaves a half-written file or folder under its final name: a download streams into a
hidden ``.<name>.<pid>-<random>.part`` beside its destination and is renamed over it once complete
and verified; an archive is extracted into a hidden folder beside its target and renamed into place
once every member is out. What a failure or a SIGTERM leaves behind is deleted; what it says is one
line.

Every download is bounded: by a timeout without data, a deadline for the whole, and a size (the one
promised, or a cap when none is). ``$ZOO_DOWNLOAD_DEADLINE`` (seconds) and ``$ZOO_DOWNLOAD_MAX_BYTES``
change the defaults.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import http.client
import os
import shutil
import socket
import ssl
import sys
import tarfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import TypeVar
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import HTTPHandler, HTTPSHandler, Request, build_opener

from rich.console import Console
from rich.filesize import decimal
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from pix2pix_zoo import __version__
from pix2pix_zoo.atomic import sigterm_as_interrupt, temporary_path
from pix2pix_zoo.errors import DataError

CHUNK_SIZE = 1 << 20
DEADLINE_VARIABLE = "ZOO_DOWNLOAD_DEADLINE"
MAX_BYTES_VARIABLE = "ZOO_DOWNLOAD_MAX_BYTES"
DEFAULT_DEADLINE = 4 * 3600.0  # seconds for one whole download
DEFAULT_MAX_BYTES = 4_000_000_000  # for a file whose size nobody promised (the reference archives are smaller)
Number = TypeVar("Number", int, float)

# Python 3.10.12+/3.11.4+ vet each member themselves (the "data" filter); our own checks come first
# and are what older interpreters rely on.
_DATA_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
_FILTER_ERROR = getattr(tarfile, "FilterError", ())


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of a file's content, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def url_file_name(url: str) -> str:
    """The file name at the end of a URL's path (``.../facades.tar.gz?x=1`` -> ``facades.tar.gz``)."""
    return PurePosixPath(urlsplit(url).path).name


def mirrored_url(url: str, variable: str) -> str:
    """``url``, or the file of the same name under the mirror base URL in ``$variable`` when it is set."""
    mirror = os.environ.get(variable)
    return f"{mirror.rstrip('/')}/{url_file_name(url)}" if mirror else url


def download(
    url: str,
    destination: Path,
    *,
    sha256: str | None = None,
    size_bytes: int | None = None,
    timeout: float = 60,
    deadline: float | None = None,
    max_bytes: int | None = None,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``destination`` atomically and return it; a DataError says why if it fails.

    An existing ``destination`` is a cache hit (when its SHA-256 matches ``sha256`` and its size
    ``size_bytes``, if given). ``size_bytes`` is the exact size the file must have; without it the
    download stops at ``max_bytes`` (default ``$ZOO_DOWNLOAD_MAX_BYTES``, else 4 GB). ``timeout``
    is in seconds without data, ``deadline`` in seconds for the whole download (default
    ``$ZOO_DOWNLOAD_DEADLINE``, else 4 hours). ``progress`` shows a bar on stderr when that is a
    terminal, and one line saying what is downloaded when it is not. SIGTERM, like Ctrl-C, raises
    KeyboardInterrupt once the partial file is deleted.
    """
    destination = Path(destination)
    expected = sha256.lower() if sha256 else None
    if (
        destination.is_file()
        and (size_bytes is None or destination.stat().st_size == size_bytes)
        and (expected is None or sha256_of(destination) == expected)
    ):
        return destination
    if deadline is None:
        deadline = _setting(DEADLINE_VARIABLE, DEFAULT_DEADLINE, float, "a positive number of seconds")
    if max_bytes is None:
        max_bytes = _setting(MAX_BYTES_VARIABLE, DEFAULT_MAX_BYTES, int, "a positive whole number of bytes")
    part = temporary_path(destination, "part")
    bounds = _Bounds(url, deadline=deadline, size_bytes=size_bytes, max_bytes=max_bytes)
    with sigterm_as_interrupt(), bounds:
        try:
            destination.parent.mkdir(parents=True, exist_ok=True)
            actual = _stream(url, part, timeout, bounds, progress)
            if expected is not None and actual != expected:
                raise DataError(
                    f"sha256 mismatch for {url}: expected {expected}, got {actual}; the download was deleted"
                )
            os.replace(part, destination)
        except (OSError, http.client.HTTPException, ValueError) as error:
            if bounds.expired:  # the connection was shut at the deadline
                raise bounds.deadline_error() from None
            raise _download_error(error, url, destination, timeout) from None
        finally:
            part.unlink(missing_ok=True)
    return destination


def _setting(variable: str, default: Number, kind: Callable[[str], Number], what: str) -> Number:
    """``$variable`` read as a positive ``kind``, or ``default`` when it is not set."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not value > 0:
        raise DataError(f"{variable}={text!r} is not {what}")
    return value


class _Bounds:
    """How long a download may take and how large it may be; each check fails with one line.

    Within its block, the connections given to :meth:`watch` are shut when the deadline passes, so
    that nothing a server does (a body or headers a byte at a time) makes a download outlast it.
    """

    def __init__(self, url: str, *, deadline: float, size_bytes: int | None, max_bytes: int) -> None:
        self.url = url
        self.deadline = deadline
        self.ends_at = time.monotonic() + deadline
        self.size_bytes = size_bytes
        self.limit = size_bytes if size_bytes is not None else max_bytes
        self._connections: list[socket.socket] = []
        self._timer = threading.Timer(deadline, self._shut_connections)
        self._timer.daemon = True

    def __enter__(self) -> _Bounds:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()

    @property
    def expired(self) -> bool:
        return time.monotonic() > self.ends_at

    def watch(self, connection: socket.socket) -> None:
        """Shut ``connection`` at the deadline (at once if it has passed)."""
        self._connections.append(connection)
        if self.expired:
            self._shut_connections()

    def _shut_connections(self) -> None:
        for connection in self._connections:
            with contextlib.suppress(OSError):  # closed already
                connection.shutdown(socket.SHUT_RDWR)

    def deadline_error(self) -> DataError:
        return DataError(
            f"download of {self.url} took longer than its deadline of {self.deadline:g} s; nothing was kept"
        )

    def check_announced(self, announced: int | None) -> None:
        """Refuse before any byte a length (the server's ``Content-Length``) that cannot be right."""
        if announced is None:
            return
        if self.size_bytes is not None and announced != self.size_bytes:
            raise DataError(
                f"download of {self.url} is {announced:,} bytes, not the {self.size_bytes:,} expected; nothing was kept"
            )
        if announced > self.limit:
            raise DataError(
                f"download of {self.url} is {announced:,} bytes, more than the cap of {self.limit:,} bytes "
                f"(set {MAX_BYTES_VARIABLE} to allow more); nothing was kept"
            )

    def check_progress(self, received: int) -> None:
        """Stop a download that passed its size or its deadline."""
        if received > self.limit:
            if self.size_bytes is not None:
                raise DataError(
                    f"download of {self.url} sent more than the {self.size_bytes:,} bytes expected; nothing was kept"
                )
            raise DataError(
                f"download of {self.url} passed the cap of {self.limit:,} bytes for a file of unknown size "
                f"(set {MAX_BYTES_VARIABLE} to allow more); nothing was kept"
            )
        if self.expired:
            raise self.deadline_error()

    def check_complete(self, received: int, announced: int | None) -> None:
        """Refuse a download that ended before the promised or announced size, or at the deadline."""
        if self.expired:
            raise self.deadline_error()
        promised = self.size_bytes if self.size_bytes is not None else announced
        if promised is not None and received < promised:
            raise DataError(f"download of {self.url} was cut off after {received:,} of {promised:,} bytes")


def _stream(url: str, part: Path, timeout: float, bounds: _Bounds, progress: bool) -> str:
    """Write the body of ``url`` into the new file ``part`` within ``bounds``, fsync it, and return its SHA-256."""
    digest = hashlib.sha256()
    request = Request(url, headers={"User-Agent": f"pix2pix-zoo/{__version__}"})
    with _open(request, timeout, bounds) as response:
        length = response.headers.get("Content-Length")
        announced = int(length) if length and length.isdigit() else None
        bounds.check_announced(announced)
        received = 0
        with open(part, "xb") as file, _progress_bar(url, bounds.size_bytes or announced, progress) as advance:
            # read1: what has arrived, at most one byte past the limit, so that a slow or endless
            # body is checked after every read rather than once a whole chunk has come in.
            while chunk := response.read1(min(CHUNK_SIZE, bounds.limit + 1 - received)):
                received += len(chunk)
                bounds.check_progress(received)
                file.write(chunk)
                digest.update(chunk)
                advance(len(chunk))
            bounds.check_complete(received, announced)
            file.flush()
            os.fsync(file.fileno())  # on disk before the rename makes it visible
    return digest.hexdigest()


def _open(request: Request, timeout: float, bounds: _Bounds):
    """``urlopen(request, timeout=timeout)``, with every HTTP(S) connection watched by ``bounds``."""

    def watched(connection_class: type[http.client.HTTPConnection]) -> type[http.client.HTTPConnection]:
        class Watched(connection_class):  # type: ignore[valid-type,misc]
            def connect(self) -> None:
                super().connect()
                bounds.watch(self.sock)

        return Watched

    class WatchedHTTP(HTTPHandler):
        def http_open(self, req: Request):
            return self.do_open(watched(http.client.HTTPConnection), req)

    class WatchedHTTPS(HTTPSHandler):  # the default context, as urlopen's
        def https_open(self, req: Request):
            return self.do_open(watched(http.client.HTTPSConnection), req)

    return build_opener(WatchedHTTP, WatchedHTTPS).open(request, timeout=timeout)


@contextlib.contextmanager
def _progress_bar(url: str, total: int | None, enabled: bool) -> Iterator:
    """Yield ``advance(n_bytes)``: a rich bar on a terminal stderr, one line on any other."""
    if not enabled or not sys.stderr.isatty():
        if enabled:
            size = f" ({decimal(total)})" if total is not None else ""
            print(f"downloading {url}{size}", file=sys.stderr)
        yield lambda n_bytes: None
        return
    name = PurePosixPath(url.split("?", 1)[0]).name or url
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, TimeRemainingColumn(), console=Console(file=sys.stderr)) as bar:
        task = bar.add_task(name, total=total)
        yield lambda n_bytes: bar.advance(task, n_bytes)


def _download_error(error: Exception, url: str, destination: Path, timeout: float) -> DataError:
    """One line for what went wrong: the URL, the server, the network or the disk."""
    if isinstance(error, ValueError):
        return DataError(f"cannot download {url!r}: {error}")
    if isinstance(error, HTTPError):
        error.close()
        return DataError(f"cannot download {url}: HTTP {error.code} {error.reason}")
    if not isinstance(error, (URLError, ConnectionError, TimeoutError, ssl.SSLError, http.client.HTTPException)):
        return _write_error(error, destination.parent)
    reason = error.reason if isinstance(error, URLError) else error
    if isinstance(reason, TimeoutError):
        return DataError(f"download of {url} timed out (no data for {timeout:g} s)")
    if isinstance(reason, ConnectionRefusedError):
        return DataError(f"cannot download {url}: connection refused")
    return DataError(f"cannot download {url}: {getattr(reason, 'strerror', None) or reason}")


def _write_error(error: OSError, folder: Path) -> DataError:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return DataError(f"no space left on the device of {folder}")
    return DataError(f"cannot write in {folder}: {error.strerror or error}")


@contextlib.contextmanager
def staged_directory(target: Path) -> Iterator[Path]:
    """A new, empty folder beside ``target`` that becomes ``target`` when the block completes.

    When the block raises, or SIGTERM stops it (raising KeyboardInterrupt), the folder and all that
    was written into it are deleted. ``target`` must not exist: nothing already there is replaced.
    """
    target = Path(target)
    if target.exists():
        raise DataError(f"{target} already exists; delete it to make it again")
    staging = temporary_path(target)
    with sigterm_as_interrupt():
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            staging.mkdir()
        except OSError as error:
            raise _write_error(error, target.parent) from None
        try:
            yield staging
            try:
                os.rename(staging, target)
            except OSError as error:
                raise _write_error(error, target.parent) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def safe_extract(archive: Path, target: Path, *, top_folder: str | None = None) -> Path:
    """Extract a tar archive (any compression) into the new folder ``target``, all or nothing.

    Every member must be a regular file or a folder whose relative path stays inside; links,
    devices and fifos are refused, naming the member. With ``top_folder``, every member must lie
    in that folder of the archive, whose content becomes ``target``. A truncated or corrupt
    archive is a DataError and leaves nothing behind.
    """
    archive, target = Path(archive), Path(target)
    if not archive.is_file():
        raise DataError(f"archive {archive} does not exist")
    try:
        with staged_directory(target) as staging, tarfile.open(archive) as tar:
            tar.extractall(staging, members=_checked_members(tar, archive, top_folder), **_DATA_FILTER)
    except _FILTER_ERROR as error:  # what the data filter refuses that our checks let through
        raise DataError(f"archive {archive}: unsafe member {error.tarinfo.name!r} ({error})") from None
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise DataError(f"archive {archive} is truncated or corrupt ({error})") from None
    except OSError as error:
        raise _write_error(error, target.parent) from None
    return target


def _checked_members(tar: tarfile.TarFile, archive: Path, top_folder: str | None) -> Iterator[tarfile.TarInfo]:
    """The archive's members, each checked before it is extracted; without ``top_folder`` when given."""
    for member in tar:
        path = PurePosixPath(member.name)
        if not (member.isfile() or member.isdir()):
            raise DataError(
                f"archive {archive}: member {member.name!r} is {_kind(member)}; only files and folders are extracted"
            )
        if path.is_absolute() or ".." in path.parts:
            raise DataError(f"archive {archive}: member {member.name!r} points outside the folder it is extracted into")
        parts = path.parts  # "./" and "a/./b" are normalised away
        if top_folder is not None:
            if parts and parts[0] != top_folder:
                raise DataError(f"archive {archive}: member {member.name!r} is outside its folder {top_folder + '/'!r}")
            parts = parts[1:]
        if parts:  # the archive's (or top folder's) own entry is the staging folder itself
            member.name = PurePosixPath(*parts).as_posix()
            yield member


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return f"a symbolic link to {member.linkname!r}"
    if member.islnk():
        return f"a hard link to {member.linkname!r}"
    if member.ischr() or member.isblk():
        return "a device"
    if member.isfifo():
        return "a fifo"
    return "a special member"
