"""The batch stage under faults: a Postgres restart in the middle of a backfill, runs left
running by a run that died, store errors that waiting cannot cure, and dead letters that a
retry or a rerun must not store twice."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from metrics.drift import ReferenceProfile
from monitor.batch import runner as runner_module
from monitor.batch.runner import ABANDONED, BatchRunError, BatchRunner, Retry
from monitor.batch.sources import EventSource, TableSource
from monitor.batch.tables import events_table, load_events, rows_for_insert
from monitor.spec import MetricSpec
from monitor.storage.database import Database
from monitor.storage.models import Base
from monitor.storage.records import MetricSlice
from monitor.storage.store import SqlStore
from monitor.targets import Target
from tests.outage_proxy import OutageProxy
from tests.storage.test_batch import END, START, STREAM, events, profile, promote, stored

__all__ = ["events", "profile"]  # module fixtures shared with test_batch

OUTAGE_S = 2.0
SLICE = pd.Timedelta("6h")  # 8 slices over the two days: many starts and ends to hit
SLICES = (END - START) // SLICE
METRICS = ["latency", "ctr"]  # latency has alert rules: evaluated in the slice's transaction


@pytest.fixture(autouse=True)
def short_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "MAX_SLICE", SLICE)


# -- a Postgres restart in the middle of a backfill ---------------------------------------

@pytest.fixture
def postgres(postgres_database: Database, events: pd.DataFrame) -> Database:
    """The session's Postgres database, emptied, with the example events as the source."""
    with postgres_database.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    engine = sa.create_engine(postgres_database.url)
    with engine.connect() as conn:
        count = conn.execute(sa.text("SELECT COUNT(*) FROM home_events")).scalar() if (
            sa.inspect(conn).has_table("home_events")) else None
    if count != len(events):
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS home_events"))
        load_events(engine, STREAM, events)
    engine.dispose()
    return postgres_database


@pytest.fixture
def proxy(postgres: Database) -> Iterator[OutageProxy]:
    with OutageProxy.for_url(postgres.url) as proxy:
        yield proxy


def restart(proxy: OutageProxy) -> None:
    """Cut every connection and refuse new ones for OUTAGE_S seconds, as a restart does."""
    proxy.down()
    threading.Timer(OUTAGE_S, proxy.up).start()


class OutageWhileReading:
    """A source whose ``slice``-th read starts as Postgres goes down (``after`` False), or
    goes down once the slice is read, as the slice is being stored (``after`` True)."""

    def __init__(self, inner: EventSource, proxy: OutageProxy, slice: int, after: bool
                 ) -> None:
        self.inner, self.proxy, self.slice, self.after = inner, proxy, slice, after
        self.reads = 0

    def check(self) -> None:
        self.inner.check()

    def earliest(self) -> pd.Timestamp | None:
        return self.inner.earliest()

    def chunks(self, since: pd.Timestamp, until: pd.Timestamp) -> Iterator[pd.DataFrame]:
        self.reads += 1
        if self.reads == self.slice and not self.after:
            restart(self.proxy)
        yield from self.inner.chunks(since, until)
        if self.reads == self.slice and self.after:
            restart(self.proxy)


class OutageAtStart(SqlStore):
    """A store that goes down just as the ``slice``-th slice's runs are recorded."""

    def __init__(self, database: Database, proxy: OutageProxy, slice: int) -> None:
        super().__init__(database)
        self.proxy, self.slice, self.starts = proxy, slice, 0

    def start_runs(self, metrics: Sequence[tuple[str, int]], window_start: datetime,
                   window_end: datetime) -> list[int]:
        self.starts += 1
        if self.starts == self.slice:
            restart(self.proxy)
        return super().start_runs(metrics, window_start, window_end)


class OutageAtWrite(SqlStore):
    """A store that goes down just as the ``slice``-th slice is written: with a source that
    reads ahead, the next slice's read is under way then and meets the outage too."""

    def __init__(self, database: Database, proxy: OutageProxy, slice: int) -> None:
        super().__init__(database)
        self.proxy, self.slice, self.writes = proxy, slice, 0

    def write_slices(self, stage: str, slices: Sequence[MetricSlice], **kwargs: Any) -> int:
        self.writes += 1
        if self.writes == self.slice:
            restart(self.proxy)
        return super().write_slices(stage, slices, **kwargs)


