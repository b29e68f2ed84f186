"""ADBC connections kept open between reads, one idle connection per database.

Opening a connection with ADBC's PostgreSQL driver costs about 0.15 s here, where psycopg
takes 0.01 s: the driver reads the server's type catalogue each time. The batch stage
reads a table a day-long slice at a time, so a fresh connection per slice cost a quarter
of reading a week (bench/batch.py). A read takes the idle connection of its database, or
opens one, and gives it back only when it read its result to the end; a read that failed
or stopped early closes its connection, so no connection comes back in an unknown state.
A connection that went stale while idle (the server restarted, an idle timeout) fails the
first statement of the next read, which then opens a fresh one (see
:func:`monitor.batch.postgres_columns.open_read`).

As a SQLAlchemy pool does, this holds a connection to each source database between
reads (one, not a pool's five). A forked child never uses nor closes its parent's
connections (closing would end the parent's session on the shared socket); idle
connections are closed when the process exits.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from typing import Any


class IdleConnections:
    """At most one idle connection per URI; thread-safe (a scheduler reads in threads)."""

    def __init__(self) -> None:
        self._idle: dict[str, Any] = {}
        self._inherited: list[Any] = []  # a parent's, after a fork: never used nor closed
        self._lock = threading.Lock()

    def take(self, uri: str) -> Any | None:
        """The idle connection to ``uri`` (no longer idle: the caller's), or None."""
        with self._lock:
            return self._idle.pop(uri, None)

    def give_back(self, uri: str, connection: Any) -> None:
        """Keep ``connection`` for the next read of ``uri`` (closed if one is kept)."""
        with self._lock:
            if uri not in self._idle:
                self._idle[uri] = connection
                return
        connection.close()

    def close_all(self) -> None:
        with self._lock:
            idle, self._idle = list(self._idle.values()), {}
        for connection in idle:
            with contextlib.suppress(Exception):  # at exit, a dead connection is no matter
                connection.close()

    def forget_after_fork(self) -> None:
        self._inherited.extend(self._idle.values())
        self._idle = {}
        self._lock = threading.Lock()


IDLE = IdleConnections()
atexit.register(IDLE.close_all)
os.register_at_fork(after_in_child=IDLE.forget_after_fork)
