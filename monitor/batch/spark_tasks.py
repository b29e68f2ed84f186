"""What a Spark task runs: the batch stage's own engine over the rows it was given, and
the merge of two tasks' partial states. No pyspark in here: plain functions of pandas and
Arrow that Spark ships to its executors (and tests call directly).

A task turns its rows into the frame the single-process batch stage would have read —
Parquet batches cast back to the file's own Arrow types (Spark hands timestamps over in
microseconds, or in nanoseconds as plain integers, strings as large strings), JSON lines
and CSV files read whole by the same reader — then keeps the rows of the slice's range
exactly as :class:`monitor.batch.sources.FileSource` does (Spark's pushed-down filter
only prunes), validates them with the stream's schema, joins the labels if the metrics
take them, and updates one :class:`monitor.engine.Engine`. It returns records: one per
(metric, segment, window) with the serialized state and its row count, the rows read, the
rows validation refused and the lines that did not parse. Records with the same key merge
with :class:`StateMerger` (states merge exactly, so the order Spark merges in does not
change a bit of the result).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from metrics.base import Aggregate
from monitor.batch.slice_states import failed_payloads, rejected_payloads
from monitor.engine import Engine
from monitor.event_frames import frame_from_arrow
from monitor.label_join import join_labels
from monitor.schema import parse_times
from monitor.sources.files import read_events
from monitor.spec import MetricSpec

# One record type for every output of a task (Spark's mapInArrow wants one schema).
OUTPUT = pa.schema([("kind", pa.string()), ("metric", pa.string()), ("segment", pa.string()),
                    ("window", pa.int64()), ("state", pa.binary()), ("rows", pa.int64()),
                    ("a", pa.string()), ("b", pa.string()), ("c", pa.string())])
OUTPUT_DDL = ("kind string, metric string, segment string, window long, state binary, "
              "rows long, a string, b string, c string")
PARTIAL, ROWS, REJECTED, UNPARSED, EARLIEST = "p", "n", "r", "u", "e"
Record = tuple[Any, ...]


@dataclass(frozen=True)
class TaskPlan:
    """What every task of a slice's job needs (broadcast once per job)."""

    metrics: tuple[MetricSpec, ...]
    since: pd.Timestamp
    until: pd.Timestamp
    timeless: bool  # this range also takes the rows with no time and the unparsed lines
    labels: pd.DataFrame | None = None  # validated labels of the slice's label range
    file_schema: pa.Schema | None = None  # the Parquet files' own types

    @property
    def time(self) -> str:
        return self.metrics[0].stream.time


def in_range(events: pd.DataFrame, plan: TaskPlan) -> pd.DataFrame:
    """The rows of ``[since, until)`` (and those with no time, for the range that takes
    them): FileSource's rule, so both read the same rows."""
    if events.empty or plan.time not in events.columns:
        return events
    times = parse_times(events[plan.time])
    keep = ((times >= plan.since) & (times < plan.until)).to_numpy().copy()
    if plan.timeless:
        keep |= times.isna().to_numpy()
    return events[keep].reset_index(drop=True)


def absorb(plan: TaskPlan, frames: Iterable[pd.DataFrame],
           unparsed: Iterable[pd.DataFrame] = ()) -> list[Record]:
    """The records of one task: its frames' states, rows and rejects."""
    metrics = plan.metrics
    engine = Engine(metrics)
    rows = 0
    records: list[Record] = []
    for raw in frames:
        events = in_range(raw, plan)
        rows += len(events)
        clean, rejects = metrics[0].stream.schema.validate(events)
        if len(rejects):
            records += [(REJECTED, None, None, None, None, None, reason, payload, None)
                        for reason, payload in rejected_payloads(events, rejects)]
        if plan.labels is not None:
            assert metrics[0].labels is not None
            clean = join_labels(clean, plan.labels,
                                metrics[0].labels.rule(plan.time)).events
        engine.update(clean)
        if failed := engine.take_failed():
            records += [(REJECTED, None, None, None, None, None, reason, payload, None)
                        for reason, payload in failed_payloads(events, rejects, failed)]
    for lines in unparsed:
        rows += len(lines)
        records += [(UNPARSED, None, None, None, None, None, where, reason, excerpt)
                    for where, reason, excerpt in zip(lines["row"], lines["reason"],
                                                      lines["excerpt"], strict=True)]
    records += [(PARTIAL, name, segment, window, partial.state.to_bytes(), partial.rows,
                 None, None, None)
                for (name, segment, window), partial in engine.partials.items()]
    records.append((ROWS, None, None, None, None, rows, None, None, None))
    return records


