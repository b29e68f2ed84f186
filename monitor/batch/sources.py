"""Where the batch stage reads a stream's events: a SQL table, or files.

Both yield raw DataFrame chunks for a half-open event-time range ``[since, until)``; the
schema validation and the engine come after, exactly as in research. For SQL tables the
time filter is pushed into the query, so only the rows of the range are read, in chunks.
Files can also hold rows that do not parse at all (see :class:`UnparsedRows`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import pandas as pd
import sqlalchemy as sa

from monitor.batch.parquet_scan import ParquetScan, scan_for
from monitor.batch.sql_rows import SourceError, read_rows
from monitor.errors import first_line
from monitor.schema import parse_times
from monitor.sources.files import no_rejects, read_events, resolve_paths
from monitor.spec import StreamSpec
from monitor.string_lists import LIST_OF_STR

DEFAULT_CHUNK_ROWS = 100_000


class EventSource(Protocol):
    def check(self) -> None:
        """Fail early, with a clear message, if the source does not fit the stream."""

    def chunks(self, since: pd.Timestamp, until: pd.Timestamp) -> Iterator[pd.DataFrame]:
        """Raw events with event time in ``[since, until)``, in chunks."""

    def earliest(self) -> pd.Timestamp | None:
        """The earliest event time in the source (None when it is empty)."""


@runtime_checkable
class UnparsedRows(Protocol):
    """A source whose reader meets rows that are no event at all (a file's malformed JSON
    line, a CSV row with the wrong number of fields, bytes that are not UTF-8 text),
    which validation never sees; the batch stage stores them as dead letters."""

    def unparsed(self, since: pd.Timestamp, until: pd.Timestamp) -> pd.DataFrame:
        """The rows that did not parse to store with the range ``[since, until)``:
        columns ``row`` (where: ``file:line``), ``reason`` and ``excerpt``."""


@dataclass
class TableSource:
    """A table in a SQL database, read with the time filter in the WHERE clause."""

    engine: sa.Engine
    stream: StreamSpec
    chunk_rows: int = DEFAULT_CHUNK_ROWS

    def __post_init__(self) -> None:
        if not self.stream.table:
            raise SourceError(f"stream {self.stream.name!r} declares no table=")
        self._table: sa.Table | None = None

    @property
    def table_name(self) -> str:
        assert self.stream.table
        return self.stream.table

    def check(self) -> None:
        self._reflect()

    def reads_ahead(self) -> bool:
        """Postgres is read in columns, decoded in C (see :mod:`monitor.batch.read_ahead`);
        other databases row by row, in Python."""
        return self.engine.dialect.name == "postgresql"

    def chunks(self, since: pd.Timestamp, until: pd.Timestamp) -> Iterator[pd.DataFrame]:
        yield from read_rows(self.engine, self.range_query(since, until), self.chunk_rows,
                             f"table {self.table_name!r}")

    def range_query(self, since: pd.Timestamp, until: pd.Timestamp) -> sa.Select[Any]:
        """The SELECT of the stream's columns of the rows of ``[since, until)``."""
        table = self._reflect()
        schema = self.stream.schema
        time_column = table.c[schema.time]
        low, high = _time_bounds(time_column, since, until)
        present = [c for c in schema.names if c in table.c]
        return sa.select(*(table.c[name] for name in present)).where(
            time_column >= low, time_column < high
        )

    def earliest(self) -> pd.Timestamp | None:
        table = self._reflect()
        column = table.c[self.stream.schema.time]
        with self.engine.connect() as connection:
            first = connection.execute(sa.select(sa.func.min(column))).scalar()
        if first is None:
            return None
        if isinstance(column.type, sa.DateTime):
            stamp = pd.Timestamp(first)
            return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        return pd.Timestamp(int(first), unit="ms", tz="UTC")

    def _reflect(self) -> sa.Table:
        if self._table is not None:
            return self._table
        try:
            table = sa.Table(self.table_name, sa.MetaData(), autoload_with=self.engine)
        except sa.exc.NoSuchTableError:
            raise SourceError(
                f"source table {self.table_name!r} of stream {self.stream.name!r} does not "
                f"exist in {self.engine.url.render_as_string(hide_password=True)}; load it "
                "or point the stream's table= at the right one"
            ) from None
        except sa.exc.OperationalError as err:
            raise SourceError(
                f"cannot reach the source database "
                f"{self.engine.url.render_as_string(hide_password=True)}: {first_line(err)}"
            ) from None
        _check_columns(table, self.stream)
        self._table = table
        return table