def values_of(store: SqlStore) -> dict[str, pd.DataFrame]:
    return {name: stored(store, name) for name in METRICS}


def clear_results(database: Database) -> None:
    with database.begin() as conn:
        for table in ("metric_values", "metric_states", "batch_runs", "dead_letters",
                      "alert_events", "alert_deliveries", "alert_notifications",
                      "alert_states"):
            conn.execute(sa.text(f"DELETE FROM {table}"))


def without_outage(store: SqlStore, engine: sa.Engine, targets: list[Target]
                   ) -> dict[str, pd.DataFrame]:
    BatchRunner(store, lambda m: TableSource(engine, m.stream, chunk_rows=5_000)).run_many(
        targets, since=START, until=END)
    return values_of(store)


def assert_no_run_left_running(store: SqlStore) -> None:
    runs = store.recent_runs(limit=1000)
    assert [r for r in runs if r.status == "running"] == []
    for name in METRICS:
        assert len([r for r in runs if r.metric == name and r.status == "succeeded"]) == SLICES


@pytest.mark.parametrize("where", ["reading", "storing", "starting", "writing"])
def test_a_backfill_rides_out_a_postgres_restart(
    postgres: Database, proxy: OutageProxy, profile: ReferenceProfile, where: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    direct = SqlStore(postgres)
    targets = promote(direct, profile, METRICS)
    direct_engine = sa.create_engine(postgres.url)
    expected = without_outage(direct, direct_engine, targets)
    direct_engine.dispose()
    clear_results(postgres)

    through = Database(proxy.url(postgres.url))
    engine = sa.create_engine(through.url)
    k = 3
    stores = {"starting": OutageAtStart, "writing": OutageAtWrite}
    store = stores[where](through, proxy, k) if where in stores else SqlStore(through)

    def source(metric: MetricSpec) -> EventSource:
        table = TableSource(engine, metric.stream, chunk_rows=5_000)
        if where in stores:
            return table  # reads ahead: the next slice is read while one is stored
        return OutageWhileReading(table, proxy, k, after=where == "storing")

    try:
        summaries = BatchRunner(store, source, retry=Retry(outage_seconds=60)).run_many(
            targets, since=START, until=END)
    finally:
        engine.dispose()
        through.dispose()
    assert [s.windows_written for s in summaries] == [(END - START) // pd.Timedelta("1h")] * 2
    for name, values in values_of(direct).items():
        pd.testing.assert_frame_equal(values, expected[name], check_exact=True)
    assert_no_run_left_running(direct)
    failed = [r for r in direct.recent_runs(limit=1000) if r.status == "failed"]
    outage_errors = ("OperationalError", "SourceError", "DatabaseUnavailableError")
    assert all((r.error or "").startswith(outage_errors) for r in failed)
    if where == "starting":  # the record of the slice's start waited for the database
        assert "recording the start of slice 2026-03-02 12:00:00+00:00" in caplog.text
    else:  # the slice failed, was recorded so once the database was back, and retried
        assert failed


def test_batch_run_command_rides_out_a_postgres_restart(
    postgres: Database, proxy: OutageProxy, profile: ReferenceProfile,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from monitor.cli import batch_cmd
    from monitor.cli.main import cli

    direct = SqlStore(postgres)
    targets = promote(direct, profile, METRICS)
    direct_engine = sa.create_engine(postgres.url)
    expected = without_outage(direct, direct_engine, targets)
    direct_engine.dispose()
    clear_results(postgres)

    real_source_for = batch_cmd.source_for
    monkeypatch.setattr(batch_cmd, "source_for", lambda stream, engine: OutageWhileReading(
        real_source_for(stream, engine), proxy, 4, after=True))
    url = proxy.url(postgres.url)
    result = CliRunner().invoke(cli, [
        "--app", "examples.music_home:mon", "batch", "run", "--metric", "latency",
        "--metric", "ctr", "--database-url", url, "--since", START.isoformat(),
        "--until", END.isoformat()])
    assert result.exit_code == 0, result.output
    assert result.exception is None
    assert "latency v1: 48 windows" in result.stdout and "ctr v1: 48 windows" in result.stdout
    for name, values in values_of(direct).items():
        pd.testing.assert_frame_equal(values, expected[name], check_exact=True)
    assert_no_run_left_running(direct)


# -- runs left running --------------------------------------------------------------------

def test_the_next_run_closes_the_runs_a_dead_run_left_running(
    store: SqlStore, database: Database, events: pd.DataFrame, profile: ReferenceProfile
) -> None:
    [target] = promote(store, profile, ["latency"])
    crashed = store.start_run("latency", target.version, START.to_pydatetime(),
                              (START + SLICE).to_pydatetime())  # the process died here
    other = store.start_run("ctr", 1, START.to_pydatetime(), END.to_pydatetime())
    with source_table(database, events.head(100)) as engine:
        BatchRunner(store, lambda m: TableSource(engine, m.stream)).run(
            target.metric, target.version, since=START, until=END)
    runs = {r.id: r for r in store.recent_runs(limit=1000)}
    assert runs[crashed].status == "failed" and runs[crashed].error == ABANDONED
    error = runs[crashed].error
    assert error is not None and error.startswith("abandoned: ")
    assert runs[crashed].finished_at is not None
    assert runs[other].status == "running"  # not this run's metric
    assert [r.status for r in runs.values() if r.metric == "latency" and r.id != crashed] == [
        "succeeded"] * SLICES


def test_a_run_closed_as_abandoned_takes_its_own_end_and_a_succeeded_run_stays_so(
    store: SqlStore,
) -> None:
    t0, t1 = START.to_pydatetime(), END.to_pydatetime()
    alive = store.start_run("latency", 1, t0, t1)  # closed by mistake, then ends itself
    assert store.close_abandoned_runs(["latency"], ABANDONED) == 1
    store.finish_run(alive, status="succeeded", rows_read=10, windows_written=2)
    done = store.start_run("latency", 1, t0, t1)
    store.finish_run(done, status="succeeded", rows_read=10, windows_written=2)
    # the commit's acknowledgement was lost: the runner records a failure after all
    store.finish_run(done, status="failed", rows_read=0, windows_written=0, error="cut")
    assert {r.id: r.status for r in store.recent_runs()} == {alive: "succeeded",
                                                              done: "succeeded"}
    assert store.close_abandoned_runs(["latency"], ABANDONED) == 0


# -- errors that waiting cannot cure ------------------------------------------------------

class BrokenStore(SqlStore):
    """A store whose writes of one metric's slices (alone or with others) fail with a real
    error of the database."""

    def __init__(self, database: Database, broken: str) -> None:
        super().__init__(database)
        self.broken = broken
        self.writes: list[list[str]] = []

    def write_slices(self, stage: str, slices: Sequence[MetricSlice], **kwargs: Any) -> int:
        self.writes.append([piece.metric.name for piece in slices])
        if any(piece.metric.name == self.broken for piece in slices):
            with self.database.connect() as conn:
                conn.exec_driver_sql("SELECT * FROM no_such_table")
        return super().write_slices(stage, slices, **kwargs)


def test_a_store_error_that_waiting_cannot_cure_fails_its_metric_at_once(
    database: Database, events: pd.DataFrame, profile: ReferenceProfile
) -> None:
    store = BrokenStore(database, "latency")
    targets = promote(store, profile, METRICS)
    waits: list[float] = []
    with source_table(database, events) as engine:
        runner = BatchRunner(store, lambda m: TableSource(engine, m.stream), sleep=waits.append)
        with pytest.raises(BatchRunError, match=r"metric 'latency': .*no_such_table") as caught:
            runner.run_many(targets, since=START, until=END)
    assert waits == []  # not retried
    assert "SELECT" not in str(caught.value)  # the driver's first line, not the SQL
    runs = store.recent_runs(limit=1000)
    assert [r.status for r in runs if r.metric == "latency"] == ["failed"]
    assert len([r for r in runs if r.metric == "ctr" and r.status == "succeeded"]) == SLICES
    assert [r for r in runs if r.status == "running"] == []
    # the slice together failed, then each metric alone: ctr's windows were kept
    assert store.writes[:3] == [METRICS, ["latency"], ["ctr"]]
    assert store.writes[3:] == [["ctr"]] * (SLICES - 1)
    assert stored(store, "ctr")["window_start"].nunique() == (END - START) // pd.Timedelta("1h")


# -- dead letters stored once --------------------------------------------------------------

class CrashOnce:
    """A source whose first read of the first slice fails after its first chunk."""

    def __init__(self, inner: EventSource) -> None:
        self.inner, self.crashed = inner, False

    def check(self) -> None:
        self.inner.check()

    def earliest(self) -> pd.Timestamp | None:
        return self.inner.earliest()

    def chunks(self, since: pd.Timestamp, until: pd.Timestamp) -> Iterator[pd.DataFrame]:
        for number, chunk in enumerate(self.inner.chunks(since, until)):
            if number == 1 and not self.crashed:
                self.crashed = True
                raise RuntimeError("injected crash after the chunk with the bad rows")
            yield chunk


class source_table:
    """A nullable ``home_events`` table in the test database with ``good`` events and the
    bad rows of :func:`bad_rows` (five, two of them identical); dropped afterwards."""

    def __init__(self, database: Database, good: pd.DataFrame,
                 bad: pd.DataFrame | None = None) -> None:
        self.url, self.good, self.bad = database.url, good, bad

    def __enter__(self) -> sa.Engine:
        self.engine = sa.create_engine(self.url)
        table = events_table(STREAM)
        for column in table.columns:
            column.nullable = True  # an upstream table that lets a NULL through
        with self.engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS home_events"))
        table.create(self.engine)
        load_events(self.engine, STREAM, self.good)
        if self.bad is not None:
            with self.engine.begin() as conn:
                conn.execute(table.insert(),
                             rows_for_insert(self.bad[[c.name for c in table.columns]]))
        return self.engine

    def __exit__(self, *exc_info: object) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS home_events"))
        self.engine.dispose()


def bad_rows(events: pd.DataFrame) -> pd.DataFrame:
    """Five rows with no latency, early in the first slice: four distinct, one twice."""
    bad, _ = STREAM.schema.validate(events.head(4))
    bad["latency_ms"] = float("nan")
    return pd.concat([bad, bad.head(1)], ignore_index=True)


def dead_letter_count(database: Database) -> int:
    with database.connect() as conn:
        return int(conn.execute(sa.text("SELECT COUNT(*) FROM dead_letters")).scalar_one())


def run_with(store: SqlStore, targets: list[Target], source: Callable[..., EventSource],
             since: pd.Timestamp = START, **options: Any) -> list[int]:
    summaries = BatchRunner(store, source, **options).run_many(targets, since=since,
                                                              until=END)
    return [s.rows_rejected for s in summaries]


def test_three_identical_runs_store_each_dead_letter_once(
    store: SqlStore, database: Database, events: pd.DataFrame, profile: ReferenceProfile
) -> None:
    targets = promote(store, profile, METRICS)
    with source_table(database, events.head(400), bad_rows(events)) as engine:
        counts = []
        for since in (START, START, START, START - pd.Timedelta("3h")):  # last: other slices
            rejected = run_with(store, targets, lambda m: TableSource(engine, m.stream),
                                since=since)
            assert rejected == [5, 5]
            counts.append(dead_letter_count(database))
    assert counts == [5, 5, 5, 5]
    keys = [letter.key or "" for letter in store.recent_dead_letters()]
    assert len(set(keys)) == 5 and all(key.startswith("row:") for key in keys)


def test_a_failed_then_retried_slice_stores_its_dead_letters_once(
    store: SqlStore, database: Database, events: pd.DataFrame, profile: ReferenceProfile
) -> None:
    targets = promote(store, profile, METRICS)
    waits: list[float] = []
    with source_table(database, events.head(400), bad_rows(events)) as engine:
        crashing = CrashOnce(TableSource(engine, STREAM, chunk_rows=100))
        rejected = run_with(store, targets, lambda m: crashing,
                            retry=Retry(attempts=2, backoff_seconds=0.1), sleep=waits.append)
    assert crashing.crashed and waits == [0.1]
    assert rejected == [5, 5]
    assert dead_letter_count(database) == 5
