"""Downloads and extraction against a real HTTP server on loopback, with real (and hostile) archives."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import socket
import sys
import tarfile

import pytest
from loopback import add_file, make_reference_archive

from pix2pix_zoo.download import download, safe_extract, sha256_of
from pix2pix_zoo.errors import DataError

BLOB = os.urandom(200_000)
BLOB_SHA256 = hashlib.sha256(BLOB).hexdigest()


def serve(server, name: str, data: bytes = BLOB) -> str:
    (server.folder / name).write_bytes(data)
    return f"{server.url}/{name}"


@pytest.fixture
def cache(tmp_path):
    """Where failing downloads go: it must be empty afterwards (the server's files are elsewhere)."""
    return tmp_path / "cache"


def hidden_leftovers(folder) -> list[str]:
    """Work in progress that a download or an extraction left behind (``.x.<pid>-<random>.part`` or ``.tmp``)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) if folder.exists() else []


def test_download_streams_verifies_and_renames(http_server, tmp_path, capsys):
    url = serve(http_server, "blob.bin")
    target = tmp_path / "cache" / "blob.bin"
    assert download(url, target, sha256=BLOB_SHA256.upper()) == target
    assert target.read_bytes() == BLOB and sha256_of(target) == BLOB_SHA256
    assert hidden_leftovers(target.parent) == []
    assert f"downloading {url} (200.0 kB)" in capsys.readouterr().err  # stderr is no terminal here


def test_progress_bar_when_stderr_is_a_terminal(http_server, tmp_path, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    download(serve(http_server, "blob.bin"), tmp_path / "blob.bin")
    assert "blob.bin" in terminal.getvalue() and "kB" in terminal.getvalue()
    download(serve(http_server, "quiet.bin"), tmp_path / "quiet.bin", progress=False)
    assert "quiet.bin" not in terminal.getvalue()


def test_cache_hit_does_not_download_again(http_server, tmp_path):
    url = serve(http_server, "blob.bin")
    target = tmp_path / "blob.bin"
    download(url, target, progress=False)
    download(url, target, progress=False)
    download(url, target, sha256=BLOB_SHA256, progress=False)
    assert http_server.requests == ["/blob.bin"]
    target.write_bytes(b"damaged")  # a cached file that no longer matches is fetched again
    download(url, target, sha256=BLOB_SHA256, progress=False)
    assert http_server.requests == ["/blob.bin"] * 2 and target.read_bytes() == BLOB


def test_sha256_mismatch_deletes_the_download(http_server, cache):
    url = serve(http_server, "blob.bin")
    expected = "0" * 64
    with pytest.raises(DataError) as error:
        download(url, cache / "blob.bin", sha256=expected, progress=False)
    says = f"sha256 mismatch for {url}: expected {expected}, got {BLOB_SHA256}; the download was deleted"
    assert str(error.value) == says
    assert list(cache.iterdir()) == []


def test_http_error_is_one_line(http_server, cache):
    url = f"{http_server.url}/missing.tar.gz"
    with pytest.raises(DataError) as error:
        download(url, cache / "missing.tar.gz", progress=False)
    assert str(error.value) == f"cannot download {url}: HTTP 404 File not found"
    assert list(cache.iterdir()) == []


def test_timeout_is_one_line(http_server, cache):
    url = serve(http_server, "slow.bin")
    http_server.behaviours["/slow.bin"] = "hang"
    with pytest.raises(DataError) as error:
        download(url, cache / "slow.bin", timeout=0.2, progress=False)
    assert str(error.value) == f"download of {url} timed out (no data for 0.2 s)"
    assert list(cache.iterdir()) == []


def test_connection_cut_short_keeps_nothing(http_server, cache):
    url = serve(http_server, "blob.bin")
    http_server.behaviours["/blob.bin"] = "cut"
    with pytest.raises(DataError, match=r"was cut off after 100,000 of 200,000 bytes"):
        download(url, cache / "blob.bin", progress=False)
    assert list(cache.iterdir()) == []


def test_connection_refused_is_one_line(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/facades.tar.gz"
    with pytest.raises(DataError) as error:
        download(url, tmp_path / "facades.tar.gz", progress=False)
    assert str(error.value) == f"cannot download {url}: connection refused"


def test_disk_full_is_one_line_and_keeps_nothing(http_server, cache, monkeypatch):
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)  # where a full disk shows up last: flushing to it
    with pytest.raises(DataError) as error:
        download(serve(http_server, "blob.bin"), cache / "blob.bin", progress=False)
    assert str(error.value) == f"no space left on the device of {cache}"
    assert list(cache.iterdir()) == []


def test_bad_url_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="unknown url type"):
        download("facades.tar.gz", tmp_path / "facades.tar.gz", progress=False)


def test_extract_reference_archive_into_place(tmp_path):
    archive = make_reference_archive(tmp_path / "facades.tar.gz", "facades", {"train": 2, "test": 1})
    target = tmp_path / "datasets" / "facades"
    assert safe_extract(archive, target, top_folder="facades") == target
    files = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert files == ["test/1.jpg", "train/1.jpg", "train/2.jpg"]
    assert hidden_leftovers(target.parent) == []
    whole = safe_extract(archive, tmp_path / "whole")  # without top_folder, the archive as it is
    assert (whole / "facades" / "train" / "2.jpg").is_file()


def test_extract_refuses_an_existing_target(tmp_path):
    archive = make_reference_archive(tmp_path / "facades.tar.gz", "facades", {"train": 1})
    (tmp_path / "facades" / "mine").mkdir(parents=True)
    with pytest.raises(DataError, match="already exists"):
        safe_extract(archive, tmp_path / "facades", top_folder="facades")
    assert [p.name for p in (tmp_path / "facades").iterdir()] == ["mine"]


def hostile_member(kind: str, outside: str) -> tarfile.TarInfo:
    member = tarfile.TarInfo({"parent": "../evil", "absolute": f"{outside}/evil"}.get(kind, f"facades/{kind}"))
    member.type = {
        "symlink": tarfile.SYMTYPE,
        "hardlink": tarfile.LNKTYPE,
        "fifo": tarfile.FIFOTYPE,
        "device": tarfile.CHRTYPE,
    }.get(kind, tarfile.REGTYPE)
    member.linkname = {"symlink": "/etc/passwd", "hardlink": "../../evil"}.get(kind, "")
    member.size = len(b"evil") if member.isfile() else 0
    return member


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("parent", "points outside the folder"),
        ("absolute", "points outside the folder"),
        ("symlink", "is a symbolic link to '/etc/passwd'"),
        ("hardlink", "is a hard link to '../../evil'"),
        ("fifo", "is a fifo"),
        ("device", "is a device"),
    ],
)
def test_hostile_members_are_refused_and_nothing_is_kept(tmp_path, kind, says):
    outside = tmp_path / "outside"
    archive = tmp_path / "hostile.tar.gz"
    member = hostile_member(kind, str(outside))
    with tarfile.open(archive, "w:gz") as tar:
        add_file(tar, "facades/train/1.jpg", b"fine")  # extracted before the hostile member comes
        tar.addfile(member, io.BytesIO(b"evil") if member.isfile() else None)
    with pytest.raises(DataError) as error:
        safe_extract(archive, tmp_path / "data" / "facades")
    assert repr(member.name) in str(error.value) and says in str(error.value)
    assert not (tmp_path / "data" / "facades").exists() and hidden_leftovers(tmp_path / "data") == []
    assert not (tmp_path / "evil").exists() and not outside.exists()


def test_member_outside_the_top_folder_is_refused(tmp_path):
    archive = tmp_path / "maps.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        add_file(tar, "maps/train/1.jpg", b"fine")
        add_file(tar, "other/readme.txt", b"stray")
    with pytest.raises(DataError, match=r"member 'other/readme.txt' is outside its folder 'maps/'"):
        safe_extract(archive, tmp_path / "maps", top_folder="maps")
    assert list(tmp_path.iterdir()) == [archive]


@pytest.mark.parametrize("damage", ["truncated", "not an archive"])
def test_damaged_archive_leaves_nothing(tmp_path, damage):
    archive = tmp_path / "facades.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for index in range(4):
            add_file(tar, f"facades/train/{index}.bin", os.urandom(20_000))  # incompressible
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2] if damage == "truncated" else os.urandom(1000))
    with pytest.raises(DataError, match=rf"archive {archive} is truncated or corrupt \("):
        safe_extract(archive, tmp_path / "datasets" / "facades", top_folder="facades")
    assert hidden_leftovers(tmp_path / "datasets") == [] and not (tmp_path / "datasets" / "facades").exists()


def test_missing_archive(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        safe_extract(tmp_path / "nowhere.tar.gz", tmp_path / "x")
