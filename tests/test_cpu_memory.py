"""Freed memory kept in the process (pix2pix_zoo.cpu_memory): what glibc then does with a freed
block, and the commands that run translators asking for it before they load one."""

from __future__ import annotations

import subprocess
import sys

import pytest
from PIL import Image

from pix2pix_zoo import cpu_memory
from pix2pix_zoo.errors import ZooError

from helpers import run_main

# Allocates and touches 256 MiB with glibc's malloc, frees it, and prints how much the resident set fell.
_FREE_A_LARGE_BLOCK = """
import ctypes, ctypes.util, os, sys
from pix2pix_zoo.cpu_memory import hand_back_freed_memory, keep_freed_memory
if sys.argv[1] != "default":
    assert keep_freed_memory() is True
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
size = 256 << 20
block = libc.malloc(size)
ctypes.memset(block, 1, size)
touched = resident()
libc.free(block)
if sys.argv[1] == "keep, then hand back":
    assert hand_back_freed_memory() is True
print(touched - resident())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc, read through /proc")
def test_a_freed_large_block_stays_in_the_process_only_when_asked():
    fell = {how: int(subprocess.run([sys.executable, "-c", _FREE_A_LARGE_BLOCK, how], capture_output=True,
                                    text=True, check=True).stdout)
            for how in ("default", "keep", "keep, then hand back")}
    assert fell["default"] > 200 << 20  # handed back to the kernel at once
    assert fell["keep"] < 16 << 20  # kept, to be reused without faulting pages in again
    assert fell["keep, then hand back"] > 200 << 20  # until asked for


# Frees 256 MiB (kept), then measures a block that allocates as much again.
_MEASURE_AFTER_KEPT_MEMORY = """
import torch
from pix2pix_zoo.benchmarking import _peak_memory
from pix2pix_zoo.cpu_memory import keep_freed_memory
assert keep_freed_memory() is True
earlier = torch.ones(64 << 20)
del earlier
with _peak_memory(torch.device("cpu")) as peak:
    this = torch.ones(64 << 20)
    del this
print(peak())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc, read through /proc")
def test_zoo_benchmark_counts_the_memory_a_format_takes_even_where_earlier_memory_was_kept():
    added = int(subprocess.run([sys.executable, "-c", _MEASURE_AFTER_KEPT_MEMORY], capture_output=True, text=True,
                               check=True).stdout)
    assert added > 200 << 20  # not hidden by reusing the 256 MiB kept from before the block


@pytest.mark.parametrize("command", ["translate", "eval", "compare", "serve", "benchmark"])
def test_the_commands_that_run_translators_keep_freed_memory_before_loading_one(command, tmp_path, monkeypatch,
                                                                                 capsys):
    def kept():
        raise ZooError("asked to keep freed memory")

    monkeypatch.setattr(cpu_memory, "keep_freed_memory", kept)
    Image.new("RGB", (8, 8)).save(tmp_path / "in.png")
    arguments = {"translate": ["no-such-translator", str(tmp_path / "in.png"), "-o", str(tmp_path / "out")],
                 "eval": ["no-such-translator", "--data", "synthfacades"],
                 "compare": ["no-such-translator", "--data", "synthfacades"],
                 "serve": ["no-such-translator"],
                 "benchmark": ["no-such-translator"]}[command]
    code, _, err = run_main(capsys, command, *arguments)
    # The translator is never looked for: memory is kept first (the name would fail otherwise).
    assert (code, err.strip()) == (1, "error: asked to keep freed memory")
