"""The batch stage's slices computed on Apache Spark: states on the executors, merged
exactly, stored by the ordinary runner.

:class:`SparkFileSource` is a :class:`~monitor.batch.slice_states.StateSource`: for each
slice the runner asks it for, it runs one Spark job over the stream's files —

- Parquet through Spark's reader, the slice's time filter pushed down to it (row groups
  outside the range are skipped; a task keeps exactly the slice's rows afterwards), the
  Arrow batches handed to :func:`~monitor.batch.spark_tasks.parquet_task` by
  ``mapInArrow``;
- JSON lines and CSV one task per file, read by the batch stage's own reader
  (:func:`monitor.sources.files.read_events`), so a bad line is found, placed
  (``file:line``) and refused exactly as in one process. Spark's JSON and CSV readers
  would turn a mistyped value into a null or a whole bad row into nulls, and those rows
  would then be counted, not refused. A file is the unit of parallelism for these
  formats, and no filter can skip their bytes: write Parquet for large streams;

each task runs the shared engine and returns serialized states per (metric, segment,
window); ``reduceByKey`` merges them across tasks (map-side first, then one reducer per
key range), and only the merged states — one per key — reach the driver. The runner then
stores the slice in one transaction, records the run, moves the watermark and evaluates
the alert rules, exactly as for a slice it computed itself. A job that fails raises
:class:`SparkJobError`, which the runner meets as any failed slice: nothing of the slice
is stored, and it is tried again.

Rows that have no time and lines that do not parse go with the first range read, as
:class:`~monitor.batch.sources.FileSource` hands them on. Files must be readable at the
same path by the driver and every executor (a shared or object store path).

Labels for metrics that join them are read by the runner on the driver, as in one
process, and broadcast with the slice's plan: fine for a label stream of millions of rows
a day, not billions (a join by id on the executors is not done).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from monitor.batch.slice_states import SliceStates
from monitor.batch.sources import SourceError
from monitor.batch.spark_tasks import (
    OUTPUT_DDL,
    PARTIAL,
    REJECTED,
    ROWS,
    UNPARSED,
    StateMerger,
    TaskPlan,
    file_earliest_task,
    file_task,
    keyed,
    parquet_earliest_task,
    parquet_task,
    rejected_rows,
    unparsed_lines,
)
from monitor.errors import MonitorError
from monitor.partials import merge_stored
from monitor.sources.files import file_format, resolve_paths
from monitor.spec import MetricSpec, StreamSpec

T = TypeVar("T")
MILLIS_LIMIT = 2.5e14  # epoch milliseconds past this read as no time (monitor.schema)


class SparkJobError(MonitorError):
    """A Spark job of the batch stage failed; the message has the cause's last line."""