def restore(batch: pa.RecordBatch, schema: pa.Schema | None) -> pd.DataFrame:
    """A batch Spark read from Parquet as the frame ``pyarrow.parquet`` would give: each
    column cast back to the file's type."""
    table = pa.Table.from_batches([batch])
    if schema is not None:
        columns = [table.column(name).cast(schema.field(name).type)
                   if name in schema.names else table.column(name)
                   for name in table.column_names]
        table = pa.table(columns, names=table.column_names)
    return frame_from_arrow(table)


def to_batch(records: list[Record]) -> pa.RecordBatch:
    columns = list(zip(*records, strict=True)) if records else [()] * len(OUTPUT)
    return pa.RecordBatch.from_arrays(
        [pa.array(list(values), type=f.type) for values, f in zip(columns, OUTPUT,
                                                                 strict=True)],
        schema=OUTPUT)


def unpack(plan_holder: Any) -> TaskPlan:
    """The TaskPlan a job broadcast, pickled by the driver with cloudpickle: a decorated
    per-event function is not the object its module's name holds (``@mon.metric`` put
    the spec there), so it travels by value."""
    plan: TaskPlan = pickle.loads(plan_holder.value)
    return plan


def parquet_task(plan_holder: Any, batches: Iterator[pa.RecordBatch]
                 ) -> Iterator[pa.RecordBatch]:
    """mapInArrow over Parquet rows (``plan_holder``: the broadcast plan, see unpack)."""
    plan = unpack(plan_holder)
    yield to_batch(absorb(plan, (restore(b, plan.file_schema) for b in batches)))


def file_task(plan_holder: Any, paths: Iterator[str]) -> Iterator[Record]:
    """JSON lines and CSV files, each read whole by the batch stage's own reader (its
    bad lines found and placed as it places them)."""
    plan = unpack(plan_holder)
    reads = [read_events(path) for path in paths]
    yield from absorb(plan, (read.events for read in reads),
                      (read.rejects for read in reads) if plan.timeless else ())


def earliest_of(frames: Iterable[pd.DataFrame], time: str) -> list[Record]:
    """The earliest parseable event time of the frames (none if there is none)."""
    earliest = None
    for frame in frames:
        if frame.empty or time not in frame.columns:
            continue
        first = parse_times(frame[time]).min()
        if not pd.isna(first):
            earliest = first if earliest is None else min(earliest, first)
    return [] if earliest is None else [
        (EARLIEST, None, None, pd.Timestamp(earliest).value, None, None, None, None, None)]


def parquet_earliest_task(time: str, schema: pa.Schema | None,
                          batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield to_batch(earliest_of((restore(b, schema) for b in batches), time))


def file_earliest_task(time: str, paths: Iterator[str]) -> Iterator[Record]:
    yield from earliest_of((read_events(path).events for path in paths), time)


def keyed(record: Record) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """A record as ``(key, value)`` for Spark's reduceByKey: a partial's key is its
    (metric, segment, window); the rest collect under their kind."""
    kind, metric, segment, window, state, rows, a, b, c = record
    if kind == PARTIAL:
        return (kind, metric, segment, window), (kind, metric, state, rows)
    if kind == ROWS:
        return (kind,), (kind, rows)
    if kind == EARLIEST:
        return (kind,), (kind, window)
    return (kind,), (kind, [(a, b, c)])


@dataclass(frozen=True)
class StateMerger:
    """Merges two values of one key: states exactly (revived, merged, serialized again),
    counts by adding, rejects by joining their lists."""

    aggregates: Mapping[str, Aggregate]

    def __call__(self, left: tuple[Any, ...], right: tuple[Any, ...]) -> tuple[Any, ...]:
        kind = left[0]
        if kind == PARTIAL:
            aggregate = self.aggregates[left[1]]
            state = aggregate.state_from_bytes(left[2])
            state.merge(aggregate.state_from_bytes(right[2]))
            return kind, left[1], state.to_bytes(), left[3] + right[3]
        if kind == EARLIEST:
            return kind, min(left[1], right[1])
        return kind, left[1] + right[1]


def rejected_rows(value: tuple[Any, ...] | None) -> list[tuple[str, str]]:
    """The ``(reason, payload)`` of a merged REJECTED value."""
    return [] if value is None else [(reason, payload) for reason, payload, _ in value[1]]


def unparsed_lines(value: tuple[Any, ...] | None) -> pd.DataFrame | None:
    if value is None:
        return None
    return pd.DataFrame(value[1], columns=["row", "reason", "excerpt"])


__all__ = ["OUTPUT", "OUTPUT_DDL", "StateMerger", "TaskPlan", "absorb", "earliest_of",
           "file_task", "in_range", "keyed", "parquet_task", "restore"]
