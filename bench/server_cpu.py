"""CPU seconds spent by the local Postgres server's processes, to set a client's CPU
beside the server's when a bench reads from it.

Every process whose command is ``postgres`` counts (the backend serving the bench's
connection, and the checkpointer, WAL writer and others writing what it stores), with
the time of the children they have reaped: a backend that ends with its connection
leaves its seconds in the postmaster's. Summed from ``/proc/PID/stat``, so it works only
on Linux, for a server on this machine; where that is not so it answers None, and a
bench prints no server figure.
"""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def postgres_cpu_seconds() -> float | None:
    """User and system CPU seconds of every running ``postgres`` process so far (None
    without /proc, or with no such process)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    ticks, found = 0, False
    for stat in proc.glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended meanwhile
            continue
        name_end = text.rfind(")")
        if text[text.find("(") + 1:name_end] != "postgres":
            continue
        fields = text[name_end + 2:].split()
        # utime, stime, cutime and cstime (stat's fields 14 to 17)
        ticks += sum(int(value) for value in fields[11:15])
        found = True
    return ticks / TICKS if found else None
