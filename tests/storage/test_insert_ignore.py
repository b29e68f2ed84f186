"""insert_ignore inserts each key once and counts the rows it added, on both databases.

psycopg reports no row count for an executemany; before the count came from RETURNING,
every call on Postgres said 0, so a dispatcher's report said no reminder was queued."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, select

from monitor.storage.insert_ignore import insert_ignore


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_counts_only_the_rows_it_added(kind: str, request: pytest.FixtureRequest) -> None:
    engine = create_engine(request.getfixturevalue(f"{kind}_url"))
    metadata = MetaData()
    table = Table("insert_ignore_probe", metadata,
                  Column("a", Integer, primary_key=True), Column("b", String, primary_key=True),
                  Column("note", String))
    metadata.drop_all(engine)
    metadata.create_all(engine)
    try:
        with engine.begin() as conn:
            first = insert_ignore(conn, table, [{"a": 1, "b": "x", "note": "first"},
                                                {"a": 1, "b": "y", "note": "first"}], ["a", "b"])
            again = insert_ignore(conn, table, [{"a": 1, "b": "y", "note": "again"},
                                                {"a": 2, "b": "y", "note": "again"},
                                                {"a": 3, "b": "y", "note": "again"}], ["a", "b"])
            nothing = insert_ignore(conn, table, [{"a": 1, "b": "x", "note": "third"}],
                                    ["a", "b"])
            stored = conn.execute(select(table).order_by(table.c.a, table.c.b)).all()
        assert (first, again, nothing) == (2, 2, 0)
        assert [tuple(row) for row in stored] == [(1, "x", "first"), (1, "y", "first"),
                                                  (2, "y", "again"), (3, "y", "again")]
    finally:
        metadata.drop_all(engine)
        engine.dispose()
