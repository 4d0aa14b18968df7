"""Downloads are bounded (a total deadline, a per-read timeout, the promised size or a cap), leave
nothing behind when they fail or are stopped, and never share a temporary name with another process."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from helpers import run_env, zoo_executable
from test_catalog import reference_state_dict, user_entry

from pix2pix_zoo import atomic, translators
from pix2pix_zoo import download as download_module
from pix2pix_zoo.download import download, staged_directory
from pix2pix_zoo.errors import DataError
from pix2pix_zoo.translator import WEIGHTS_FILE

BLOB = os.urandom(20_000)


def serve(server, name: str, behaviour: str | None = None, data: bytes = BLOB) -> str:
    (server.folder / name).write_bytes(data)
    if behaviour:
        server.behaviours[f"/{name}"] = behaviour
    return f"{server.url}/{name}"


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# -- time ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("behaviour", ["trickle", "trickle-headers"], ids=["body", "headers"])
def test_a_trickling_server_meets_the_total_deadline(http_server, tmp_path, behaviour):
    """A byte every 0.3 s, in the body or already in the headers: each read is quick, the whole never ends."""
    url = serve(http_server, "slow.bin", behaviour)
    start = time.monotonic()
    with pytest.raises(DataError) as error:
        download(url, tmp_path / "cache" / "slow.bin", timeout=5, deadline=1, progress=False)
    assert time.monotonic() - start < 3
    assert str(error.value) == f"download of {url} took longer than its deadline of 1 s; nothing was kept"
    assert leftovers(tmp_path / "cache") == []


def test_the_deadline_comes_from_the_environment(http_server, tmp_path, monkeypatch):
    url = serve(http_server, "slow.bin", "trickle")
    monkeypatch.setenv(download_module.DEADLINE_VARIABLE, "0.5")
    with pytest.raises(DataError, match=r"took longer than its deadline of 0\.5 s"):
        download(url, tmp_path / "slow.bin", timeout=5, progress=False)
    monkeypatch.setenv(download_module.DEADLINE_VARIABLE, "soon")
    with pytest.raises(DataError, match=r"ZOO_DOWNLOAD_DEADLINE='soon' is not a positive number"):
        download(url, tmp_path / "slow.bin", progress=False)


def test_a_server_that_stalls_mid_body_times_out(http_server, tmp_path):
    url = serve(http_server, "stall.bin", "trickle")
    http_server.trickle_interval = 10  # one byte, then silence
    with pytest.raises(DataError) as error:
        download(url, tmp_path / "cache" / "stall.bin", timeout=0.3, deadline=60, progress=False)
    assert str(error.value) == f"download of {url} timed out (no data for 0.3 s)"
    assert leftovers(tmp_path / "cache") == []


# -- size ----------------------------------------------------------------------------------------------
def test_the_promised_size_is_met_exactly(http_server, tmp_path):
    url = serve(http_server, "blob.bin")
    assert download(url, tmp_path / "blob.bin", size_bytes=len(BLOB), progress=False).read_bytes() == BLOB


def test_a_server_announcing_another_size_is_refused_before_any_byte(http_server, tmp_path):
    url = serve(http_server, "blob.bin")
    with pytest.raises(DataError) as error:
        download(url, tmp_path / "cache" / "blob.bin", size_bytes=1000, progress=False)
    assert str(error.value) == f"download of {url} is 20,000 bytes, not the 1,000 expected; nothing was kept"
    assert leftovers(tmp_path / "cache") == []


def test_more_bytes_than_promised_stop_at_once(http_server, tmp_path):
    url = serve(http_server, "zeros", "endless")  # no length announced, and no end
    with pytest.raises(DataError) as error:
        download(url, tmp_path / "cache" / "zeros", size_bytes=100_000, deadline=20, progress=False)
    assert str(error.value) == f"download of {url} sent more than the 100,000 bytes expected; nothing was kept"
    assert leftovers(tmp_path / "cache") == []


def test_fewer_bytes_than_promised_are_an_error(tmp_path):
    source = tmp_path / "short.bin"
    source.write_bytes(BLOB)
    with pytest.raises(DataError) as error:
        download(source.as_uri(), tmp_path / "cache" / "short.bin", size_bytes=30_000, progress=False)
    url = source.as_uri()
    assert str(error.value) == f"download of {url} is 20,000 bytes, not the 30,000 expected; nothing was kept"
    assert leftovers(tmp_path / "cache") == []


def test_fewer_bytes_than_promised_without_an_announced_length(http_server, tmp_path):
    url = serve(http_server, "short.bin", "unsized")
    with pytest.raises(DataError) as error:
        download(url, tmp_path / "cache" / "short.bin", size_bytes=30_000, progress=False)
    assert str(error.value) == f"download of {url} was cut off after 20,000 of 30,000 bytes"
    assert leftovers(tmp_path / "cache") == []
    assert download(url, tmp_path / "cache" / "short.bin", size_bytes=len(BLOB), progress=False).read_bytes() == BLOB


def test_an_endless_stream_of_unknown_size_meets_the_cap(http_server, tmp_path):
    url = serve(http_server, "zeros", "endless")
    with pytest.raises(DataError) as error:
        download(url, tmp_path / "cache" / "zeros", max_bytes=300_000, deadline=20, progress=False)
    assert str(error.value) == (
        f"download of {url} passed the cap of 300,000 bytes for a file of unknown size "
        f"(set ZOO_DOWNLOAD_MAX_BYTES to allow more); nothing was kept"
    )
    assert leftovers(tmp_path / "cache") == []


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_file_urls_meet_the_cap_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(download_module.MAX_BYTES_VARIABLE, "3000000")
    with pytest.raises(DataError, match=r"^download of file:///dev/zero passed the cap of 3,000,000 bytes"):
        download("file:///dev/zero", tmp_path / "cache" / "zero", progress=False)
    assert leftovers(tmp_path / "cache") == []
    sparse = tmp_path / "sparse.bin"  # 1 TB announced by its size, nothing written
    with open(sparse, "wb") as file:
        file.truncate(1 << 40)
    with pytest.raises(DataError) as error:
        download(sparse.as_uri(), tmp_path / "cache" / "sparse.bin", progress=False)
    assert str(error.value) == (
        f"download of {sparse.as_uri()} is 1,099,511,627,776 bytes, more than the cap of 3,000,000 bytes "
        f"(set ZOO_DOWNLOAD_MAX_BYTES to allow more); nothing was kept"
    )
    assert leftovers(tmp_path / "cache") == []
    monkeypatch.setenv(download_module.MAX_BYTES_VARIABLE, "-1")
    with pytest.raises(DataError, match=r"ZOO_DOWNLOAD_MAX_BYTES='-1' is not a positive whole number"):
        download(sparse.as_uri(), tmp_path / "cache" / "sparse.bin", progress=False)


def test_a_catalog_size_is_enforced_by_pull(home, http_server):
    torch.save(reference_state_dict(), http_server.folder / "tiny.pth")
    user_entry(home, "tiny", f"{http_server.url}/tiny.pth")
    (home / "registry" / "tiny.toml").write_text((home / "registry" / "tiny.toml").read_text() + "size_bytes = 1000\n")
    with pytest.raises(DataError, match=r"tiny\.pth is [\d,]+ bytes, not the 1,000 expected; nothing was kept"):
        translators.pull("tiny", progress=False)
    assert leftovers(home / "translators" / "tiny") == []


# -- stopping ------------------------------------------------------------------------------------------
def test_keyboard_interrupt_keeps_nothing_and_sigterm_is_restored(http_server, tmp_path):
    url = serve(http_server, "slow.bin", "trickle")
    before = signal.getsignal(signal.SIGTERM)

    def interrupt(*args) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.5)  # Ctrl-C, half a second into the download
    try:
        with pytest.raises(KeyboardInterrupt):
            download(url, tmp_path / "cache" / "slow.bin", deadline=20, progress=False)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert leftovers(tmp_path / "cache") == []
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_during_zoo_pull_keeps_nothing_and_exits_as_interrupted(home, http_server):
    torch.save(reference_state_dict(), http_server.folder / "tiny.pth")
    http_server.behaviours["/tiny.pth"] = "trickle"
    user_entry(home, "tiny", f"{http_server.url}/tiny.pth")
    folder = home / "translators" / "tiny"
    process = subprocess.Popen([zoo_executable(), "pull", "tiny"], env=run_env(ZOO_HOME=str(home)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        give_up = time.monotonic() + 120
        while not leftovers(folder) and process.poll() is None and time.monotonic() < give_up:
            time.sleep(0.05)  # until the partial file exists
        assert leftovers(folder), "the download never started"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    # Stopped as Ctrl-C stops it: exit code 130, no traceback, one line that says so.
    lines = stderr.splitlines()
    assert lines[0].startswith(f"downloading {http_server.url}/tiny.pth") and lines[1:] == ["error: interrupted"]
    assert process.returncode == 130
    assert leftovers(folder) == []


def test_sigterm_while_a_folder_is_staged_deletes_it(tmp_path):
    def outer(signum, frame) -> None:  # stands in for the default, which would end the test run
        pytest.fail("SIGTERM reached the handler outside the staged folder's block")

    before = signal.signal(signal.SIGTERM, outer)
    try:
        with pytest.raises(KeyboardInterrupt):
            with staged_directory(tmp_path / "facades") as staging:
                (staging / "train").mkdir()
                os.kill(os.getpid(), signal.SIGTERM)  # as an extraction is half done
                time.sleep(5)  # not reached: the handler raises as soon as the signal arrives
        assert leftovers(tmp_path) == []
        assert signal.getsignal(signal.SIGTERM) is outer
    finally:
        signal.signal(signal.SIGTERM, before)


# -- temporary names -----------------------------------------------------------------------------------
# Pulls "tiny" each time a line arrives on stdin and answers one line: "ok PATH" or "error: ...".
PULLER = """
import sys
from pix2pix_zoo import translators
for _ in sys.stdin:
    try:
        print("ok", translators.pull("tiny", progress=False), flush=True)
    except Exception as error:
        print(f"error: {type(error).__name__}: {error}", flush=True)
