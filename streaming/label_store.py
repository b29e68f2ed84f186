"""The label join's held predictions and labels over the results database (the
:class:`~streaming.label_ports.HeldStore` port): each method one transaction.

Why the join is exactly once, and why two workers cannot miss each other. Predictions and
labels of one id may come from different partitions, owned by different workers. Neither
worker looks for the other's rows in memory: both only *hold* rows, in the transaction
that stores the offsets they came from, and a window is valued from the database.

- A window is first valued by the closing transaction, which locks every checkpoint of
  both sources (prediction and label partitions) before it reads. A store writes its own
  checkpoints first, which locks them: the two take turns, so the close sees every row
  stored before it, and a store that comes after sees the window closed (it reads the
  progress after its checkpoints) and revises it.
- A window that is closed (and not purged) is valued again by every store that holds a
  row it may take: a prediction of it, or a label with the id of one of its predictions.
  Two such stores on different workers lock the metric's progress row first, so they
  take turns too, and the second reads (after the lock, under read committed) what the
  first committed; whichever revises last sees both. On SQLite one writer at a time
  does the same.
- A row that can no longer be counted is a dead letter, never held for nothing, whichever
  of its store and the forgetting close commits first. A close forgets (purges) windows
  with every checkpoint locked, and records how far (``purged_through``) and which
  predictions it forgot (their id and time, ``label_forgotten_predictions``); a store
  reads both after writing its checkpoints, so either the close came first and the store
  sees what it forgot, or the store came first and the close counts its rows before
  forgetting them. A prediction is forgotten with its window. A label can take the
  predictions stamped from its time less the horizon to its time plus ``early``: when
  all of those windows are forgotten, or it is a candidate of a forgotten prediction
  (same id, within that span), it is a dead letter; otherwise (its prediction is held,
  still to come, or never came) it is held, and counted where it joins.

Rows are keyed by (metric, version, source partition, offset, event in message), so a
replayed message cannot be held twice even if it were not skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import any_, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.types import Text

from monitor.segments import segment_label
from monitor.spec import MetricSpec
from monitor.storage.alert_store import SqlAlertTransaction
from monitor.storage.database import Database
from monitor.storage.dead_letters import write_dead_letters
from monitor.storage.insert_ignore import insert_ignore
from monitor.storage.models import (
    LabelForgottenPredictionRow,
    LabelHeldLabelRow,
    LabelHeldPredictionRow,
    LabelJoinProgressRow,
    table_of,
)
from monitor.storage.records import DeadLetter, WindowResult
from monitor.storage.results import write_metrics_windows
from monitor.storage.types import utc_now
from monitor.windows import utc_from_ns
from streaming import state_store
from streaming.label_ports import (
    DeadLetterCounts,
    Forgotten,
    HeldLabel,
    HeldWindow,
    JoinCutoff,
    JoinMarks,
    MetricHeld,
    Progress,
    Refuser,
    Valued,
    Valuer,
)
from streaming.partition import Checkpoint, PartitionState
from streaming.ports import AfterFinal

PREDICTIONS = table_of(LabelHeldPredictionRow)
LABELS = table_of(LabelHeldLabelRow)
PROGRESS = table_of(LabelJoinProgressRow)
FORGOTTEN = table_of(LabelForgottenPredictionRow)
SOURCE_KEY = ("metric", "metric_version", "partition", "offset", "event")
IN_CHUNK = 5_000  # ids per IN (...) list or array


class SqlHeldStore:
    """The held rows of label joins in one database; ``owner`` names the worker that
    signs the checkpoints it writes (as :class:`~streaming.sql_store.SqlStreamStore`)."""

    def __init__(self, database: Database, owner: str | None = None) -> None:
        self.database = database
        self.owner = owner

    def __repr__(self) -> str:
        return f"SqlHeldStore({self.database.display_url!r})"

    def load_checkpoints(self, source: str, partitions: Iterable[int]) -> dict[int, Checkpoint]:
        with self.database.begin() as conn:
            return {p: state_store.load_checkpoint(conn, source, p) for p in partitions}

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        """A transaction on a connection that plans each query for its own parameters:
        psycopg prepares a statement after 5 runs, and the generic plan of ``= ANY(ids)``
        filtered every held label through the array (3.5 s a window at 100k held, 0.03 s
        planned for the ids at hand)."""
        with self.database.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.connection.driver_connection.prepare_threshold = None  # type: ignore[union-attr]
            yield conn

    def store_held(self, states: Sequence[PartitionState], held: Sequence[MetricHeld],
                   value: Valuer, *, stage: str, counts: DeadLetterCounts,
                   samples: Sequence[DeadLetter], refuse: Refuser,
                   after_final: AfterFinal | None = None) -> dict[str, int]:
        if not states and any(item.predictions or item.labels for item in held):
            raise ValueError("rows are held only with the checkpoints of the partitions "
                             "they came from: their locks order a store and a close")
        with self._begin() as conn:
            now = utc_now()
            # checkpoints first, in (source, partition) order: that locks them, as a close
            # locks them all in the same order (see the module)
            for state in sorted(states, key=lambda s: (s.topic, s.partition)):
                state_store.write_checkpoint(conn, state, now, self.owner)
            # read after the checkpoints: no close can forget anything until this commits
            # (it waits on their locks; a first checkpoint, inserted here, it cannot see,
            # but while a partition has none it closes and forgets nothing)
            progress = _progress(conn, [(item.metric.name, item.version) for item in held])
            kept, forgotten = [], []
            for item in held:
                keep, lost = _split_forgotten(
                    conn, item, progress.get((item.metric.name, item.version)))
                kept.append(keep)
                if lost is not None:
                    forgotten.append(lost)
            held = kept
            hold_rows(conn, held)
            touched = {(item.metric.name, item.version): _closed_windows_touched(
                conn, item, progress.get((item.metric.name, item.version))) for item in held}
            revising = [item for item in held if touched[(item.metric.name, item.version)]]
            # one lock per metric version, taken in key order (no two stores deadlock)
            _lock_progress(conn, [(item.metric.name, item.version) for item in revising])
            revised = {}
            for item in revising:
                starts = sorted(touched[(item.metric.name, item.version)])
                results = [r for start_ns in starts
                           for r in _valued(conn, stage, value(item.metric, read_window(
                               conn, item.metric, item.version, start_ns)))]
                write_metrics_windows(conn, stage, [(item.metric.name, item.version,
                                                     results)])
                if after_final is not None:  # a revision may make a window mature
                    after_final(SqlAlertTransaction(conn), item.metric, item.version,
                                results)
                revised[item.metric.name] = len(starts)
            if forgotten:
                letters = refuse(forgotten)
                counts = _summed(counts, letters.counts)
                samples = [*samples, *letters.samples]
            for count_metric, metric_counts in sorted(counts.items()):
                state_store.add_counts(conn, count_metric, stage, metric_counts)
            if samples:
                write_dead_letters(conn, samples)
            return revised

    def marks(self, sources: Sequence[str], targets: Mapping[str, tuple[MetricSpec, int]]
              ) -> JoinMarks:
        with self.database.connect() as conn:
            return _marks(conn, sources, targets, lock=False)

    def close(self, sources: Sequence[str], targets: Mapping[str, tuple[MetricSpec, int]],
              due: Callable[[JoinMarks], Mapping[str, JoinCutoff]], value: Valuer,
              stage: str, after_final: AfterFinal | None = None
              ) -> dict[str, list[WindowResult]]:
        with self._begin() as conn:
            cutoffs = due(_marks(conn, sources, targets, lock=True))
            if not cutoffs:
                return {}
            progress = _lock_progress(conn, [(c.metric.name, c.version)
                                             for c in cutoffs.values()])
            closed: dict[str, list[WindowResult]] = {}
            judged: dict[str, list[WindowResult]] = {}
            now = utc_now()
            for name, cutoff in sorted(cutoffs.items()):
                before = progress.get((name, cutoff.version), Progress(None, None))
                starts = _unclosed_windows(conn, cutoff, before.closed_through)
                closed[name] = [r for start_ns in starts
                                for r in _valued(conn, stage, value(cutoff.metric, read_window(
                                    conn, cutoff.metric, cutoff.version, start_ns)))]
                purged = before.purged_through
                final: list[WindowResult] = []
                if cutoff.purge_until is not None:
                    # their last values, judged by the rules now that no label can come
                    final = [r for start_ns in _purged_windows(conn, cutoff)
                             for r in _valued(conn, stage, value(cutoff.metric, read_window(
                                 conn, cutoff.metric, cutoff.version, start_ns)))]
                    _purge(conn, cutoff)
                    purged = _later(purged, cutoff.purge_until)
                _save_progress(conn, name, cutoff.version,
                               Progress(_later(before.closed_through, cutoff.close_until),
                                        purged), now)
                judged[name] = sorted({(r.window_start, r.segment): r
                                       for r in final + closed[name]}.values(),
                                      key=lambda r: (r.window_start, r.segment))
            closed = {name: results for name, results in closed.items() if results}
            write_metrics_windows(conn, stage, ((name, cutoffs[name].version, results)
                                                for name, results in closed.items()))
            if after_final is not None:
                alerts = SqlAlertTransaction(conn)
                for name, results in judged.items():
                    if results:
                        after_final(alerts, cutoffs[name].metric, cutoffs[name].version,
                                    results)
            return closed


# -- the repository functions (a connection inside the caller's transaction) -------------


def hold_rows(conn: Connection, held: Sequence[MetricHeld]) -> None:
    predictions = [{"metric": item.metric.name, "metric_version": item.version,
                    "partition": row.partition, "offset": row.offset, "event": row.event,
                    "prediction_id": row.prediction_id, "event_time": row.time_ns,
                    "window_start": utc_from_ns(row.window_start_ns),
                    "window_end": utc_from_ns(row.window_end_ns), "payload": row.payload}
                   for item in held for row in item.predictions]
    labels = [{"metric": item.metric.name, "metric_version": item.version,
               "partition": row.partition, "offset": row.offset, "event": row.event,
               "label_id": row.label_id, "label_time": row.time_ns, "payload": row.payload}
              for item in held for row in item.labels]
    insert_ignore(conn, PREDICTIONS, predictions, SOURCE_KEY)
    insert_ignore(conn, LABELS, labels, SOURCE_KEY)


def read_window(conn: Connection, metric: MetricSpec, version: int, start_ns: int
                ) -> HeldWindow:
    """A window's held predictions (in source order) and the held labels whose id one of
    them has (more labels than the join takes; the join's rule picks among them)."""
    p, lab = PREDICTIONS.c, LABELS.c
    # by its end: the (metric, version, window_end) index finds the window's rows
    end = utc_from_ns(start_ns + metric.windows.width_ns)
    rows = conn.execute(select(p.event_time, p.payload, p.prediction_id).where(
        p.metric == metric.name, p.metric_version == version, p.window_end == end).order_by(
        p.partition, p.offset, p.event)).all()
    # The labels by id, in lists the (metric, version, label_id) index answers: a
    # semi-join on a subquery was planned as a scan per id by Postgres (0.5 s a window).
    ids = sorted({row[2] for row in rows if row[2] is not None})
    labels: list[tuple[int, str]] = []
    for chunk in range(0, len(ids), IN_CHUNK):
        labels.extend((row[0], row[1]) for row in conn.execute(
            select(lab.label_time, lab.payload).where(
                lab.metric == metric.name, lab.metric_version == version,
                _among(conn, lab.label_id, ids[chunk:chunk + IN_CHUNK]))))
    return HeldWindow(start_ns, [(row[0], row[1]) for row in rows], labels)


def _among(conn: Connection, column: Any, values: list[str]) -> Any:
    """``column IN values``; on Postgres ``= ANY(array)``: one parameter, where an IN list
    of a thousand took 5 to 100 ms a query more (measured in bench/labels.py)."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=ARRAY(Text())))
    return column.in_(values)


def _progress(conn: Connection, keys: Iterable[tuple[str, int]]
              ) -> dict[tuple[str, int], Progress]:
    """The progress of the metric versions that have one (unlocked)."""
    wanted = set(keys)
    if not wanted:
        return {}
    g = PROGRESS.c
    return {(row.metric, row.metric_version): Progress(row.closed_through, row.purged_through)
            for row in conn.execute(select(g.metric, g.metric_version, g.closed_through,
                                           g.purged_through).where(
                g.metric.in_(sorted({metric for metric, _ in wanted}))))
            if (row.metric, row.metric_version) in wanted}


def _split_forgotten(conn: Connection, item: MetricHeld, progress: Progress | None
                     ) -> tuple[MetricHeld, Forgotten | None]:
    """``item``'s rows that can still be counted, and those that cannot (see the module):
    predictions of windows ending by ``purged_through``; labels whose every window ends
    by it, or that are a candidate of a prediction the purge forgot."""
    if progress is None or progress.purged_through is None:
        return item, None
    source = item.metric.labels
    assert source is not None
    purged_ns = _ns(progress.purged_through)  # a window boundary
    predictions = [r for r in item.predictions if r.window_end_ns > purged_ns]
    lost_predictions = [r for r in item.predictions if r.window_end_ns <= purged_ns]
    # a label can take the predictions stamped in [time - horizon, time + early]
    partly = [r for r in item.labels
              if r.time_ns - source.horizon_ns < purged_ns <= r.time_ns + source.early_ns]
    took = _candidates_of_forgotten(conn, item, partly, source.horizon_ns, source.early_ns)
    labels: list[HeldLabel] = []
    lost_labels: list[HeldLabel] = []
    for index, row in enumerate(item.labels):
        lost = row.time_ns + source.early_ns < purged_ns or index in took
        (lost_labels if lost else labels).append(row)
    if not lost_predictions and not lost_labels:
        return item, None
    return (MetricHeld(item.metric, item.version, predictions, labels),
            Forgotten(item.metric, item.version, progress.purged_through, lost_predictions,
                      lost_labels))


def _candidates_of_forgotten(conn: Connection, item: MetricHeld, labels: list[HeldLabel],
                             horizon_ns: int, early_ns: int) -> set[int]:
    """The indexes (in ``item.labels``) of ``labels`` that a forgotten prediction would
    have had as a candidate: same id, stamped within the label's span."""
    if not labels:
        return set()
    f = FORGOTTEN.c
    ids = sorted({row.label_id for row in labels})
    times: dict[str, list[int]] = {}
    for chunk in range(0, len(ids), IN_CHUNK):
        for prediction_id, event_time in conn.execute(select(f.prediction_id, f.event_time)
                                                      .where(
                f.metric == item.metric.name, f.metric_version == item.version,
                _among(conn, f.prediction_id, ids[chunk:chunk + IN_CHUNK]))):
            times.setdefault(prediction_id, []).append(event_time)
    wanted = set(labels)
    return {index for index, row in enumerate(item.labels) if row in wanted and any(
        row.time_ns - horizon_ns <= t <= row.time_ns + early_ns
        for t in times.get(row.label_id, ()))}


def _valued(conn: Connection, stage: str, valued: Valued) -> list[WindowResult]:
    """A valued window's results, its failed events stored as dead letters in the same
    transaction: each once (by its key), counted per reason when first stored."""
    if valued.failed:
        assert valued.counted_in is not None
        by_reason: dict[str, list[DeadLetter]] = {}
        for letter in valued.failed:
            by_reason.setdefault(letter.reason.split(":", 1)[0], []).append(letter)
        counts: dict[tuple[datetime, datetime, str], int] = {}
        start, end = valued.counted_in
        for reason, letters in sorted(by_reason.items()):
            new = write_dead_letters(conn, letters)
            if new:
                counts[(start, end, segment_label({"reason": reason}))] = new
                counts[(start, end, "*")] = counts.get((start, end, "*"), 0) + new
        state_store.add_counts(conn, valued.count_metric, stage, counts)
    return valued.results


def _summed(a: DeadLetterCounts, b: DeadLetterCounts) -> DeadLetterCounts:
    total: dict[str, dict[tuple[datetime, datetime, str], int]] = {
        metric: dict(counts) for metric, counts in a.items()}
    for metric, counts in b.items():
        mine = total.setdefault(metric, {})
        for key, n in counts.items():
            mine[key] = mine.get(key, 0) + n
    return total


def _closed_windows_touched(conn: Connection, item: MetricHeld, row: Progress | None
                            ) -> set[int]:
    """The windows (starts, ns) closed and not purged that the rows ``item`` holds may
    change: those of its predictions, and those with a prediction of one of its label
    ids (``row``: the metric version's progress, read after the checkpoints)."""
    p = PREDICTIONS.c
    if row is None or row.closed_through is None:
        return set()
    closed_ns = _ns(row.closed_through)
    purged_ns = None if row.purged_through is None else _ns(row.purged_through)

    def revisable(end_ns: int) -> bool:
        return end_ns <= closed_ns and (purged_ns is None or end_ns > purged_ns)

    touched = {r.window_start_ns for r in item.predictions if revisable(r.window_end_ns)}
    ids = sorted({r.label_id for r in item.labels})
    for chunk in range(0, len(ids), IN_CHUNK):
        query = select(p.window_start).distinct().where(
            p.metric == item.metric.name, p.metric_version == item.version,
            _among(conn, p.prediction_id, ids[chunk:chunk + IN_CHUNK]),
            p.window_end <= row.closed_through)
        if row.purged_through is not None:
            query = query.where(p.window_end > row.purged_through)
        touched.update(_ns(start) for (start,) in conn.execute(query))
    return touched


def _lock_progress(conn: Connection, keys: Iterable[tuple[str, int]]
                   ) -> dict[tuple[str, int], Progress]:
    """The progress rows of the metric versions (created when missing), locked until the
    transaction ends (on Postgres; SQLite has one writer at a time), in key order."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    now = utc_now()
    insert_ignore(conn, PROGRESS, [{"metric": m, "metric_version": v, "closed_through": None,
                                    "purged_through": None, "updated_at": now}
                                   for m, v in wanted], ("metric", "metric_version"))
    g = PROGRESS.c
    found = {}
    for metric, version in wanted:
        row = conn.execute(select(g.closed_through, g.purged_through).where(
            g.metric == metric, g.metric_version == version).with_for_update()).one()
        found[(metric, version)] = Progress(row.closed_through, row.purged_through)
    return found


def _save_progress(conn: Connection, metric: str, version: int, progress: Progress,
                   now: datetime) -> None:
    g = PROGRESS.c
    conn.execute(update(PROGRESS).where(g.metric == metric, g.metric_version == version)
                 .values(closed_through=progress.closed_through,
                         purged_through=progress.purged_through, updated_at=now))


def _unclosed_windows(conn: Connection, cutoff: JoinCutoff, closed: datetime | None
                      ) -> list[int]:
    p = PREDICTIONS.c
    query = select(p.window_start).distinct().where(
        p.metric == cutoff.metric.name, p.metric_version == cutoff.version,
        p.window_end <= cutoff.close_until)
    if closed is not None:
        query = query.where(p.window_end > closed)
    return sorted(_ns(start) for (start,) in conn.execute(query))


def _purged_windows(conn: Connection, cutoff: JoinCutoff) -> list[int]:
    """The starts (ns) of the held windows the purge of ``cutoff`` forgets."""
    p = PREDICTIONS.c
    return sorted(_ns(start) for (start,) in conn.execute(select(p.window_start).distinct().where(
        p.metric == cutoff.metric.name, p.metric_version == cutoff.version,
        p.window_end <= cutoff.purge_until)))


def _purge(conn: Connection, cutoff: JoinCutoff) -> None:
    assert cutoff.purge_until is not None and cutoff.metric.labels is not None
    p, lab, f = PREDICTIONS.c, LABELS.c, FORGOTTEN.c
    # Remember what is forgotten (id and time), for the labels still to come (see the
    # module), until no label that could take it can be held: one stamped before the
    # purge less early, less the horizon, could take only forgotten predictions.
    columns = ["metric", "metric_version", "partition", "offset", "event", "prediction_id",
               "event_time"]
    # once, as rows are held once (a topic recreated from offset 0 reuses their keys)
    insert_into = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(insert_into(FORGOTTEN).from_select(columns, select(*(p[c] for c in columns)).where(
        p.metric == cutoff.metric.name, p.metric_version == cutoff.version,
        p.window_end <= cutoff.purge_until, p.prediction_id.is_not(None)))
        .on_conflict_do_nothing(index_elements=list(SOURCE_KEY)))
    conn.execute(delete(FORGOTTEN).where(
        f.metric == cutoff.metric.name, f.metric_version == cutoff.version,
        f.event_time < _ns(cutoff.purge_until) - cutoff.metric.labels.early_ns
        - cutoff.metric.labels.horizon_ns))
    conn.execute(delete(PREDICTIONS).where(
        p.metric == cutoff.metric.name, p.metric_version == cutoff.version,
        p.window_end <= cutoff.purge_until))
    if cutoff.labels_before_ns is not None:
        conn.execute(delete(LABELS).where(
            lab.metric == cutoff.metric.name, lab.metric_version == cutoff.version,
            lab.label_time < cutoff.labels_before_ns))


def _marks(conn: Connection, sources: Sequence[str],
           targets: Mapping[str, tuple[MetricSpec, int]], *, lock: bool) -> JoinMarks:
    checkpoints = {source: state_store.load_checkpoints(conn, source, lock=lock)
                   for source in sorted(sources)}
    g, p = PROGRESS.c, PREDICTIONS.c
    versions = {(name, version) for name, (_, version) in targets.items()}
    progress = {(row.metric, row.metric_version): Progress(row.closed_through,
                                                           row.purged_through)
                for row in conn.execute(select(g.metric, g.metric_version, g.closed_through,
                                               g.purged_through).where(
                    g.metric.in_(sorted(targets))))
                if (row.metric, row.metric_version) in versions}
    earliest = {}
    for name, version in sorted(versions):
        query = select(func.min(p.window_end)).where(p.metric == name,
                                                     p.metric_version == version)
        closed = progress.get((name, version), Progress(None, None)).closed_through
        if closed is not None:
            query = query.where(p.window_end > closed)
        first = conn.execute(query).scalar()
        if first is not None:
            earliest[(name, version)] = first
    return JoinMarks(checkpoints, progress, earliest)


def held_counts(conn: Connection, metric: str, version: int) -> tuple[int, int]:
    """How many predictions and labels are held for a metric version."""
    p, lab = PREDICTIONS.c, LABELS.c
    predictions = conn.execute(select(func.count()).select_from(PREDICTIONS).where(
        p.metric == metric, p.metric_version == version)).scalar_one()
    labels = conn.execute(select(func.count()).select_from(LABELS).where(
        lab.metric == metric, lab.metric_version == version)).scalar_one()
    return predictions, labels


def _later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or _ns(b) > _ns(a) else a


def _ns(moment: Any) -> int:
    return int(pd.Timestamp(moment).value)


if TYPE_CHECKING:  # mypy checks that SqlHeldStore implements the port
    from streaming.label_ports import HeldStore

    def _implements_port(store: SqlHeldStore) -> HeldStore:
        return store
