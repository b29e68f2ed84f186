"""Parquet event files scanned for a time range, the filter pushed into the scan.

``pyarrow.dataset`` compares the range with each row group's statistics before it reads
the group, and filters the rows of the groups it reads, so a day of a month of files costs
about a day of reading, in record batches, where reading the files whole held every event
of every file in memory for each day. (Arrow 26 skips no row group that holds a null time:
those are read, and their rows filtered.) The rows kept are those the file path keeps after
reading (:func:`monitor.schema.parse_times` on the time column, then the range): the filter
is written for the column's type, and only for types whose every value the scan can judge
as the parser does — a timestamp (a zone-less one is UTC) or whole epoch milliseconds.
Text times (ISO 8601 with any offset) and fractional milliseconds are not, nor are files
of different schemas matched by one glob (read whole, the frames of their files join into
one, with the columns of all): :func:`scan_for` gives None for those, and the caller reads
them as before.

Rows whose time cannot be read (null, or beyond what a nanosecond timestamp holds, which
the parser reads as no time or fails on) belong to no range: the filter takes them only
when asked to (``timeless``), as the file path hands them on with the first range it reads
(and fails there, where it failed on every range).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from monitor.event_frames import frame_from_arrow
from monitor.sources.files import file_format

DEFAULT_BATCH_ROWS = 100_000


@dataclass(frozen=True)
class ParquetScan:
    """Parquet files of one schema whose time column the scan can filter."""

    dataset: ds.Dataset
    time: str

    def batches(self, since: pd.Timestamp, until: pd.Timestamp, *, timeless: bool,
                batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """The rows with time in ``[since, until)`` (and those with no readable time when
        ``timeless``), in record batches of at most ``batch_rows``; empty ones skipped."""
        wanted = self._in_range(since, until)
        if timeless:
            wanted = wanted | self._timeless()
        for batch in self.dataset.to_batches(filter=wanted, batch_size=batch_rows,
                                             use_threads=False):
            if batch.num_rows:
                yield batch

    def frames(self, since: pd.Timestamp, until: pd.Timestamp, *, timeless: bool,
               batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pd.DataFrame]:
        """:meth:`batches` as the frames the file reader makes of Parquet."""
        for batch in self.batches(since, until, timeless=timeless, batch_rows=batch_rows):
            yield frame_from_arrow(pa.Table.from_batches([batch]))

    def earliest(self) -> pd.Timestamp | None:
        """The earliest readable event time, reading the time column alone."""
        first: pd.Timestamp | None = None
        for batch in self.dataset.to_batches(columns=[self.time], filter=~self._timeless(),
                                             use_threads=False):
            if not batch.num_rows:
                continue
            low = pc.min(batch.column(0)).as_py()
            stamp = self._as_time(low)
            first = stamp if first is None else min(first, stamp)
        return first

    @property
    def _type(self) -> pa.DataType:
        return self.dataset.schema.field(self.time).type

    def _in_range(self, since: pd.Timestamp, until: pd.Timestamp) -> ds.Expression:
        """A time t of the column (in its unit) is in range when t * unit is: so when
        t >= ceil(since / unit) and t < ceil(until / unit)."""
        column = ds.field(self.time)
        per_unit = self._per_unit
        return ((column >= self._scalar(-(-since.value // per_unit)))
                & (column < self._scalar(-(-until.value // per_unit))))

    def _timeless(self) -> ds.Expression:
        """The rows the parser gives no time in range: null, or beyond what a nanosecond
        timestamp holds (which the parser reads as no time, or fails on, as it does when
        the files are read whole)."""
        column = ds.field(self.time)
        low, high = pd.Timestamp.min.value, pd.Timestamp.max.value  # ns
        per_unit = self._per_unit
        return (column.is_null() | (column < self._scalar(-(-low // per_unit)))
                | (column > self._scalar(high // per_unit)))

    @property
    def _per_unit(self) -> int:
        """Nanoseconds per unit of the column: a timestamp's unit, or epoch milliseconds
        (a zone-less timestamp is UTC, as the parser takes it)."""
        kind = self._type
        if pa.types.is_timestamp(kind):
            return {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}[kind.unit]
        return 1_000_000

    def _scalar(self, units: int) -> pa.Scalar:
        return pa.scalar(units, type=pa.int64()).cast(self._type)

    def _as_time(self, value: Any) -> pd.Timestamp:
        if pa.types.is_timestamp(self._type):
            stamp = pd.Timestamp(value)
            return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        return pd.Timestamp(int(value), unit="ms", tz="UTC")


def scan_for(paths: Sequence[Path], time: str) -> ParquetScan | None:
    """A scan of ``paths`` when they are all Parquet, of one schema, with a time column
    the scan can filter (see the module); else None."""
    if not paths or any(file_format(path) != "parquet" for path in paths):
        return None
    schema = pq.read_schema(paths[0])
    if any(not pq.read_schema(path).equals(schema, check_metadata=False)
           for path in paths[1:]):
        return None
    index = schema.get_field_index(time)
    if index < 0:
        return None
    kind = schema.field(index).type
    if not (pa.types.is_timestamp(kind) or kind == pa.int64()):
        return None
    return ParquetScan(ds.dataset([str(p) for p in paths], schema=schema, format="parquet"),
                       time)
