"""Host memory: freed memory kept in the process (glibc), for the trainer and the commands that
run translators, and handed back on request (to measure what comes next). Imports no torch.

glibc hands a freed block larger than its mmap threshold (32 MiB at most, raised as it goes) back
to the kernel at once, so a process that allocates and frees the same large tensors over and over
(a training step; a translator's batches: unet_256 at batch 8 in bf16 makes 16 MiB activations)
faults in fresh zero-filled pages for them every time. Measured with ``zoo translate --mode eval
-b 8 --precision bf16`` on 48 images of 256x256 (2-core CPU): the forward passes took 2.25-2.29 s
with memory handed back and 1.17-1.95 s with it kept; the peak resident set grew from 1.08 to
1.17-1.25 GB. At batch 1 in fp32 the activations stay below the threshold, so nothing changes.

Where memory is handed back on purpose (training that recomputes activations, to keep its peak
low), torch can ask the kernel for transparent huge pages for its large tensors
(:func:`ask_torch_for_huge_pages`): a 2 MiB page is one fault where 4 KiB pages are 512.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Callable

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4

TORCH_HUGE_PAGES = "THP_MEM_ALLOC_ENABLE"
"""torch's switch for ``madvise(MADV_HUGEPAGE)`` on its CPU allocations of 2 MiB and more; torch reads
it once, at its first CPU allocation in the process."""


def keep_freed_memory() -> bool:
    """Tell glibc to keep freed memory in the process instead of returning large blocks to the
    kernel; return whether it could (False off glibc). Affects the whole process, for its lifetime:
    its heap stays as large as it ever was (fragments included), so call it in a process of your
    own, as ``zoo translate``, ``zoo eval``, ``zoo compare``, ``zoo serve``, ``zoo benchmark`` and
    the trainer on a CPU (unless it recomputes activations) do, not from a library."""
    mallopt = _glibc("mallopt")
    return mallopt is not None and bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**30))


def hand_back_freed_memory() -> bool:
    """Return the memory freed so far to the kernel now (``malloc_trim``), kept or not; return whether
    glibc could. Then the resident set is what is in use, so the peak of what comes next can be
    measured from it (``zoo benchmark``'s memory column)."""
    trim = _glibc("malloc_trim")
    if trim is None:
        return False
    trim(0)  # returns 1 only when some memory went back, which is not a failure either way
    return True


def ask_torch_for_huge_pages() -> bool:
    """Have torch ask the kernel for transparent huge pages for its CPU tensors of 2 MiB and more, unless
    the environment already says (:data:`TORCH_HUGE_PAGES`, set by the user); return whether it is asked.

    For a process of the zoo's own that hands freed memory back while it reuses the same large
    tensors: the trainer recomputing activations faults them in afresh every step, and 2 MiB pages
    make that 512x fewer faults (resnet_9blocks + patch70 at 1024x1024, 2-core CPU: 102 -> 82 s a
    step, peak RSS 3979 -> 3769 MiB). Not where freed memory is kept: there nothing is faulted in
    again, and huge pages in the kept heap cost both (unet_256 + patch70 at 256x256: 0.93 -> 0.85
    images/s, 150 MiB more). torch reads the setting at its first CPU allocation, so it is set only
    before torch is imported; the kernel may refuse huge pages (``never``) without harm."""
    if "torch" not in sys.modules:
        os.environ.setdefault(TORCH_HUGE_PAGES, "1")
    return torch_asks_for_huge_pages()


def torch_asks_for_huge_pages() -> bool:
    """Whether this process's environment has torch ask for huge pages (see :func:`ask_torch_for_huge_pages`)."""
    return os.environ.get(TORCH_HUGE_PAGES) == "1"


def _glibc(function: str) -> Callable[..., int] | None:
    """The C library's ``function``, or None off glibc."""
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c")), function)
    except (OSError, TypeError, AttributeError):
        return None
