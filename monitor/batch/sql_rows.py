"""Reading a SELECT's rows in DataFrame chunks, as fast as the driver allows.

Postgres is read in columns (:mod:`monitor.batch.postgres_columns`: ADBC's driver, COPY
into Arrow), other databases row by row through SQLAlchemy. SQLite, the embedded default,
stays on the row path: its columns have no fixed type (a ``float`` column may hold the
text ``'fast'``, which validation dead-letters), and ADBC's SQLite driver types a column
by its first rows and fails the read at a later value of another type; SQLite is read in
the same process anyway, with no wire format to decode.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import psycopg
import sqlalchemy as sa

from monitor.batch import postgres_columns
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
            with postgres_columns.open_read(engine, query) as read:
                if read is not None:
                    yield from postgres_columns.frames(read, chunk_rows)
                    return
        yield from row_by_row(engine, query, chunk_rows)
    except (sa.exc.OperationalError, sa.exc.ProgrammingError, psycopg.Error,
            postgres_columns.Error, postgres_columns.ReadFailed) as err:
        raise SourceError(f"reading {what} failed: {first_line(err)}") from err


def row_by_row(engine: sa.Engine, query: sa.Select[Any], chunk_rows: int
               ) -> Iterator[pd.DataFrame]:
    """The rows of ``query`` fetched as the database driver's Python values."""
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True,
                                              yield_per=chunk_rows).execute(query)
        columns = list(result.keys())
        for rows in result.partitions():
            # Plain tuples: pandas probes Row objects attribute by attribute, which
            # costs more than the whole read.
            yield frame_from_records([tuple(r) for r in rows], columns=columns)