@dataclass
class FileSource:
    """Event files (a path or glob): Parquet scanned with the time filter pushed down,
    other files filtered to the range after reading.

    Parquet files of one schema whose time column is a timestamp or epoch milliseconds
    are read through :mod:`monitor.batch.parquet_scan`: only the range's row groups and
    rows, in record batches of at most ``chunk_rows``. JSON lines and CSV files (and
    Parquet the scan cannot filter) are read whole and filtered after their times are
    parsed, as the files reader has to see every line to report the ones that do not
    parse.

    Rows whose event time cannot be read belong to no range, nor do the lines that do not
    parse at all (:meth:`unparsed`, which have no time); both are handed on with the
    first range read (and again when that range is read again: a retried slice), so the
    batch stage dead-letters them once per run, with the slice that stores them (keyed,
    so a later run that hands them on again stores nothing new).
    """

    stream: StreamSpec
    chunk_rows: int = DEFAULT_CHUNK_ROWS

    def __post_init__(self) -> None:
        self._timeless_range: tuple[pd.Timestamp, pd.Timestamp] | None = None
        self._unparsed: pd.DataFrame | None = None  # of the timeless range's last read

    def check(self) -> None:
        if not self.stream.files:
            raise SourceError(f"stream {self.stream.name!r} declares no files=")

    def reads_ahead(self) -> bool:
        """Parquet the scan can filter is read by Arrow, in C (see
        :mod:`monitor.batch.read_ahead`); other files are read whole, in Python."""
        return self.stream.files is not None and self._scan() is not None

    def chunks(self, since: pd.Timestamp, until: pd.Timestamp) -> Iterator[pd.DataFrame]:
        assert self.stream.files
        timeless = self._holds_timeless(since, until)
        scan = self._scan()
        if scan is not None:
            if timeless:
                self._unparsed = no_rejects()  # Parquet has no line that does not parse
            yield from scan.frames(since, until, timeless=timeless, batch_rows=self.chunk_rows)
            return
        read = read_events(self.stream.files)
        if timeless:
            self._unparsed = read.rejects
        events = read.events
        if events.empty or self.stream.time not in events.columns:
            yield events
            return
        times = parse_times(events[self.stream.time])
        keep = ((times >= since) & (times < until)).to_numpy().copy()
        if timeless:
            keep |= times.isna().to_numpy()
        yield events[keep].reset_index(drop=True)

    def unparsed(self, since: pd.Timestamp, until: pd.Timestamp) -> pd.DataFrame:
        """The lines of the files that did not parse, for the first range read (else
        none): as the reader rejected them when :meth:`chunks` read that range."""
        if not self._holds_timeless(since, until):
            return no_rejects()
        if self._unparsed is None:  # asked before the range's chunks were read
            assert self.stream.files
            self._unparsed = (no_rejects() if self._scan() is not None
                              else read_events(self.stream.files).rejects)
        return self._unparsed

    def earliest(self) -> pd.Timestamp | None:
        assert self.stream.files
        scan = self._scan()
        if scan is not None:
            return scan.earliest()
        events = read_events(self.stream.files).events
        if events.empty or self.stream.time not in events.columns:
            return None
        first = parse_times(events[self.stream.time]).min()
        return None if pd.isna(first) else pd.Timestamp(first)

    def _scan(self) -> ParquetScan | None:
        """The files as one Parquet scan, when they can be (looked at on every read: the
        glob may match new files)."""
        assert self.stream.files
        return scan_for(resolve_paths(self.stream.files), self.stream.time)

    def _holds_timeless(self, since: pd.Timestamp, until: pd.Timestamp) -> bool:
        """Whether ``[since, until)`` takes the rows with no time: the first range read."""
        if self._timeless_range is None:
            self._timeless_range = (since, until)
        return self._timeless_range == (since, until)


def _check_columns(table: sa.Table, stream: StreamSpec) -> None:
    schema = stream.schema
    if schema.time not in table.c:
        raise SourceError(
            f"source table {table.name!r} has no event-time column {schema.time!r} "
            f"(stream {stream.name!r}); its columns are {', '.join(table.c.keys())}"
        )
    for field in schema.fields:
        if field.name not in table.c:
            if not field.nullable:
                raise SourceError(
                    f"source table {table.name!r} lacks column {field.name!r}, which stream "
                    f"{stream.name!r} requires"
                )
            continue
        sql_type = table.c[field.name].type
        if not _type_fits(field.type, sql_type):
            raise SourceError(
                f"source table {table.name!r} column {field.name!r} is {sql_type} but stream "
                f"{stream.name!r} declares it {field.type}; cast it in a view or fix the schema"
            )
    time_type = table.c[schema.time].type
    if not isinstance(time_type, sa.DateTime | sa.Integer | sa.Numeric):
        raise SourceError(
            f"source table {table.name!r} event-time column {schema.time!r} is {time_type}; "
            "it must be a timestamp or epoch milliseconds"
        )


def _type_fits(declared: str, sql_type: sa.types.TypeEngine) -> bool:
    if declared in ("float", "int"):
        return isinstance(sql_type, sa.Integer | sa.Numeric | sa.Float)
    if declared == "bool":
        return isinstance(sql_type, sa.Boolean | sa.Integer)
    if declared == LIST_OF_STR:  # an array, or JSON (an array as text included)
        return isinstance(sql_type, sa.ARRAY | sa.JSON | sa.String)
    return isinstance(sql_type, sa.String | sa.Enum | sa.Boolean | sa.Integer)


def _time_bounds(
    column: sa.Column, since: pd.Timestamp, until: pd.Timestamp
) -> tuple[object, object]:
    if isinstance(column.type, sa.DateTime):
        if column.type.timezone:
            return since.to_pydatetime(), until.to_pydatetime()
        return since.tz_convert(None).to_pydatetime(), until.tz_convert(None).to_pydatetime()
    return since.value // 1_000_000, until.value // 1_000_000  # epoch milliseconds


def source_for(stream: StreamSpec, engine: sa.Engine | None) -> EventSource:
    """The batch source a stream declares: its table or query when there is a database,
    else its files."""
    if stream.table and engine is not None:
        return TableSource(engine, stream)
    if stream.query and engine is not None:
        from monitor.batch.query_source import QuerySource

        return QuerySource(engine, stream)
    if stream.files:
        return FileSource(stream)
    raise SourceError(
        f"stream {stream.name!r} has no batch source: declare table= or query= (with a source "
        "database) or files= in mon.stream()"
    )


__all__ = ["EventSource", "FileSource", "SourceError", "TableSource", "UnparsedRows",
           "source_for"]
