"""Engines and connections, with an error that says where the database is and what to do.

:class:`Database` wraps a SQLAlchemy engine set up for this platform:

- Postgres through psycopg 3, session time zone UTC, a connect timeout, pre-ping (a
  scheduler outlives server restarts);
- SQLite with foreign keys on, WAL (the dashboard reads while a stage writes) and real
  transactions: the stdlib driver otherwise commits DDL on its own and never emits
  BEGIN before a SELECT, so a window written "in one transaction" would not be.

Failing to connect raises :class:`DatabaseUnavailableError`, which names the host and
port (or the SQLite file) with the password masked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import Connection, make_url

from monitor.errors import MonitorError
from monitor.storage.database_url import (
    DATABASE_URL_ENV,
    describe_target,
    mask_text,
    mask_url,
    normalize_url,
    url_secrets,
)

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10


class DatabaseUnavailableError(MonitorError, ConnectionError):
    """The database cannot be reached or opened. The message never holds a password."""

    def __init__(self, display_url: str, target: str, problem: str, hint: str) -> None:
        self.display_url = display_url
        self.target = target
        self.problem = problem
        super().__init__(f"cannot connect to {target} ({display_url}): {problem}\n{hint}")


class Database:
    """One database: an engine plus connections whose failures explain themselves."""

    def __init__(self, url: str, *, echo: bool = False, pre_ping: bool = True) -> None:
        """``pre_ping`` False saves a round trip per connection checkout, for a caller
        that retries a failed transaction anyway (the failure drops the stale connection
        from the pool, the retry gets a fresh one): the streaming worker."""
        self.url = normalize_url(url)
        self.display_url = mask_url(self.url)
        self._secrets = url_secrets(self.url)
        self.engine = _create_engine(self.url, echo=echo, pre_ping=pre_ping)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection; statements auto-begin a transaction the caller commits."""
        with self._open() as conn:
            yield conn

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection in one transaction: committed on success, rolled back on error."""
        with self._open() as conn, conn.begin():
            yield conn

    def check(self) -> None:
        """Connect once, so a wrong URL fails now and clearly rather than mid-run."""
        with self.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    def dispose(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.dispose()

    def __repr__(self) -> str:
        return f"Database({self.display_url!r})"

    def _open(self) -> Connection:
        try:
            return self.engine.connect()
        except (exc.OperationalError, exc.InterfaceError) as err:
            raise self._unavailable(err) from None

    def _unavailable(self, err: exc.DBAPIError) -> DatabaseUnavailableError:
        problem = " ".join(str(err.orig).split()) if err.orig is not None else type(err).__name__
        problem = mask_text(problem, self._secrets).rstrip(". ")
        target = describe_target(self.url)
        if self.dialect == "sqlite":
            hint = ("Check that its directory exists and is writable, or set "
                    f"{DATABASE_URL_ENV} (or --database-url) to another file.")
        else:
            hint = (f"Check that the server is running and reachable, and that "
                    f"{DATABASE_URL_ENV} (or --database-url) points at it.")
        log.debug("database unavailable: %s (%s): %s", target, self.display_url, problem)
        return DatabaseUnavailableError(self.display_url, target, problem, hint)


def _create_engine(url: str, *, echo: bool, pre_ping: bool) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, echo=echo)
        _make_sqlite_transactional(engine)
        return engine
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql":
        if "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
        if "options" not in parsed.query:
            connect_args["options"] = "-c timezone=UTC"
    return create_engine(url, echo=echo, pool_pre_ping=pre_ping, connect_args=connect_args)


def _make_sqlite_transactional(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")
