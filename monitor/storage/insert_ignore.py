"""``INSERT ... ON CONFLICT DO NOTHING`` on Postgres and SQLite: insert rows once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection


def insert_ignore(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]],
                  key: Sequence[str]) -> int:
    """Insert the ``rows`` whose ``key`` is not taken yet; returns how many were new.

    The count comes from RETURNING, not the cursor's row count: psycopg reports none (-1,
    read as 0) for the executemany that a list of rows becomes, so a reminder queued or a
    dead letter stored on Postgres was counted as nothing.
    """
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
    added = conn.execute(statement.on_conflict_do_nothing(index_elements=list(key))
                         .returning(table.c[key[0]]), [dict(row) for row in rows])
    return len(added.all())