@dataclass
class SparkFileSource:
    """A stream's files (``files=``, a path or glob) read and computed by Spark."""

    spark: Any  # a pyspark.sql.SparkSession (see monitor.batch.spark_session)
    stream: StreamSpec
    _timeless_range: tuple[pd.Timestamp, pd.Timestamp] | None = field(default=None,
                                                                       init=False)
    _footers: dict[Path, tuple[tuple[int, int], list[TimeRange | None]]] = field(
        default_factory=dict, init=False, repr=False)

    def check(self) -> None:
        self._files()

    def earliest(self) -> pd.Timestamp | None:
        parquet, text = self._files()
        time = self.stream.time

        def job() -> list[Any]:
            parts = []
            if parquet:
                schema = _file_schema(parquet)
                frame = self.spark.read.parquet(*map(str, parquet)).select(_column(time))
                parts.append(frame.mapInArrow(partial(parquet_earliest_task, time, schema),
                                              OUTPUT_DDL).rdd.map(tuple))
            if text:
                parts.append(self._parallel(text).mapPartitions(
                    partial(file_earliest_task, time)))
            return (self.spark.sparkContext.union(parts).map(keyed)
                    .reduceByKey(StateMerger({})).collect())

        found = self._collect(f"the earliest event of stream {self.stream.name!r}", job)
        return None if not found else pd.Timestamp(found[0][1][1], unit="ns", tz="UTC")

    def states(self, metrics: Sequence[MetricSpec], since: pd.Timestamp,
               until: pd.Timestamp, labels: pd.DataFrame | None) -> SliceStates:
        from pyspark import cloudpickle

        parquet, text = self._files()
        timeless = self._holds_timeless(since, until)
        context = self.spark.sparkContext
        names = ", ".join(m.name for m in metrics)
        merger = StateMerger({m.name: m.aggregate for m in metrics})

        def job() -> list[Any]:
            schema = _file_schema(parquet) if parquet else None
            held = [path for path in parquet if self._may_hold(path, since, until, timeless)]
            if not held and not text:
                return []
            plan = context.broadcast(cloudpickle.dumps(
                TaskPlan(tuple(metrics), since, until, timeless, labels, schema)))
            try:
                parts = []
                if held:
                    frame = self.spark.read.parquet(*map(str, held))
                    condition = _time_filter(schema, self.stream.time, since, until, timeless)
                    if condition is not None:
                        frame = frame.where(condition)
                    parts.append(frame.mapInArrow(partial(parquet_task, plan), OUTPUT_DDL)
                                 .rdd.map(tuple))
                if text:
                    parts.append(self._parallel(text).mapPartitions(partial(file_task, plan)))
                context.setJobDescription(f"batch {names}: {since} to {until}")
                return merged_states(context, parts, merger)
            finally:
                plan.destroy()

        merged = self._collect(f"the slice {since} to {until} of {names}", job)
        return slice_states(metrics, dict(merged))

    def _may_hold(self, path: Path, since: pd.Timestamp, until: pd.Timestamp,
                  timeless: bool) -> bool:
        """Whether a Parquet file may hold rows of ``[since, until)`` (or, for the range
        that takes them, rows with no time), by its row groups' statistics: the files
        that cannot are left out of the job, as Spark leaves out the row groups of the
        files it reads. Footers are read once per file (and again if it changes)."""
        stat = path.stat()
        version = (stat.st_mtime_ns, stat.st_size)
        cached = self._footers.get(path)
        if cached is None or cached[0] != version:
            cached = self._footers[path] = (version, _row_group_times(path, self.stream.time))
        for found in cached[1]:
            if found is None or (timeless and found.nulls):
                return True
            if found.low < until and found.high >= since:
                return True
        return False

    def _parallel(self, paths: list[Path]) -> Any:
        context = self.spark.sparkContext
        return context.parallelize([str(p) for p in paths], len(paths))

    def _collect(self, what: str, action: Any) -> Any:
        return run_job(what, action)

    def _files(self) -> tuple[list[Path], list[Path]]:
        """The stream's Parquet files and its JSON lines and CSV files."""
        if not self.stream.files:
            raise SourceError(f"stream {self.stream.name!r} declares no files=; the Spark "
                              "engine reads a stream's files")
        try:
            paths = resolve_paths(self.stream.files)
            formats = [file_format(path) for path in paths]
        except (FileNotFoundError, ValueError) as err:
            raise SourceError(f"stream {self.stream.name!r}: {err}") from None
        parquet = [p for p, kind in zip(paths, formats, strict=True) if kind == "parquet"]
        text = [p for p, kind in zip(paths, formats, strict=True) if kind != "parquet"]
        return parquet, text

    def _holds_timeless(self, since: pd.Timestamp, until: pd.Timestamp) -> bool:
        """Whether ``[since, until)`` takes the rows with no time: the first range read."""
        if self._timeless_range is None:
            self._timeless_range = (since, until)
        return self._timeless_range == (since, until)


def run_job(what: str, action: Callable[[], T]) -> T:
    """``action()``, a Spark job computing ``what``; its failure as a SparkJobError whose
    message has the cause's line (see _cause), not Spark's JVM stack."""
    try:
        return action()
    except OSError as err:  # a file gone between listing and reading, say
        raise SparkJobError(f"Spark failed computing {what}: {err}") from None
    except Exception as err:
        if type(err).__module__.startswith(("pyspark", "py4j")):
            raise SparkJobError(f"Spark failed computing {what}: {_cause(err)}") from None
        raise


def merged_states(context: Any, parts: Sequence[Any], merger: StateMerger) -> list[Any]:
    """The tasks' records of ``parts`` (RDDs of records) merged per key on the executors;
    the driver gets one value per key."""
    tasks = sum(part.getNumPartitions() for part in parts)
    reducers = max(1, min(tasks, context.defaultParallelism))
    return context.union(list(parts)).map(keyed).reduceByKey(merger, reducers).collect()


