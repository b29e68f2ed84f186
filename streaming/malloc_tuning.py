"""glibc's malloc told to hand large freed buffers back to the system at once.

glibc serves an allocation of at least ``M_MMAP_THRESHOLD`` bytes (128 KB at first) with
a mapping of its own, unmapped when freed. But the threshold is dynamic: freeing such a
mapping raises it to that size (up to 32 MB), so from then on buffers of a micro-batch's
size (message values, decoded columns, pickles crossing the pipe: 1-8 MB) come from the
heap, where a freed one stays resident until the top of the heap is free too
(``malloc_trim`` returns whole free pages only). Setting the threshold fixes it and turns
the dynamic adjustment off: buffers of 1 MB or more are mapped and unmapped every time
(a few microseconds a call, against a micro-batch's tens of milliseconds).
"""

from __future__ import annotations

import ctypes
import sys

M_MMAP_THRESHOLD = -3  # mallopt's parameter number (glibc's malloc.h)
MMAP_THRESHOLD_BYTES = 1024 * 1024


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Set glibc's mmap threshold to ``threshold`` bytes for this process (and what it
    forks after); whether it was set (False without glibc: musl, macOS, Windows)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl has no libc.so.6 nor mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))
