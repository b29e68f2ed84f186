"""The streaming stage's durable state: per-partition checkpoints and partial window states.

Functions take a connection inside the caller's transaction. A partition's dirty partials
and its checkpoint (offset, watermark) are written together, so after a crash the stored
states contain exactly the events up to the stored offset — the worker skips everything
at or below it, and nothing is lost or counted twice. The checkpoint is written with an
optimistic check against what the writer last read: if another worker wrote the
partition in between (a rebalance), :class:`CheckpointConflict` rolls the write back and
the caller reloads.

Why the database and not Faust's changelog tables: the values must land in the database
anyway, and one transaction there makes "states absorbed up to offset N" atomic with no
Kafka transactions (which the embedded broker cannot do). Faust's table recovery also
reads the changelog's end offset, which Tansu reports wrongly (DESIGN.md), losing the
last changelog record on recovery.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from itertools import chain
from typing import Any

import pandas as pd
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from metrics.base import values_segments_together
from monitor.partials import Partial, PartialKey, merge_stored
from monitor.spec import MetricSpec
from monitor.storage.models import (
    MetricValueRow,
    StreamCheckpointRow,
    StreamPartialRow,
    table_of,
)
from monitor.storage.records import StoredState, WindowResult, window_results
from monitor.storage.results import read_metrics_states
from monitor.storage.types import utc_now
from monitor.storage.upsert import bind_processors, upsert_rows
from monitor.windows import utc_from_ns
from streaming.partition import Checkpoint, PartitionState
from streaming.ports import CheckpointConflict, Cutoff

CHECKPOINTS = table_of(StreamCheckpointRow)
PARTIALS = table_of(StreamPartialRow)
VALUES = table_of(MetricValueRow)
PARTIAL_COLUMNS = ("metric", "metric_version", "window_start", "segment", "topic", "partition",
                   "correction", "window_end", "state", "rows", "updated_at")


def load_checkpoint(conn: Connection, topic: str, partition: int) -> Checkpoint:
    c = CHECKPOINTS.c
    row = conn.execute(select(c.offset, c.watermark, c.event_watermark, c.events,
                              c.event_time_top).where(
        c.topic == topic, c.partition == partition)).first()
    return Checkpoint() if row is None else _checkpoint(row)


def load_checkpoints(conn: Connection, topic: str, *, lock: bool = False
                     ) -> dict[int, Checkpoint]:
    """Every partition's checkpoint; with ``lock``, held until the transaction ends (on
    Postgres), so that windows are closed by one worker at a time and no partial is
    stored halfway through."""
    c = CHECKPOINTS.c
    query = select(c.partition, c.offset, c.watermark, c.event_watermark, c.events,
                   c.event_time_top).where(c.topic == topic).order_by(c.partition)
    if lock:
        query = query.with_for_update()
    return {row.partition: _checkpoint(row) for row in conn.execute(query)}


def _checkpoint(row: Any) -> Checkpoint:
    return Checkpoint(row.offset, _to_ns(row.event_watermark), row.events,
                      _to_ns(row.watermark), _times(row.event_time_top))


def _times(text: str | None) -> tuple[int, ...]:
    """The highest event times of a checkpoint, stored as decimal nanoseconds ("1,2,3":
    exact, where a list of timestamps would round to the database's microseconds)."""
    return tuple(int(part) for part in text.split(",")) if text else ()


def load_partials(conn: Connection, topic: str, partition: int,
                  targets: Mapping[str, tuple[MetricSpec, int]]
                  ) -> tuple[dict[PartialKey, Partial], frozenset[PartialKey]]:
    """The stored partials of ``partition`` for the metric versions in ``targets``, keyed
    by the names ``targets`` gives them (a processor's keys: see :mod:`streaming.plan`),
    and which of them are corrections: where a window has both, the correction (the other
    is complete, see ``streaming.partition``, and stays in the database for the close)."""
    p = PARTIALS.c
    partials: dict[PartialKey, Partial] = {}
    corrections: set[PartialKey] = set()
    for key_name, (metric, version) in targets.items():
        rows = conn.execute(select(p.window_start, p.segment, p.correction, p.state, p.rows)
                            .where(p.topic == topic, p.partition == partition,
                                   p.metric == metric.name, p.metric_version == version)
                            .order_by(p.correction))
        for row in rows:
            key = (key_name, row.segment, pd.Timestamp(row.window_start).value)
            partials[key] = Partial(metric.aggregate.state_from_bytes(row.state), row.rows)
            if row.correction:
                corrections.add(key)
    return partials, frozenset(corrections)


def store_partitions(conn: Connection, states: Sequence[PartitionState],
                     versions: Mapping[str, int], owner: str | None = None) -> None:
    """Write the states' checkpoints (signed by ``owner``, the writing worker) and dirty
    partials (one upsert for all). The partials' keys name the states' metrics (see
    :class:`monitor.engine.Engine`: a metric's name, or a key of its own for one of two
    versions kept apart), and ``versions`` gives each key's version.

    CheckpointConflict if a stored checkpoint is no longer the one its state was loaded
    from (or last stored), or if a partial it stored before is gone: another worker
    closed that window meanwhile, merging what was stored, so the partial in memory
    (what was stored plus what came since) would count the stored part twice; the caller
    reloads and applies its micro-batch again (what came since becomes a correction).
    The checkpoints are written first: that locks them, and a closing transaction locks
    every checkpoint of the topic before it reads and deletes partials, so the two take
    turns and the check sees every close that happened before this store.
    """
    now = utc_now()
    for state in states:
        write_checkpoint(conn, state, now, owner)
    _check_not_closed(conn, states, versions)
    binds = bind_processors(conn, PARTIALS)
    as_time, as_state = binds["window_start"], binds["state"]
    rows: list[tuple[Any, ...]] = []
    for state in states:
        for key in sorted(state.dirty):
            key_name, segment, start_ns = key
            partial = state.engine.partials[key]
            metric = state.metrics[key_name]
            width = metric.windows.width_ns
            rows.append((metric.name, versions[key_name], as_time(utc_from_ns(start_ns)),
                         segment, state.topic, state.partition, key in state.corrections,
                         as_time(utc_from_ns(start_ns + width)),
                         as_state(partial.state.to_bytes()), partial.rows, as_time(now)))
    upsert_rows(conn, PARTIALS, PARTIAL_COLUMNS, rows)


def _check_not_closed(conn: Connection, states: Sequence[PartitionState],
                      versions: Mapping[str, int]) -> None:
    """CheckpointConflict if a stored partial that a state is about to rewrite is gone
    (one query for all the states)."""
    stored = {state.partition: state.dirty & state.stored_keys for state in states}
    stored = {partition: keys for partition, keys in stored.items() if keys}
    if not stored:
        return
    p = PARTIALS.c
    earliest = min(start_ns for keys in stored.values() for _, _, start_ns in keys)
    rows = conn.execute(select(p.partition, p.metric, p.metric_version, p.segment,
                               p.window_start, p.correction).where(
        p.topic == states[0].topic, p.partition.in_(sorted(stored)),
        p.window_start >= utc_from_ns(earliest)))
    key_names = {(metric.name, versions[key_name]): key_name
                 for key_name, metric in states[0].metrics.items() if key_name in versions}
    present = {(row.partition, key_names[(row.metric, row.metric_version)], row.segment,
                pd.Timestamp(row.window_start).value, row.correction)
               for row in rows if (row.metric, row.metric_version) in key_names}
    corrections = {state.partition: state.corrections for state in states}
    for partition, keys in sorted(stored.items()):
        if gone := {key for key in keys
                    if (partition, *key, key in corrections[partition]) not in present}:
            name, _, start_ns = min(gone)
            raise CheckpointConflict(
                f"{states[0].topic}[{partition}]: {len(gone)} window(s) it holds partials "
                f"of were closed by another worker meanwhile (first: {name} at "
                f"{utc_from_ns(start_ns):%Y-%m-%d %H:%M})")


def write_checkpoint(conn: Connection, state: PartitionState, now: datetime,
                     owner: str | None = None) -> None:
    c = CHECKPOINTS.c
    values = {"offset": state.offset, "watermark": _watermark(state.mark_ns),
              "event_watermark": _watermark(state.watermark_ns), "events": state.events,
              "event_time_top": ",".join(map(str, state.top_ns)) or None,
              "updated_at": now, "owner": owner}
    before = state.checkpoint
    if before == Checkpoint():
        exists = conn.execute(select(c.offset).where(
            c.topic == state.topic, c.partition == state.partition)).first()
        if exists is None:
            conn.execute(CHECKPOINTS.insert().values(topic=state.topic,
                                                     partition=state.partition, **values))
            return
    result = conn.execute(update(CHECKPOINTS).where(
        c.topic == state.topic, c.partition == state.partition, c.offset == before.offset,
        c.events == before.events).values(**values))
    if result.rowcount != 1:
        raise CheckpointConflict(f"{state.topic}[{state.partition}] was stored by another "
                                 "worker since it was loaded here")


def final_windows(conn: Connection, topic: str, due: Mapping[str, Cutoff],
                  stage: str = "streaming", *, corrections: bool = False
                  ) -> dict[str, list[WindowResult]]:
    """Per key of ``due`` (a metric version each), its windows ending by the cutoff that
    have partials (``corrections`` or the others): the partials of every partition
    merged, into the window's stored state when it was closed before. Versions with none
    are left out. Two queries for all the metrics: every tick that closes a window closes
    one of each metric."""
    if not due:
        return {}
    keys = {(cutoff.metric.name, cutoff.version): key for key, cutoff in due.items()}
    p = PARTIALS.c
    rows = conn.execute(
        select(p.metric, p.metric_version, p.window_start, p.window_end, p.segment, p.state,
               p.rows)
        .where(p.topic == topic, p.correction == corrections, _ending_by(due.values()))
        .order_by(p.metric, p.metric_version, p.window_start, p.segment, p.partition)).all()
    by_version: dict[tuple[str, int], list[Any]] = {}
    for row in rows:
        by_version.setdefault((row.metric, row.metric_version), []).append(row)
    stored = read_metrics_states(conn, stage, {
        version: (min(r.window_start for r in found), due[keys[version]].until)
        for version, found in by_version.items()})
    return {keys[version]: _merged(due[keys[version]].metric, found, stored[version])
            for version, found in by_version.items()}


def _merged(metric: MetricSpec, rows: Sequence[Any], stored: Sequence[StoredState]
            ) -> list[WindowResult]:
    """The windows of a metric's partial ``rows``, each the merge of its partials and the
    state ``stored`` for it before (a correction of a closed window), if any. Every
    segment of such a window is valued again with the others when its aggregate values
    them together (a drift report corrects its tests over the window's segments), so a
    window's stored values are what research gives for the same events."""
    fresh = {(row.window_start, row.segment) for row in rows}
    touched = {start for start, _ in fresh}
    together = values_segments_together(metric.aggregate)
    before = [s for s in stored
              if (s.window_start, s.segment) in fresh or (together and s.window_start in touched)]
    partials = merge_stored(metric.aggregate, chain(
        ((_key(metric, s.window_start, s.segment), s.state, s.rows) for s in before),
        ((_key(metric, row.window_start, row.segment), row.state, row.rows) for row in rows)))
    return window_results(metric, partials)


def _key(metric: MetricSpec, window_start: datetime, segment: str) -> PartialKey:
    return (metric.name, segment, pd.Timestamp(window_start).value)


def earliest_open_ends(conn: Connection, topic: str) -> dict[tuple[str, int], datetime]:
    """Per (metric, version), the earliest end of a window with partials (one query)."""
    p = PARTIALS.c
    rows = conn.execute(select(p.metric, p.metric_version, func.min(p.window_end))
                        .where(p.topic == topic).group_by(p.metric, p.metric_version))
    return {(row[0], row[1]): row[2] for row in rows}


def delete_partials(conn: Connection, topic: str, closed: Iterable[Cutoff]) -> None:
    """Remove the partials of each metric version ending by its cutoff."""
    cutoffs = list(closed)
    if cutoffs:
        conn.execute(delete(PARTIALS).where(PARTIALS.c.topic == topic, _ending_by(cutoffs)))


def _ending_by(cutoffs: Iterable[Cutoff]) -> ColumnElement[bool]:
    """Partials of any of the metric versions whose windows end by its cutoff."""
    p = PARTIALS.c
    return or_(*(and_(p.metric == c.metric.name, p.metric_version == c.version,
                      p.window_end <= c.until) for c in cutoffs))


def add_counts(conn: Connection, metric: str, stage: str,
               counts: Mapping[tuple[datetime, datetime, str], int]) -> None:
    """Add ``counts`` per (window start, window end, segment) to a counting metric's values
    (field ``count``): how the stage counts its dead letters, in the offset's transaction."""
    if not counts:
        return
    now = utc_now()
    dialect = conn.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    rows = [{"metric": metric, "metric_version": 1, "stage": stage, "window_start": start,
             "segment": segment, "field": "count", "window_end": end, "value": float(n),
             "count": n, "computed_at": now}
            for (start, end, segment), n in sorted(counts.items())]
    statement = insert(VALUES)
    v = VALUES.c
    statement = statement.on_conflict_do_update(
        index_elements=[v.metric, v.metric_version, v.stage, v.window_start, v.segment,
                        v.field],
        set_={"value": v.value + statement.excluded.value,
              "count": v.count + statement.excluded.count,
              "computed_at": statement.excluded.computed_at})
    conn.execute(statement, rows)


def _watermark(ns: int | None) -> datetime | None:
    return None if ns is None else utc_from_ns(ns - ns % 1000)  # µs, floored


def _to_ns(value: datetime | None) -> int | None:
    return None if value is None else pd.Timestamp(value).value