def slice_states(metrics: Sequence[MetricSpec], merged: dict[Any, Any]) -> SliceStates:
    by_name = {m.name: m for m in metrics}
    stored = [((value[1], key[2], key[3]), value[2], value[3])
              for key, value in merged.items() if key[0] == PARTIAL]
    partials = {}
    for name, metric in by_name.items():
        partials.update(merge_stored(metric.aggregate, [s for s in stored if s[0][0] == name]))
    rows = merged.get((ROWS,), (ROWS, 0))[1]
    return SliceStates(partials, rows, rejected_rows(merged.get((REJECTED,))),
                       unparsed_lines(merged.get((UNPARSED,))))


@dataclass(frozen=True)
class TimeRange:
    """The event times a row group holds, by its statistics."""

    low: pd.Timestamp
    high: pd.Timestamp
    nulls: bool  # it may hold rows with no time


def _row_group_times(path: Path, time: str) -> list[TimeRange | None]:
    """Each row group's time range (None where the statistics cannot tell: none kept, or
    the time column is text, say)."""
    metadata = pq.ParquetFile(path).metadata
    schema = metadata.schema.to_arrow_schema()
    if time not in schema.names:
        return [None]
    kind = schema.field(time).type
    found: list[TimeRange | None] = []
    for number in range(metadata.num_row_groups):
        group = metadata.row_group(number)
        columns = [group.column(i) for i in range(group.num_columns)]
        column = next((c for c in columns if c.path_in_schema == time), None)
        stats = None if column is None else column.statistics
        if stats is None or not stats.has_min_max:
            found.append(None)
            continue
        low, high = _as_time(stats.min, kind), _as_time(stats.max, kind)
        nulls = stats.null_count is None or stats.null_count > 0
        found.append(None if low is None or high is None else TimeRange(low, high, nulls))
    return found or [None]


def _as_time(value: Any, kind: pa.DataType) -> pd.Timestamp | None:
    if pa.types.is_timestamp(kind):
        stamp = pd.Timestamp(value)
        return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    if pa.types.is_integer(kind) and abs(value) < MILLIS_LIMIT:  # epoch milliseconds
        return pd.Timestamp(int(value), unit="ms", tz="UTC")
    return None  # beyond what reads as a time: such rows go with the timeless range


def _file_schema(parquet: list[Path]) -> pa.Schema:
    """The Arrow types of the Parquet files (the first file's; files of a stream share
    them)."""
    return pq.read_schema(parquet[0]).remove_metadata()


def _column(name: str) -> Any:
    from pyspark.sql import functions

    return functions.col(f"`{name}`")


def _time_filter(schema: pa.Schema | None, time: str, since: pd.Timestamp,
                 until: pd.Timestamp, timeless: bool) -> Any:
    """The slice's range as a filter Spark pushes into the Parquet reader (None when the
    time column's type allows none: text, say): it only prunes, the task keeps the exact
    rows. The range that takes the rows with no time keeps those too."""
    from pyspark.sql import functions

    if schema is None or time not in schema.names:
        return None
    kind = schema.field(time).type
    column = _column(time)
    no_time = column.isNull()
    if pa.types.is_timestamp(kind) and kind.unit == "ns":  # read as raw nanoseconds
        low, high = functions.lit(since.value), functions.lit(until.value)
    elif pa.types.is_timestamp(kind):
        low = functions.lit(since.to_pydatetime() if kind.tz else
                            since.tz_convert(None).to_pydatetime())
        high = functions.lit(until.to_pydatetime() if kind.tz else
                             until.tz_convert(None).to_pydatetime())
    elif pa.types.is_integer(kind):  # epoch milliseconds
        low = functions.lit(since.value // 1_000_000)
        high = functions.lit(until.value // 1_000_000)
        no_time = no_time | (column >= MILLIS_LIMIT) | (column <= -MILLIS_LIMIT)
    else:
        return None
    condition = (column >= low) & (column < high)
    return condition | no_time if timeless else condition


def _cause(err: BaseException) -> str:
    """The line of a Spark error that says what went wrong: for a Python task's failure,
    the last exception line of its traceback; else the first line of the message."""
    text = str(err)
    python = text.split("JVM stacktrace:")[0]
    lines = [line.strip() for line in python.splitlines()
             if re.match(r"^\s*[\w.]+(Error|Exception|Interrupt)\b.*:", line)]
    if "Traceback" in python and lines:
        return lines[-1]
    return " ".join(text.strip().splitlines()[0].split())[:500] if text.strip() else repr(err)


__all__ = ["SparkFileSource", "SparkJobError", "merged_states", "run_job", "slice_states"]
