"""ADBC connections kept open between reads, up to two idle connections per database.

Opening a connection with ADBC's PostgreSQL driver costs about 0.15 s here, where psycopg
takes 0.01 s: the driver reads the server's type catalogue each time. The batch stage
reads a table a day-long slice at a time, so a fresh connection per slice cost a quarter
of reading a week (bench/batch.py). A read takes the idle connection of its database, or
opens one, and gives it back only when it read its result to the end; a read that failed
or stopped early closes its connection, so no connection comes back in an unknown state.
A connection that went stale while idle (the server restarted, an idle timeout) fails the
first statement of the next read, which then opens a fresh one (see
:func:`monitor.batch.postgres_columns.open_read`).

Two, as a run reads the next slice on a thread of its own (:mod:`monitor.batch.read_ahead`)
while a metric joined to labels reads its labels on the run's thread, often from the
same database: with one idle connection, each slice would open a connection for one of
the two. As a SQLAlchemy pool does, this holds connections to each source database
between reads (two at most, not a pool's five). A forked child never uses nor closes its parent's
connections (closing would end the parent's session on the shared socket); idle
connections are closed when the process exits.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from typing import Any

MAX_IDLE = 2  # per URI (see the module)


class IdleConnections:
    """At most ``MAX_IDLE`` idle connections per URI; thread-safe (a scheduler reads in
    threads, a run reads ahead on one)."""

    def __init__(self) -> None:
        self._idle: dict[str, list[Any]] = {}
        self._inherited: list[Any] = []  # a parent's, after a fork: never used nor closed
        self._lock = threading.Lock()

    def take(self, uri: str) -> Any | None:
        """The idle connection to ``uri`` given back last (no longer idle: the caller's),
        or None."""
        with self._lock:
            idle = self._idle.get(uri)
            return idle.pop() if idle else None

    def give_back(self, uri: str, connection: Any) -> None:
        """Keep ``connection`` for the next read of ``uri`` (closed if ``MAX_IDLE`` are
        kept)."""
        with self._lock:
            idle = self._idle.setdefault(uri, [])
            if len(idle) < MAX_IDLE:
                idle.append(connection)
                return
        connection.close()

    def close_all(self) -> None:
        with self._lock:
            idle = [c for kept in self._idle.values() for c in kept]
            self._idle = {}
        for connection in idle:
            with contextlib.suppress(Exception):  # at exit, a dead connection is no matter
                connection.close()

    def forget_after_fork(self) -> None:
        self._inherited.extend(c for kept in self._idle.values() for c in kept)
        self._idle = {}
        self._lock = threading.Lock()


IDLE = IdleConnections()
atexit.register(IDLE.close_all)
os.register_at_fork(after_in_child=IDLE.forget_after_fork)
