"""Database outages: which errors waiting can cure, and waiting them out.

A stage that meets a database error must decide between waiting and giving up. A lost,
refused or timed-out connection, a server starting or shutting down, a deadlock or a
busy SQLite file end by themselves: :func:`is_outage` says so, and
:func:`call_through_outages` tries again with a capped backoff, one log line per try. A
value the database cannot hold, a schema that does not match, a wrong password or
database name do not: retrying them would only hide them, so they are raised at once.

The classifier reads the conventions of PEP 249 drivers rather than importing them (so it
stays pure): the SQLSTATE of a server's error (psycopg's ``sqlstate``), SQLite's error
name, the ``OperationalError``/``InterfaceError`` class names, SQLAlchemy's
``connection_invalidated``, and the chain of causes (a
:class:`~monitor.storage.database.DatabaseUnavailableError` or a batch ``SourceError``
keeps the driver's error in its cause or context). An error may also say it itself with a
boolean ``outage`` attribute (the streaming worker's ``StepFailed`` does).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

from monitor.errors import first_line

log = logging.getLogger(__name__)
T = TypeVar("T")

# SQLSTATE classes that end by themselves: connection exceptions, transaction rollbacks
# (deadlocks, serialization failures), insufficient resources (too many connections, disk
# full), operator intervention (shutdown, a cancelled or timed-out statement), system
# errors; and "lock not available" (a lock timeout).
OUTAGE_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58"})
OUTAGE_SQLSTATES = frozenset({"55P03"})
# A server that answers a connection with these refuses it for good (no SQLSTATE reaches
# the client before the session exists, only the message).
CONNECT_REFUSALS = ("does not exist", "authentication failed", "pg_hba.conf", "password",
                    "permission denied")
SQLITE_BUSY = frozenset({"SQLITE_BUSY", "SQLITE_LOCKED"})
DRIVER_ERRORS = frozenset({"DatabaseError", "InterfaceError"})  # PEP 249's two roots


def is_outage(err: BaseException) -> bool:
    """Whether waiting may cure ``err``: a lost, refused or timed-out connection, a server
    restarting, a deadlock, a busy SQLite file.

    >>> is_outage(ConnectionRefusedError(111, "Connection refused"))
    True
    >>> is_outage(ValueError("a string literal cannot contain NUL (0x00) characters"))
    False
    """
    chain = list(_chain(err))
    for error in chain:
        said = getattr(error, "outage", None)
        if isinstance(said, bool):
            return said
        if getattr(error, "connection_invalidated", False) is True:
            return True  # SQLAlchemy saw the connection drop
        driver = getattr(error, "orig", None)  # a SQLAlchemy DBAPIError wraps the driver's
        verdict = _driver_verdict(driver if isinstance(driver, BaseException) else error)
        if verdict is not None:
            return verdict
    return any(isinstance(error, ConnectionError | TimeoutError)
               or type(error).__name__ in ("TimeoutError", "DisconnectionError")  # SQLAlchemy's
               for error in chain)


def _chain(err: BaseException) -> Iterator[BaseException]:
    """``err`` and its causes, outermost first. ``raise ... from None`` hides the context
    from tracebacks but keeps it, and it is what the driver said."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _driver_verdict(error: BaseException) -> bool | None:
    """Outage or not for a database driver's error; None for any other error."""
    sqlite_name = getattr(error, "sqlite_errorname", None)
    if isinstance(sqlite_name, str):
        return sqlite_name in SQLITE_BUSY
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        return sqlstate[:2] in OUTAGE_SQLSTATE_CLASSES or sqlstate in OUTAGE_SQLSTATES
    names = {cls.__name__ for cls in type(error).__mro__}
    if names & {"OperationalError", "InterfaceError"}:  # no SQLSTATE: the connection itself
        message = str(error).lower()
        return not any(refusal in message for refusal in CONNECT_REFUSALS)
    return False if names & DRIVER_ERRORS else None


def describe_error(err: BaseException, limit: int = 500) -> str:
    """One short line: the error's type and the first line of its message (of a driver
    error: without the SQL and its parameters)."""
    text = f"{type(err).__name__}: {first_line(err)}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Backoff:
    """Waits between tries during an outage: ``first_seconds``, doubling, at most
    ``max_seconds`` (so the work resumes within that long of the database's return).

    >>> import itertools
    >>> list(itertools.islice(Backoff(0.5, 3.0).delays(), 5))
    [0.5, 1.0, 2.0, 3.0, 3.0]
    """

    first_seconds: float = 0.5
    max_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.first_seconds <= self.max_seconds:
            raise ValueError(f"a backoff needs 0 < first ({self.first_seconds}) <= max "
                             f"({self.max_seconds}) seconds")

    def delays(self) -> Iterator[float]:
        delay = self.first_seconds
        while True:
            yield delay
            delay = min(delay * 2, self.max_seconds)


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False


def call_through_outages(
    operation: Callable[[], T],
    what: str,
    *,
    patience_seconds: float | None = None,
    backoff: Backoff = Backoff(),
    wait: Callable[[float], bool] = _sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``operation()``, tried again while it fails with an outage.

    Logs one warning per failed try, naming ``what`` was being done and why it failed
    (first line of the driver's message: no SQL, parameters or password). An error that is
    no outage is raised at once; the last outage error once ``patience_seconds`` have
    passed since the first failure (None: never), or when ``wait`` — which waits that many
    seconds — returns True (stop: e.g. ``threading.Event.wait``).
    """
    delays = backoff.delays()
    deadline: float | None = None
    tries = 0
    while True:
        try:
            result = operation()
        except Exception as err:
            if not is_outage(err):
                raise
            tries += 1
            now = clock()
            if deadline is None and patience_seconds is not None:
                deadline = now + patience_seconds
            if deadline is not None and now >= deadline:
                log.error("%s failed: %s; the database has been unreachable for %.0f s, "
                          "giving up", what, describe_error(err), patience_seconds)
                raise
            delay = next(delays)
            if deadline is not None:
                delay = max(min(delay, deadline - now), 0.0)
            log.warning("%s failed (try %d): %s; the database looks unreachable, trying "
                        "again in %.1f s", what, tries, describe_error(err), delay)
            if wait(delay):
                raise
            continue
        if tries:
            log.warning("%s succeeded after %d failed %s: the database is back", what, tries,
                        "try" if tries == 1 else "tries")
        return result


class Reachable(Protocol):
    """A database to wait for (:class:`monitor.storage.database.Database` is one); a
    protocol, so the stages that classify outages import no SQL through this module."""

    @property
    def dialect(self) -> str: ...

    def check(self) -> None: ...


def wait_for_database(database: Reachable, stop: threading.Event,
                      backoff: Backoff = Backoff()) -> bool:
    """Connect to ``database`` at start, waiting while it is unreachable: True once it
    answers, False if ``stop`` is set first. An error waiting cannot cure (a wrong password
    or database name) is raised. A SQLite file is not waited for: it is there or not."""
    if database.dialect == "sqlite":
        return True
    try:
        call_through_outages(database.check, "connecting to the database", backoff=backoff,
                             wait=stop.wait)  # the error names it, password masked
    except Exception as err:
        if stop.is_set() and is_outage(err):
            return False
        raise
    return True


__all__ = ["Backoff", "call_through_outages", "describe_error", "is_outage",
           "wait_for_database"]
