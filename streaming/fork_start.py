"""Whether a worker may start a processor's process by fork now, and why not when it may not.

Why fork: the processor's process needs the libraries the worker has imported (numpy,
pandas, scipy, pyarrow, SQLAlchemy, the app: about 200 MB once imported). Started by
spawn, it imports them again into memory of its own; forked once the worker has them,
it shares their pages with the worker, copy on write, until either process writes to
one (see bench/stream.py's figures, pages counted once and PSS). ``gc.freeze()`` just
before the fork keeps both processes' garbage collectors from writing to the headers of
the objects that exist then, which would copy their pages for nothing.

Why it is sometimes refused: a fork copies the calling thread only. A lock that another
Python thread held at that moment (logging's, the import lock, a pool's) stays held for
ever in the child, and a socket open then belongs to both processes (a database
connection written by two processes is garbage to the server). So a processor is forked
only while this process runs one Python thread, no event loop in it, and has no socket
open but the pipes to processors it started; otherwise it is spawned, as before, with
the reason logged (tests that build processors inside a busy process take that path).
Only Linux forks: ``PR_SET_PDEATHSIG``, which ends the child with the worker, is Linux's.

Native threads are not refused: numpy's and scipy's OpenBLAS and pyarrow's jemalloc start
threads of their own as they are imported, so once the libraries are in, /proc/self/task
never has a single entry. Both libraries make a fork safe themselves with
``pthread_atfork`` handlers: OpenBLAS stops its threads before the fork and starts them
again when next used, jemalloc takes its locks across the fork and resets its state in
the child (tests/streaming/test_fork_start.py: the child of such a process has one
thread and a working BLAS; the parent's OpenBLAS threads are gone after the fork until a
matrix product starts them again).
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Iterable


def fork_refusal(own_pipes: Iterable[int] = ()) -> str | None:
    """Why forking a processor now would be unsafe, or None if it is safe (``own_pipes``:
    the descriptors of the pipes to processors this process started, which a child may
    inherit: it closes them).

    >>> fork_refusal() is None or isinstance(fork_refusal(), str)
    True
    """
    if not sys.platform.startswith("linux"):
        return f"fork is used on Linux only (this is {sys.platform})"
    threads = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if threading.current_thread() is not threading.main_thread():
        return "not called from the main thread"
    if threads:
        return f"{len(threads)} Python thread(s) besides the main one run ({', '.join(threads)})"
    if _running_loop():
        return "an event loop runs in this thread"
    sockets = open_sockets() - set(own_pipes)
    if sockets:
        return f"{len(sockets)} socket(s) are open (descriptors {sorted(sockets)})"
    return None


def open_sockets() -> set[int]:
    """This process's file descriptors that are sockets (Linux: /proc/self/fd)."""
    found = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                found.add(int(name))
        except OSError:  # the descriptor listdir itself used, closed since
            continue
    return found


def _running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
