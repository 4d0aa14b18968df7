"""Host memory: freed memory kept in the process (glibc), for the trainer and the commands that
run translators, and handed back on request (to measure what comes next). Imports no torch.

glibc hands a freed block larger than its mmap threshold (32 MiB at most, raised as it goes) back
to the kernel at once, so a process that allocates and frees the same large tensors over and over
(a training step; a translator's batches: unet_256 at batch 8 in bf16 makes 16 MiB activations)
faults in fresh zero-filled pages for them every time. Measured with ``zoo translate --mode eval
-b 8 --precision bf16`` on 48 images of 256x256 (2-core CPU): the forward passes took 2.25-2.29 s
with memory handed back and 1.17-1.95 s with it kept; the peak resident set grew from 1.08 to
1.17-1.25 GB. At batch 1 in fp32 the activations stay below the threshold, so nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


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


def _glibc(function: str) -> Callable[..., int] | None:
    """The C library's ``function``, or None off glibc."""
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c")), function)
    except (OSError, TypeError, AttributeError):
        return None
