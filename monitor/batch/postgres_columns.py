"""Reading a SELECT from Postgres in columns, through ADBC's PostgreSQL driver.

The driver runs the query as ``COPY (query) TO STDOUT (FORMAT binary)`` and decodes the
rows straight into Arrow record batches in C, where a row-by-row driver builds a Python
object for every value (bench/batch.py measures both). The query goes with its bounds
written into it: a query with bind parameters takes the driver's other path, which reads
the whole result before handing any of it on.

The frames handed on are the ones the row path (:mod:`monitor.batch.sql_rows`, psycopg's
tuples) gives for the same rows, value for value, so validation, dead letters (whose keys
hash the row as read) and every stored value stay as they were: a ``json``/``jsonb`` value
is parsed with :func:`json.loads` as psycopg parses it, an array comes as a list, a
``numeric`` as a :class:`~decimal.Decimal`, a ``text[]`` as the same lists held in Arrow
(a ``list<string>`` column, which validation and the ranking metrics read without a
Python list per row: :mod:`metrics.arrow_lists`), a timestamp with time zone in the session's
time zone, a NaN apart from NULL (:func:`monitor.event_frames.frame_from_arrow`). A result
with a column of another type (a ``date``, a ``uuid``, an ``interval`` ...) is read by the
row path instead: the columns are known before any row is read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

import adbc_driver_manager
import adbc_driver_postgresql.dbapi as adbc
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from psycopg import sql

from metrics.arrow_lists import holds_string_lists
from monitor.batch.idle_connections import IDLE
from monitor.event_frames import frame_from_arrow

# Where the driver names a column's Postgres type in its Arrow field's metadata.
TYPE_NAME_KEY = b"POSTGRESQL:type"
# Postgres types whose Arrow column pandas converts as psycopg gives them.
AS_ARROW = frozenset({"int2", "int4", "int8", "float4", "float8", "bool", "timestamp",
                      "timestamptz", "text", "varchar", "bpchar", "name", "bytea"})
# Arrays psycopg gives as lists of the same values (Arrow's conversion makes numpy arrays).
AS_LISTS = frozenset(f"_{name}" for name in AS_ARROW - {"bytea"})
# Rows of a batch: the driver cuts batches at about this many bytes of data.
BATCH_BYTES = 16 << 20
Error = adbc_driver_manager.Error  # the driver's errors (PEP 249), outages among them
LONG_DIGITS = "[0-9]{19}"  # maybe an integer past 64 bits (see _json_values)


def connection_uri(url: sa.URL) -> str:
    """The libpq URI of a SQLAlchemy Postgres URL (``postgresql+psycopg://`` and the like).

    Its parameters are percent-encoded: SQLAlchemy writes a space as ``+``, which libpq
    takes as a plus (``options=-c TimeZone=UTC``)."""
    uri = url.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
    pairs = [(name, value) for name, values in url.query.items()
             for value in ((values,) if isinstance(values, str) else values)]
    return f"{uri}?{urlencode(pairs, quote_via=quote)}" if pairs else uri


def literal_sql(engine: sa.Engine, query: sa.Select[Any]) -> str:
    """``query`` as text with its parameters written in (see the module: no bind
    parameters, so the driver takes its COPY path), each as psycopg would send it: a
    typed literal (``'2026-03-01 00:00:00+00:00'::timestamptz``), so the comparison means
    what it meant with the parameter bound."""
    compiled = query.compile(dialect=engine.dialect)
    if engine.dialect.paramstyle != "pyformat":  # psycopg's; normalize_url makes it so
        raise ValueError(f"cannot write the parameters of a {engine.dialect.driver} query "
                         "into it; use a postgresql+psycopg:// URL")
    literals = {name: sql.Literal(value).as_string(None)
                for name, value in compiled.params.items()}
    return str(compiled) % literals  # pyformat: %(name)s, and %% for a %


class ReadFailed(Exception):
    """The stream of record batches broke off; the cause says whether the connection did
    (an outage: the driver's OperationalError) or the statement (see
    :meth:`ColumnRead.record_batches`)."""


@dataclass
class ColumnRead:
    """A query under way: its record batches, the session's time zone, the connection,
    and whether the batches were read to the end (then the connection can be reused)."""

    batches: pa.RecordBatchReader
    zone: str
    connection: Any
    finished: bool = False

    def record_batches(self) -> Iterator[pa.RecordBatch]:
        """The batches; a :class:`ReadFailed` if the stream breaks off.

        The stream's error is text alone (no SQLSTATE), the same for a lost connection
        and for a statement that failed (a division by zero at the millionth row), and
        only a lost connection is worth waiting out. So the connection is asked: if it no
        longer answers, the driver's error (an OperationalError, which
        :func:`monitor.storage.outages.is_outage` takes for an outage) is the cause.
        """
        try:
            yield from self.batches
            self.finished = True
        except OSError as err:  # pyarrow raises the stream's failure as an IOError
            # "[libpq] Execution error [PGRES_FATAL_ERROR]: ERROR:  division by zero"
            message = str(err).strip().rpartition("ERROR:")[2].strip()
            try:
                with self.connection.cursor() as probe:
                    probe.execute("SELECT 1")
                    probe.fetchall()
            except Error as lost:
                raise ReadFailed(message) from lost
            raise ReadFailed(message) from err


@contextmanager
def open_read(engine: sa.Engine, query: sa.Select[Any]) -> Iterator[ColumnRead | None]:
    """The rows of ``query`` as a stream of record batches; None when a column has a type
    the frames cannot give as the row path does (read those with the row path). The
    connection is the driver's own: kept for the next read when this one read its batches
    to the end, closed otherwise (:mod:`monitor.batch.idle_connections`)."""
    uri = connection_uri(engine.url)
    connection, zone = _connect(uri)
    read = None
    try:
        with connection.cursor() as cursor:
            cursor.adbc_statement.set_options(
                **{"adbc.postgresql.batch_size_hint_bytes": str(BATCH_BYTES)})
            cursor.execute(literal_sql(engine, query))
            batches = cursor.fetch_record_batch()
            try:
                if all(_convert(field) is not None for field in batches.schema):
                    read = ColumnRead(batches, zone, connection)
                    yield read
                else:
                    yield None
            finally:
                batches.close()
    finally:
        if read is not None and read.finished:
            IDLE.give_back(uri, connection)
        else:
            connection.close()


def _connect(uri: str) -> tuple[Any, str]:
    """A connection to ``uri`` (the idle one when it still answers) and its session's
    time zone."""
    idle = IDLE.take(uri)
    if idle is not None:
        try:
            with idle.cursor() as cursor:
                return idle, _session_zone(cursor)
        except Error:  # gone stale while idle: a fresh one below
            with suppress(Error):
                idle.close()
    connection = adbc.connect(uri, autocommit=True)
    try:
        with connection.cursor() as cursor:
            return connection, _session_zone(cursor)
    except BaseException:
        connection.close()
        raise


def frames(read: ColumnRead, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The batches as DataFrames of at most ``chunk_rows`` rows (small batches joined),
    each as the row path makes it (see the module)."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in read.record_batches():
        if not batch.num_rows:
            continue
        pending.append(batch)
        held += batch.num_rows
        while held >= chunk_rows:
            table = pa.Table.from_batches(pending)
            yield to_frame(table.slice(0, chunk_rows), read.zone)
            rest = table.slice(chunk_rows)
            pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield to_frame(pa.Table.from_batches(pending), read.zone)


def to_frame(table: pa.Table, zone: str = "UTC") -> pd.DataFrame:
    """One chunk as the row path makes it: the plain columns through Arrow's own
    conversion, the others value by value as psycopg makes them."""
    table = _numbers_as_psycopg_gives_them(table)
    converters = {i: _convert(field) for i, field in enumerate(table.schema)}
    plain = [i for i, convert in converters.items() if convert is _AS_ARROW]
    frame = frame_from_arrow(table.select(plain))
    for position, convert in converters.items():
        if convert is _AS_ARROW or convert is None:
            continue
        frame.insert(position, table.schema.field(position).name,
                     convert(table.column(position)), allow_duplicates=True)
    for position, field in enumerate(table.schema):
        column = table.column(position)
        if len(column) and column.null_count == len(column):
            # pandas makes a column of Nones objects (not NaN, NaT or NA), whatever its type
            frame.isetitem(position, np.full(len(column), None, dtype=object))
        elif pa.types.is_timestamp(field.type) and field.type.tz not in (None, zone):
            frame.isetitem(position, frame.iloc[:, position].dt.tz_convert(zone).array)
    return frame


def _numbers_as_psycopg_gives_them(table: pa.Table) -> pa.Table:
    """Python's int and float are 64 bits: ``smallint`` and ``integer`` widened, and
    ``real`` values (and arrays of them) as psycopg reads them from Postgres' text: the
    shortest decimal that is the float4 (``0.1``), read as a float64 (0.1, where widening
    the float4 gives 0.10000000149011612). Arrow writes a float32 as that shortest text."""
    for position, field in enumerate(table.schema):
        type_name = _type_name(field)
        column = table.column(position)
        if type_name in ("int2", "int4"):
            column = column.cast(pa.int64())
        elif type_name == "float4":
            column = pc.cast(pc.cast(column, pa.string()), pa.float64())
        elif type_name == "_float4":
            column = pc.cast(pc.cast(column, pa.list_(pa.string())), pa.list_(pa.float64()))
        else:
            continue
        table = table.set_column(position, field.with_type(column.type), column)
    return table


# -- per column: Arrow's conversion, or the row path's value by value ----------------------

_AS_ARROW: Callable[[pa.ChunkedArray], Any] = lambda column: column  # noqa: E731


def _json_values(column: pa.ChunkedArray) -> list[Any]:
    """``json.loads`` of each text, as psycopg does, by orjson (4x faster) where its
    result is the same: it refuses what json.loads reads otherwise (a lone surrogate,
    1e400), which json.loads then reads; but it reads an integer past 64 bits as a float,
    so a text with a run of 19 digits or more goes to json.loads (found by Arrow, at C
    speed: a regular expression per text in Python cost as much as orjson itself)."""
    texts = pa.chunked_array([chunk.storage if isinstance(chunk, pa.ExtensionArray) else chunk
                              for chunk in column.chunks], pa.string())
    long_numbers = pc.match_substring_regex(texts, LONG_DIGITS).to_pylist()
    return [None if text is None else json.loads(text) if long_number else _loads(text)
            for text, long_number in zip(texts.to_pylist(), long_numbers, strict=True)]


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _decimal_values(column: pa.ChunkedArray) -> list[Any]:
    return [None if text is None else Decimal(text) for text in column.to_pylist()]


def _python_values(column: pa.ChunkedArray) -> Any:
    if holds_string_lists(column.type):  # a ranked list's items: kept in Arrow
        return pd.arrays.ArrowExtensionArray(column)
    return column.to_pylist()  # lists as lists (Arrow's own conversion makes numpy arrays)


def _convert(field: pa.Field) -> Callable[[pa.ChunkedArray], Any] | None:
    """How a column becomes the row path's values; None for a type it cannot mirror."""
    type_name = _type_name(field)
    if type_name in AS_ARROW:
        return _AS_ARROW
    if type_name in ("json", "jsonb"):
        return _json_values
    if type_name == "numeric":
        return _decimal_values
    if type_name in AS_LISTS:
        return _python_values
    return None


def _type_name(field: pa.Field) -> str:
    return (field.metadata or {}).get(TYPE_NAME_KEY, b"").decode()


def _session_zone(cursor: Any) -> str:
    """The session's TimeZone, in which psycopg gives a ``timestamptz`` (the driver gives
    it in UTC)."""
    cursor.execute("SELECT current_setting('TimeZone')")
    row = cursor.fetchone()
    return str(row[0]) if row else "UTC"
