"""A batch slice of several metrics is stored in one transaction: the same rows as each
metric stored alone, two commits a slice whatever the number of metrics, and nothing of
the slice when any part of it fails."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from examples.music_home_events import FEATURE_SHIFT, LATENCY_SPIKE, generate_events
from metrics.drift import ReferenceProfile
from monitor.batch.runner import BatchRunner, Retry
from monitor.batch.sources import TableSource
from monitor.batch.tables import events_table, load_events, rows_for_insert
from monitor.engine import Engine
from monitor.storage.database import Database
from monitor.storage.records import DeadLetter, MetricSlice, window_results
from monitor.storage.store import SqlStore
from monitor.targets import Target
from tests.storage.test_batch import END, START, STREAM, events, profile, promote

__all__ = ["events", "profile"]  # module fixtures shared with test_batch

# every metric with alert rules but those joined to labels; two segmented ones among them
METRICS = ["latency", "ctr", "score_psi", "fav_consistency", "session_null_rate"]
NOW = END + pd.Timedelta("1h")  # recent enough that alerts on the last windows are announced
TABLES = ("metric_values", "metric_states", "batch_runs", "dead_letters", "alert_states",
          "alert_events", "alert_notifications")
CLOCKS = {"id", "at", "silence_id"}  # ids and times of writing, which no two runs share


def snapshot(database: Database) -> dict[str, list[tuple[str, ...]]]:
    """Every row of the result tables but their ids and times of writing, sorted."""
    rows = {}
    with database.connect() as conn:
        for table in TABLES:
            result = conn.execute(sa.text(f"SELECT * FROM {table}"))
            kept = [i for i, name in enumerate(result.keys())
                    if name not in CLOCKS and not name.endswith("_at")]
            rows[table] = sorted(tuple(repr(row[i]) for i in kept) for row in result)
    return rows


def clear(database: Database) -> None:
    with database.begin() as conn:
        for table in (*TABLES, "alert_deliveries"):
            conn.execute(sa.text(f"DELETE FROM {table}"))


@pytest.fixture
def incidents(database: Database) -> Iterator[sa.Engine]:
    """A source table of the example events with a latency spike and a feature shift
    (alerts fire and are announced) and a bad row a day (dead letters), so that every part
    of a slice's transaction has something to store."""
    frame = generate_events(start=START, days=2, seed=3, events_per_hour=600, incidents=[
        dataclasses.replace(LATENCY_SPIKE, start_hour=20, end_hour=26),
        dataclasses.replace(FEATURE_SHIFT, start_hour=40)])
    engine = sa.create_engine(database.url)
    table = events_table(STREAM)
    for column in table.columns:
        column.nullable = True  # an upstream table that lets a NULL through
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS home_events"))
    table.create(engine)
    load_events(engine, STREAM, frame)
    bad, _ = STREAM.schema.validate(frame.iloc[[10, len(frame) - 10]])
    bad["latency_ms"] = float("nan")
    with engine.begin() as conn:
        conn.execute(table.insert(), rows_for_insert(bad[[c.name for c in table.columns]]))
    yield engine
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE home_events"))  # the other tests' table is loaded anew
    engine.dispose()


class Commits:
    """Counts the commits on a database's engine."""

    def __init__(self, database: Database) -> None:
        self.count = 0
        sa.event.listen(database.engine, "commit", self.seen)

    def seen(self, conn: sa.Connection) -> None:
        self.count += 1


def test_a_slice_of_many_metrics_stores_what_each_alone_stores_in_two_commits(
    store: SqlStore, incidents: sa.Engine, profile: ReferenceProfile
) -> None:
    targets = promote(store, profile, METRICS)
    clear(store.database)
    commits = Commits(store.database)

    def run(group: list[Target]) -> None:
        BatchRunner(store, lambda m: TableSource(incidents, m.stream, chunk_rows=5_000),
                    retry=Retry(attempts=1)).run_many(group, since=START, until=END, now=NOW)

    for target in targets:
        run([target])
    alone, alone_commits = snapshot(store.database), commits.count
    clear(store.database)
    commits.count = 0
    run(targets)
    together = snapshot(store.database)

    assert together == alone
    assert len(together["dead_letters"]) == 2
    assert {row[5] for row in together["alert_events"]} >= {"'firing'", "'resolved'"}
    assert len(together["alert_notifications"]) > 0
    slices = (END - START) // pd.Timedelta("1D")
    # closing abandoned runs, then each slice's runs started and its results stored
    assert commits.count == 1 + 2 * slices
    assert alone_commits == len(targets) * commits.count