"""


def test_two_processes_pulling_one_name_at_once_both_succeed(home, http_server):
    torch.save(reference_state_dict(), http_server.folder / "tiny.pth")
    user_entry(home, "tiny", f"{http_server.url}/tiny.pth")
    weights = home / "translators" / "tiny" / WEIGHTS_FILE
    pullers = [
        subprocess.Popen([sys.executable, "-c", PULLER], env=run_env(ZOO_HOME=str(home)),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        # The second pull starts a little later each round, so that it meets the first in each of
        # its steps: downloading, verifying, converting, installing.
        for round_ in range(30):
            shutil.rmtree(weights.parent, ignore_errors=True)
            for puller in pullers:
                puller.stdin.write("go\n")
                puller.stdin.flush()
                if puller is pullers[0]:
                    time.sleep(0.002 * round_)
            answers = [puller.stdout.readline().strip() for puller in pullers]
            assert answers == [f"ok {weights}"] * 2, f"round {round_}"
            assert leftovers(weights.parent) == [WEIGHTS_FILE, translators.SOURCE_RECORD]
    finally:
        for puller in pullers:
            puller.stdin.close()
            puller.wait(timeout=30)


def test_atomic_writes_of_one_file_from_many_threads_all_succeed(tmp_path):
    path = tmp_path / "state.json"
    errors: list[BaseException] = []

    def write(index: int) -> None:
        try:
            for round_ in range(50):
                atomic.write_json_atomic(path, {"writer": index, "round": round_})
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert leftovers(tmp_path) == ["state.json"]


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "card.md"
    path.write_text("old")

    def refuse(*args) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space left"):
        atomic.write_text_atomic(path, "new")
    assert leftovers(tmp_path) == ["card.md"] and path.read_text() == "old"


def test_atomic_writes_keep_the_usual_permissions_and_fsync_on_request(tmp_path, monkeypatch):
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    umask = os.umask(0o022)
    try:
        atomic.write_text_atomic(tmp_path / "plain.txt", "x")
        assert synced == []
        atomic.write_text_atomic(tmp_path / "durable.txt", "x", durable=True)
        assert len(synced) == 2  # the file, then the folder holding the new name
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == 0o644


def test_temporary_names_are_unique_and_hidden(tmp_path):
    names = {atomic.temporary_path(tmp_path / "model.safetensors").name for _ in range(100)}
    assert len(names) == 100
    assert all(name.startswith(".model.safetensors.") and str(os.getpid()) in name for name in names)



def test_a_dataset_download_is_capped_by_twice_its_stated_size_under_a_name_of_its_own(http_server, tmp_path):
    from pix2pix_zoo.data.catalog import fetch_dataset
    from pix2pix_zoo.interfaces import DatasetInfo

    url = serve(http_server, "pairs.tar.gz", "endless")
    info = DatasetInfo(name="pairs", a_channels=3, b_channels=3, url=url, download_size=100_000)
    with pytest.raises(DataError, match="passed the cap of 200,000 bytes"):
        fetch_dataset(info, tmp_path / "datasets", progress=False)
    assert leftovers(tmp_path / "datasets") == []
