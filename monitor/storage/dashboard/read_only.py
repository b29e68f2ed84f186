"""Read-only sessions over the results database, and the shapes rows come back in.

The connections are opened read-only (``SET SESSION CHARACTERISTICS AS TRANSACTION READ
ONLY`` on Postgres, ``PRAGMA query_only`` on SQLite): a dashboard bug cannot change the
results. Each read is one short session, rolled back at its end.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import event
from sqlalchemy.engine import Connection

from monitor.storage.database import Database
from monitor.storage.models import MetricValueRow, table_of

VALUES = table_of(MetricValueRow)


class ReadOnly:
    """Short read-only sessions over one database."""

    def __init__(self, database: Database) -> None:
        self.database = database
        _make_read_only(database)

    @contextmanager
    def session(self) -> Iterator[Connection]:
        with self.database.connect() as conn:
            try:
                yield conn
            finally:
                conn.rollback()


def _make_read_only(database: Database) -> None:
    dialect = database.dialect

    @event.listens_for(database.engine, "connect")
    def _read_only(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        if dialect == "sqlite":
            cursor.execute("PRAGMA query_only = ON")
        elif dialect == "postgresql":
            cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            dbapi_connection.commit()
        cursor.close()


def rows_frame(rows: Sequence[Any], columns: list[str]) -> pd.DataFrame:
    """``rows`` as a DataFrame of ``columns`` (object columns when there are none)."""
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    return pd.DataFrame([tuple(row) for row in rows], columns=columns)


def as_datetime(value: Any) -> datetime:
    """A correlated ``max()`` comes back untyped on SQLite: ISO text in UTC."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
