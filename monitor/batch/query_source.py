"""A SQL query as a batch source: the query is wrapped, and the time filter applied
around it, so a join or a view-like SELECT feeds the batch stage like a table."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from monitor.batch.sql_rows import SourceError, read_rows
from monitor.errors import first_line
from monitor.spec import StreamSpec

DEFAULT_CHUNK_ROWS = 100_000
SAMPLE_ROWS = 100


@dataclass
class QuerySource:
    """``SELECT ... FROM (query) AS source WHERE ts >= :since AND ts < :until``.

    A query's column types cannot be reflected, so :meth:`check` reads a sample and fails
    when a column gives no value of the declared type at all; single bad rows go to dead
    letters like any other source's.
    """

    engine: sa.Engine
    stream: StreamSpec
    chunk_rows: int = DEFAULT_CHUNK_ROWS

    def __post_init__(self) -> None:
        if not self.stream.query:
            raise SourceError(f"stream {self.stream.name!r} declares no query=")
        columns: list[sa.ColumnClause[Any]] = [sa.column(n) for n in self.stream.schema.names]
        self._source = sa.text(self.stream.query).columns(*columns).subquery("source")
        self._epoch_millis: bool | None = None

    @property
    def _what(self) -> str:
        return f"the query of stream {self.stream.name!r}"

    def check(self) -> None:
        sample = pd.concat(list(read_rows(self.engine, sa.select(self._source).limit(SAMPLE_ROWS),
                                          SAMPLE_ROWS, self._what)) or [pd.DataFrame()])
        if sample.empty:
            return
        first_time = sample[self.stream.time].dropna()
        self._epoch_millis = bool(len(first_time)) and not isinstance(first_time.iloc[0],
                                                                       datetime | str)
        _, rejects = self.stream.schema.validate(sample)
        if len(rejects) == len(sample):
            reason = rejects["reason"].mode().iloc[0]
            raise SourceError(f"{self._what} gives no usable row in a sample of {len(sample)}: "
                              f"{reason}; fix the query or the stream's schema")

    def reads_ahead(self) -> bool:
        """As a table's (:meth:`monitor.batch.sources.TableSource.reads_ahead`)."""
        return self.engine.dialect.name == "postgresql"

    def chunks(self, since: pd.Timestamp, until: pd.Timestamp) -> Iterator[pd.DataFrame]:
        yield from read_rows(self.engine, self.range_query(since, until), self.chunk_rows,
                             self._what)

    def range_query(self, since: pd.Timestamp, until: pd.Timestamp) -> sa.Select[Any]:
        """The SELECT of the query's rows of ``[since, until)``."""
        time = self._source.c[self.stream.time]
        low, high = self._bounds(since, until)
        return sa.select(self._source).where(time >= low, time < high)

    def earliest(self) -> pd.Timestamp | None:
        query = sa.select(sa.func.min(self._source.c[self.stream.time]))
        try:
            with self.engine.connect() as connection:
                first = connection.execute(query).scalar()
        except sa.exc.DBAPIError as err:
            raise SourceError(f"reading {self._what} failed: {first_line(err)}") from err
        if first is None:
            return None
        if isinstance(first, int | float):
            return pd.Timestamp(int(first), unit="ms", tz="UTC")
        stamp = pd.Timestamp(first)
        return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")

    def _bounds(self, since: pd.Timestamp, until: pd.Timestamp) -> tuple[object, object]:
        if self._epoch_millis is None:
            self.check()
        if self._epoch_millis:
            return since.value // 1_000_000, until.value // 1_000_000
        return since.to_pydatetime(), until.to_pydatetime()