def test_a_slice_that_fails_in_any_part_stores_nothing(
    store: SqlStore, events: pd.DataFrame, profile: ReferenceProfile
) -> None:
    targets = promote(store, profile, ["latency", "ctr"])
    engine = Engine([t.metric for t in targets])
    engine.update(STREAM.schema.validate(events)[0])
    low, high = START.to_pydatetime(), END.to_pydatetime()
    latency, ctr = store.start_runs([("latency", 1), ("ctr", 1)], low, high)
    letter = DeadLetter("batch:home_events", "a reason", "{}", key="row:x#0")
    pieces = [MetricSlice(targets[0].metric, 1, window_results(targets[0].metric,
                                                              engine.partials), latency),
              MetricSlice(targets[1].metric, 1, window_results(targets[1].metric,
                                                              engine.partials), 10**9)]
    with pytest.raises(LookupError, match=f"no batch run with id {10**9}"):
        store.write_slices("batch", pieces, rows_read=len(events), rejected=[letter],
                           evaluate_at=NOW.to_pydatetime())
    assert store.read_values(stage="batch", limit=None).empty
    assert store.recent_dead_letters() == []
    assert {r.id: r.status for r in store.recent_runs()} == {latency: "running",
                                                              ctr: "running"}
    after = snapshot(store.database)
    assert all(after[table] == [] for table in TABLES if table != "batch_runs")
    with pytest.raises(ValueError, match="given twice"):
        store.write_slices("batch", [pieces[0], pieces[0]], rows_read=1)

    pieces[1] = MetricSlice(pieces[1].metric, 1, pieces[1].windows, ctr)
    written = store.write_slices("batch", pieces, rows_read=len(events), rejected=[letter],
                                 evaluate_at=NOW.to_pydatetime())
    values = store.read_values(stage="batch", limit=None)
    assert written == len(values) and set(values["metric"]) == {"latency", "ctr"}
    runs = {r.id: r for r in store.recent_runs()}
    assert [(runs[i].status, runs[i].rows_read, runs[i].windows_written) for i in (latency, ctr)
            ] == [("succeeded", len(events), (END - START) // timedelta(hours=1))] * 2
    assert len(store.recent_dead_letters()) == 1


class AlertStatements:
    """Counts the statements on the alert tables (the alert evaluation's round trips; a
    statement run for many rows is one, as the driver sends them together)."""

    def __init__(self, database: Database) -> None:
        self.count = 0
        sa.event.listen(database.engine, "before_cursor_execute", self.seen)

    def seen(self, conn: sa.Connection, cursor: object, statement: str, *args: object) -> None:
        self.count += " alert_" in statement


def test_the_alert_round_trips_of_a_slice_do_not_grow_with_its_metrics(
    store: SqlStore, incidents: sa.Engine, profile: ReferenceProfile
) -> None:
    targets = promote(store, profile, METRICS)
    statements = AlertStatements(store.database)
    counted = {}
    for group in ([targets[0]], targets):
        clear(store.database)
        statements.count = 0
        BatchRunner(store, lambda m: TableSource(incidents, m.stream, chunk_rows=5_000),
                    retry=Retry(attempts=1)).run_many(group, since=START, until=END, now=NOW)
        counted[len(group)] = statements.count
    events = snapshot(store.database)
    assert len(events["alert_events"]) > 0 and len(events["alert_notifications"]) > 0
    slices = (END - START) // pd.Timedelta("1D")
    # a slice's orphans read, alert states created, locked and saved: 4 statements,
    # then at most one recording the transitions and one queueing the notifications
    assert 4 * slices <= counted[1] <= counted[len(targets)] <= 6 * slices
