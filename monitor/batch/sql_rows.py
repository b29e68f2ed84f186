"""Reading a SELECT's rows in DataFrame chunks, as fast as the driver allows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import psycopg
import sqlalchemy as sa

from monitor.errors import MonitorError, first_line
from monitor.event_frames import frame_from_records


class SourceError(MonitorError):
    """A source cannot be read as the stream declares it; the message says what to fix."""


def read_rows(engine: sa.Engine, query: sa.Select[Any], chunk_rows: int, what: str
              ) -> Iterator[pd.DataFrame]:
    """The rows of ``query`` in chunks of at most ``chunk_rows``; ``what`` names the source
    in errors."""
    try:
        if engine.dialect.name == "postgresql":
            yield from _postgres_rows(engine, query, chunk_rows)
            return
        with engine.connect() as connection:
            result = connection.execution_options(stream_results=True,
                                                  yield_per=chunk_rows).execute(query)
            columns = list(result.keys())
            for rows in result.partitions():
                # Plain tuples: pandas probes Row objects attribute by attribute, which
                # costs more than the whole read.
                yield frame_from_records([tuple(r) for r in rows], columns=columns)
    except (sa.exc.OperationalError, sa.exc.ProgrammingError, psycopg.Error) as err:
        raise SourceError(f"reading {what} failed: {first_line(err)}") from err


def _postgres_rows(engine: sa.Engine, query: sa.Select[Any], chunk_rows: int
                   ) -> Iterator[pd.DataFrame]:
    """Rows from a psycopg server-side cursor, as plain tuples.

    Measured in bench/batch.py: SQLAlchemy's Row objects cost about a third of the whole
    read; the driver's tuples go straight into the DataFrame.
    """
    compiled = query.compile(dialect=engine.dialect)
    raw = engine.raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    try:
        with driver.cursor(name="monitor_batch_source") as cursor:
            cursor.itersize = chunk_rows
            cursor.execute(str(compiled), compiled.params)
            columns = [column.name for column in cursor.description or ()]
            while rows := cursor.fetchmany(chunk_rows):
                yield frame_from_records(rows, columns=columns)  # NaN apart from NULL
    finally:
        if driver.broken:  # the connection was lost (a restart): the pool must not roll it
            raw.invalidate()  # back, which fails again and logs a traceback
        raw.close()
