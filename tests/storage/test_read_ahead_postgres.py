"""Reading ahead on real sources: a Postgres table (ADBC's columnar read) and Parquet files
give the same stored values and states, byte for byte, whether the next slice is read
ahead or not; a read that fails stores nothing of its slice, and a read that fails once
is retried as any failed slice is."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import pandas as pd
import pytest
import sqlalchemy as sa

from examples.music_home import mon
from monitor.batch import runner as runner_module
from monitor.batch.read_ahead import reads_ahead
from monitor.batch.runner import BatchRunError, BatchRunner, Retry
from monitor.batch.sources import FileSource, TableSource
from monitor.spec import StreamSpec
from monitor.storage.database import Database
from monitor.storage.models import Base
from monitor.storage.store import SqlStore
from monitor.targets import Target
from tests.storage.test_batch import END, START, STREAM, events, profile, promote, stored
from tests.storage.test_batch_faults import clear_results, postgres

__all__ = ["events", "postgres", "profile"]  # module fixtures shared with test_batch(_faults)

SLICE = pd.Timedelta("6h")  # 8 slices over the two days
BROKEN = 3  # the slice whose read fails
CHUNK_ROWS = 2_000  # a few chunks per slice
# every example metric but the one joined to labels (it reads a second stream)
METRICS = [name for name, spec in mon.metrics.items() if spec.labels is None]


@pytest.fixture(autouse=True)
def short_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "MAX_SLICE", SLICE)


class WatchedTable(TableSource):
    """The table, noting which thread read each range; its read of slice ``BROKEN``
    raises after its first chunk on its first ``failures`` reads."""

    def __init__(self, engine: sa.Engine, stream: StreamSpec, failures: int = 0) -> None:
        super().__init__(engine, stream, chunk_rows=CHUNK_ROWS)
        self.failures = failures
        self.reads: list[tuple[pd.Timestamp, str]] = []

    def chunks(self, since: pd.Timestamp, until: pd.Timestamp) -> Iterator[pd.DataFrame]:
        self.reads.append((since, threading.current_thread().name))
        broken = since == START + BROKEN * SLICE and self.failures > 0
        for number, chunk in enumerate(super().chunks(since, until)):
            if broken and number == 1:
                self.failures -= 1
                raise RuntimeError("injected failure reading the slice")
            yield chunk


def everything_stored(store: SqlStore, database: Database) -> tuple[dict[str, pd.DataFrame],
                                                                     list[tuple[object, ...]]]:
    """Every metric's stored values, and every stored state as bytes."""
    with database.connect() as conn:
        states = [tuple(row) for row in conn.execute(sa.text(
            "SELECT metric, segment, window_start, rows, state FROM metric_states "
            "ORDER BY metric, segment, window_start"))]
    return {name: stored(store, name) for name in METRICS}, states


def run(store: SqlStore, source: TableSource | FileSource, targets: list[Target],
        read_ahead: bool, **options) -> None:
    BatchRunner(store, lambda m: source, read_ahead=read_ahead, **options).run_many(
        targets, since=START, until=END)


def assert_same(got: tuple[dict[str, pd.DataFrame], list[tuple[object, ...]]],
                expected: tuple[dict[str, pd.DataFrame], list[tuple[object, ...]]]) -> None:
    for name in METRICS:
        pd.testing.assert_frame_equal(got[0][name], expected[0][name], check_exact=True)
    assert got[1] == expected[1]


def read_ahead_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("read-ahead")]


@dataclass
class Baseline:
    """The example's metrics promoted on Postgres, the table's engine, and what a run
    without reading ahead stored (cleared from the database again, for the run under
    test)."""

    store: SqlStore
    targets: list[Target]
    engine: sa.Engine
    inline: WatchedTable
    expected: tuple[dict[str, pd.DataFrame], list[tuple[object, ...]]]


@pytest.fixture
def baseline(postgres: Database, profile) -> Iterator[Baseline]:
    store = SqlStore(postgres)
    targets = promote(store, profile, METRICS)
    engine = sa.create_engine(postgres.url)
    try:
        inline = WatchedTable(engine, STREAM)
        run(store, inline, targets, read_ahead=False)
        expected = everything_stored(store, postgres)
        clear_results(postgres)
        yield Baseline(store, targets, engine, inline, expected)
    finally:
        engine.dispose()


