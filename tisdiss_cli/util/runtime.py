"""Process-wide settings that make CPU inference and training faster.

glibc serves every allocation above its mmap threshold (128 KiB, rising to at most 32 MiB)
with fresh pages from the kernel and hands them back on free. A forward pass allocates
activations of tens of MB many times over, so each one is page-faulted and zero-filled
again: on the 2-core benchmark machine that made a 52 MB element-wise op 3-4x slower
than the same op writing into an existing buffer, and convolutions up to 2x slower
(``benchmarks/released_speed.py --no-tune-allocator`` shows the difference). Keeping
freed memory in the heap for reuse removes that cost; peak RSS stays about the same, but
memory freed after the peak is not given back to the OS until the process exits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

ENV_DISABLE = "TISDISS_NO_ALLOCATOR_TUNING"

_M_TRIM_THRESHOLD = -1  # mallopt parameters from glibc's malloc.h
_M_MMAP_MAX = -4
_tuned = False


def tune_allocator() -> bool:
    """Serve large tensors from glibc's heap and keep freed memory for reuse.

    Affects the whole process, so the library never calls it on import: the ``tisdiss``
    command line does, and so can a script. Returns whether the setting is in force
    (False off Linux/glibc, or when ``TISDISS_NO_ALLOCATOR_TUNING=1``).
    """
    global _tuned
    if _tuned:
        return True
    if os.environ.get(ENV_DISABLE, "") not in ("", "0") or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    # Never mmap (so frees stay in the heap) and never trim the heap's top back to the OS.
    _tuned = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    return _tuned
