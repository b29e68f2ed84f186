"""streaming.malloc_tuning: with glibc's mmap threshold fixed, a freed large buffer goes
back to the system even after a larger one raised glibc's dynamic threshold (which kept
buffers of a micro-batch's size resident in the worker's heap); without glibc, nothing."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest

import streaming.malloc_tuning
from streaming.malloc_tuning import fix_mmap_threshold

# In a fresh interpreter (malloc's state is per process): free a 6 MB buffer (which
# raises the dynamic threshold to 6 MB), then allocate, touch and free 3 MB; the
# resident growth it leaves behind, in KB.
LEFT_RESIDENT = textwrap.dedent("""
    import ctypes, json, os, sys
    from streaming.malloc_tuning import fix_mmap_threshold
    fixed = fix_mmap_threshold() if sys.argv[1] == "fix" else None
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    def resident_kb():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    libc.free(libc.malloc(6 << 20))
    before = resident_kb()
    buffer = libc.malloc(3 << 20)
    ctypes.memset(buffer, 1, 3 << 20)
    libc.free(buffer)
    print(json.dumps({"fixed": fixed, "left_kb": resident_kb() - before}))
""")


def left_resident(mode: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", LEFT_RESIDENT, mode], check=True,
                          capture_output=True, text=True, timeout=60)
    found: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])  # the child's JSON
    return found


def glibc() -> bool:
    try:
        ctypes.CDLL("libc.so.6").mallopt  # noqa: B018
    except (OSError, AttributeError):
        return False
    return sys.platform.startswith("linux")


@pytest.mark.skipif(not glibc(), reason="glibc's malloc only")
def test_a_freed_large_buffer_leaves_the_process_once_the_threshold_is_fixed() -> None:
    dynamic = left_resident("leave")
    fixed = left_resident("fix")
    assert fixed["fixed"] is True
    assert int(dynamic["left_kb"]) > 2_048  # the 3 MB stayed in the heap (the test can fail)
    assert int(fixed["left_kb"]) < 512


def test_without_glibc_it_sets_nothing_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_glibc(name: str) -> object:
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(streaming.malloc_tuning.ctypes, "CDLL", no_glibc)
    assert fix_mmap_threshold() is False
    monkeypatch.setattr(streaming.malloc_tuning.sys, "platform", "darwin")
    assert fix_mmap_threshold() is False
