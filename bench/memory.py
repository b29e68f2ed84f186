"""Memory of a process and its children, as bench/stream.py compares the worker's to a bare
Faust agent's.

A worker is two processes that import the same libraries (numpy, pandas, scipy,
SQLAlchemy: about 100 MB of mapped library code and data). Summing their VmRSS counts
those pages twice, though the kernel holds them once (the same files' page cache).
:func:`distinct_mb` counts each physical page the processes have resident once, from
``/proc/PID/pagemap`` (page frame numbers need root; without them it returns None and
only the VmRSS sum is left). Both figures are reported: the sum is what ``ps`` adds up,
the distinct pages are what the machine spends. :func:`pss_mb` is the usual measure of
memory shared between processes: each page divided among the processes that map it
(Pss of /proc/PID/smaps_rollup), summed over the family; a library page also mapped by
processes outside the family counts for its share only, so it can be below the distinct
pages. A worker whose processor is forked shares the pages the two have not written
since the fork: its VmRSS sum counts them twice, the other two once.

>>> import os
>>> own = distinct_mb(os.getpid())
>>> own is None or 0 < own <= rss_mb(os.getpid()) + 1
True
>>> 0 < pss_mb(os.getpid()) <= rss_mb(os.getpid()) + 1
True
"""

from __future__ import annotations

import numpy as np

PAGE = 4096
_PRESENT = np.uint64(1 << 63)
_PFN = np.uint64((1 << 55) - 1)


def family(pid: int) -> list[int]:
    """``pid`` and its descendants: the worker runs each processor in a child process."""
    found = [pid]
    for parent in found:
        try:
            with open(f"/proc/{parent}/task/{parent}/children") as children:
                found.extend(int(child) for child in children.read().split())
        except OSError:
            continue
    return found


def rss_mb(pid: int, field: str = "VmRSS") -> float | None:
    """``field`` of /proc/PID/status summed over the process and its children (None once
    it is gone)."""
    total = None
    for member in family(pid):
        value = status_mb(member, field)
        if value is not None:
            total = (total or 0.0) + value
    return total


def status_mb(pid: int, field: str = "VmRSS") -> float | None:
    """``field`` of one process's /proc/PID/status, in MB."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def pss_mb(pid: int) -> float | None:
    """Proportional set size of the process and its children, in MB (None once gone):
    each resident page divided by the number of processes mapping it."""
    total = None
    for member in family(pid):
        value = own_pss_mb(member)
        if value is not None:
            total = (total or 0.0) + value
    return total


def own_pss_mb(pid: int) -> float | None:
    """Proportional set size of one process, in MB (None once gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def distinct_mb(pid: int) -> float | None:
    """Resident memory of the process and its children with every physical page counted
    once; None when page frame numbers cannot be read (not root) or it is gone."""
    frames: list[np.ndarray] = []
    for member in family(pid):
        found = _frames(member)
        if found is None:
            return None
        frames.append(found)
    if not frames:
        return None
    return len(np.unique(np.concatenate(frames))) * PAGE / 2**20


def _frames(pid: int) -> np.ndarray | None:
    """The page frame numbers of the process's resident pages."""
    found = []
    try:
        with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb") as pagemap:
            for line in maps:
                span = line.split(maxsplit=1)[0]
                start, end = (int(bound, 16) for bound in span.split("-"))
                if start >= 1 << 47:  # [vsyscall]: not in the pagemap
                    continue
                pagemap.seek(start // PAGE * 8)
                entries = np.frombuffer(pagemap.read((end - start) // PAGE * 8),
                                        dtype=np.uint64)
                present = entries[(entries & _PRESENT) != 0] & _PFN
                found.append(present)
    except OSError:
        return None
    frames = np.concatenate(found) if found else np.empty(0, dtype=np.uint64)
    if len(frames) and not frames.any():  # frame numbers hidden (not root)
        return None
    return frames
