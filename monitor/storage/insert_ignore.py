"""``INSERT ... ON CONFLICT DO NOTHING`` on Postgres and SQLite: insert rows once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection


def insert_ignore(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]],
                  key: Sequence[str]) -> int:
    """Insert the ``rows`` whose ``key`` is not taken yet; returns how many were new."""
    if not rows:
        return 0
    dialect = conn.dialect.name
    if dialect == "postgresql":
        statement: Any = postgresql.insert(table)
    elif dialect == "sqlite":
        statement = sqlite.insert(table)
    else:
        raise NotImplementedError(f"insert_ignore is written for postgresql and sqlite, not "
                                  f"{dialect}")
    result = conn.execute(statement.on_conflict_do_nothing(index_elements=list(key)),
                          [dict(row) for row in rows])
    return max(result.rowcount, 0)