def test_postgres_values_and_states_are_identical_read_ahead_or_not(
    postgres: Database, baseline: Baseline
) -> None:
    ahead = WatchedTable(baseline.engine, STREAM)
    assert reads_ahead(ahead)
    run(baseline.store, ahead, baseline.targets, read_ahead=True)
    got = everything_stored(baseline.store, postgres)
    expected = baseline.expected
    assert_same(got, expected)
    assert len(expected[1]) > 100  # every metric stored states of every window
    assert {thread for _, thread in baseline.inline.reads} == {threading.current_thread().name}
    assert {thread.split()[0] for _, thread in ahead.reads} == {"read-ahead"}
    assert [since for since, _ in ahead.reads] == [since for since, _ in baseline.inline.reads]
    assert not read_ahead_threads()


def test_a_read_that_keeps_failing_stores_nothing_of_its_slice(
    postgres: Database, baseline: Baseline
) -> None:
    store, expected = baseline.store, baseline.expected
    failing = WatchedTable(baseline.engine, STREAM, failures=99)
    waits: list[float] = []
    with pytest.raises(BatchRunError, match="injected failure reading the slice"):
        run(store, failing, baseline.targets, read_ahead=True, retry=Retry(attempts=2),
            sleep=waits.append)
    got = everything_stored(store, postgres)
    assert waits == [2.0]  # retried once, as any failed slice
    broken_start = START + BROKEN * SLICE
    # the slices before the failing one stored whole, nothing of it nor after it
    for name in METRICS:
        before = expected[0][name][expected[0][name]["window_start"] < broken_start]
        pd.testing.assert_frame_equal(got[0][name], before.reset_index(drop=True),
                                      check_exact=True)
    assert got[1] == [s for s in expected[1] if pd.Timestamp(cast(datetime, s[2])) < broken_start]
    runs = store.recent_runs(limit=1000)
    assert not [r for r in runs if r.status == "running"]
    failed = [r for r in runs if r.status == "failed"]
    assert len(failed) == 2 * len(METRICS)  # each try of the slice, for every metric
    assert {pd.Timestamp(r.window_start) for r in failed} == {broken_start}
    assert all("injected failure" in (r.error or "") for r in failed)
    # the read failed on the reader's thread, and reading ahead stopped there
    assert {t.split()[0] for s, t in failing.reads if s == broken_start} == {"read-ahead"}
    assert max(s for s, _ in failing.reads) == broken_start
    assert not read_ahead_threads()


def test_a_read_that_fails_once_is_retried_and_every_value_stored(
    postgres: Database, baseline: Baseline
) -> None:
    waits: list[float] = []
    run(baseline.store, WatchedTable(baseline.engine, STREAM, failures=1), baseline.targets,
        read_ahead=True, sleep=waits.append)
    got = everything_stored(baseline.store, postgres)
    assert waits == [2.0]
    assert_same(got, baseline.expected)
    failed = [r for r in baseline.store.recent_runs(limit=1000) if r.status == "failed"]
    assert {pd.Timestamp(r.window_start) for r in failed} == {START + BROKEN * SLICE}


def test_parquet_values_and_states_are_identical_read_ahead_or_not(
    sqlite_database: Database, events: pd.DataFrame, profile, tmp_path
) -> None:
    import dataclasses

    from examples.music_home_events import write_events
    from monitor import Monitor

    for number, part in enumerate((events.iloc[: len(events) // 2],
                                   events.iloc[len(events) // 2:])):
        write_events(part, tmp_path / f"home-{number}.parquet")
    app = Monitor("files")
    app.stream("home", schema=STREAM.schema.to_dict(), files=str(tmp_path / "home-*"))
    with sqlite_database.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    store = SqlStore(sqlite_database)
    targets = [Target(dataclasses.replace(t.metric, stream=app.streams["home"]), t.version)
               for t in promote(store, profile, METRICS)]
    results = []
    for read_ahead in (False, True):
        clear_results(sqlite_database)
        source = FileSource(app.streams["home"], chunk_rows=CHUNK_ROWS)
        assert reads_ahead(source)
        run(store, source, targets, read_ahead=read_ahead)
        results.append(everything_stored(store, sqlite_database))
    assert_same(results[1], results[0])
    assert sum(len(v) for v in results[0][0].values()) > 1000
