"""Batch leaves to streaming the windows streaming counts, on SQLite and on Postgres: a
promotion at B keeps batch to the windows before B; a demotion at E resumes it at E, never
computing [B, E); a backfill follows the same rule; a newer version taking over streams
from its own boundary, and batch runs that version before it. The batch alerts end when
streaming takes over."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import metrics
from monitor import Monitor, Threshold
from monitor.batch.runner import BatchRunner, Retry, RunSummary
from monitor.batch.sources import source_for
from monitor.batch.tables import events_table
from monitor.cli.main import cli
from monitor.storage.store import SqlStore
from monitor.targets import target

T0 = pd.Timestamp("2026-03-02T00:00:00Z")
HOURS = 12
NOW = T0 + pd.Timedelta(hours=HOURS, minutes=30)  # every window of the data closed


def build(ps: tuple[float, ...]) -> Monitor:
    app = Monitor("batch-handover-test")
    app.stream("taps", schema={"latency_ms": "float"}, table="handover_taps", topic="taps")
    app.metric("taps", "taps", metrics.quantiles("latency_ms", ps=ps), window="1h",
               alerts=[Threshold("p50", above=0.0)])
    return app


APP, CHANGED = build((0.5,)), build((0.5, 0.9))  # CHANGED: the metric's version 2


def hour(h: int) -> datetime:
    return (T0 + pd.Timedelta(hours=h)).to_pydatetime()


@pytest.fixture
def times(results_url: str) -> Iterator[pd.DatetimeIndex]:
    """Events at random times over HOURS hours, in the source table."""
    rng = np.random.default_rng(5)
    stamps = pd.DatetimeIndex(T0 + pd.to_timedelta(
        np.sort(rng.integers(0, HOURS * 3600, 500)), unit="s"))
    engine = sa.create_engine(results_url)
    table = events_table(APP.streams["taps"])
    with engine.begin() as conn:
        table.drop(conn, checkfirst=True)
        table.create(conn)
        conn.execute(table.insert(), [{"ts": t.to_pydatetime(), "latency_ms": 1.0}
                                      for t in stamps])
    yield stamps
    with engine.begin() as conn:
        table.drop(conn)
    engine.dispose()


def run(url: str, app: Monitor = APP, **span: pd.Timestamp) -> RunSummary:
    engine = sa.create_engine(url)
    with SqlStore.open(url) as store:
        runner = BatchRunner(store, lambda m: source_for(m.stream, engine),
                             retry=Retry(attempts=1))
        [summary] = runner.run_many([target(app.get("taps"), store)], now=NOW, **span)
    engine.dispose()
    return summary


def batch_counts(url: str, version: int = 1, metric: str = "taps") -> dict[datetime, float]:
    with SqlStore.open(url) as store:
        values = store.read_values(metric=metric, stage="batch", version=version)
    counts = values[values["field"] == "p50"]
    return {pd.Timestamp(s).to_pydatetime(): v
            for s, v in zip(counts["window_start"], counts["count"], strict=True)}


def counted(times: pd.DatetimeIndex, hours: Iterable[int]) -> dict[datetime, float]:
    """numpy's count of events per hour, for ``hours``."""
    edges = [T0 + pd.Timedelta(hours=h) for h in range(HOURS + 1)]
    per_hour, _ = np.histogram(times.as_unit("ns").asi8, bins=[e.value for e in edges])
    return {hour(h): float(per_hour[h]) for h in hours}


def change(url: str, version: int, to: str, boundary: int | None = None) -> None:
    with SqlStore.open(url) as store:
        store.record_stage_change("taps", version, to, by="test", reason="handover test",
                                  effective_from=None if boundary is None else hour(boundary))


def register(url: str, app: Monitor = APP) -> int:
    with SqlStore.open(url) as store:
        return store.register_metric(app.get("taps")).version


def alert_statuses(url: str) -> list[tuple[int, str, str]]:
    with sa.create_engine(url).connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text(
            "SELECT metric_version, stage, status FROM alert_states ORDER BY 1, 2"))]


def test_promotion_and_demotion_split_the_windows_between_the_stages(
        results_url: str, times: pd.DatetimeIndex) -> None:
    register(results_url)
    change(results_url, 1, "batch")
    change(results_url, 1, "streaming", boundary=4)  # B
    first = run(results_url)
    assert first.windows_written == 4
    assert first.streamed == [(pd.Timestamp(hour(4)), T0 + pd.Timedelta(hours=HOURS))]
    assert "left to streaming" in first.left_to_streaming()
    assert batch_counts(results_url) == counted(times, range(0, 4))
    # batch reached the boundary: its firing alert ends there, streaming judges from it on
    assert alert_statuses(results_url) == [(1, "batch", "inactive")]
    with sa.create_engine(results_url).connect() as conn:
        detail = conn.execute(sa.text("SELECT detail FROM alert_events WHERE transition = "
                                      "'resolved'")).scalar_one()
    assert detail.startswith("streaming counts the windows from 2026-03-02T04:00:00")

    again = run(results_url)  # nothing of its own left to compute
    assert again.up_to_date and again.windows_written == 0

    change(results_url, 1, "batch", boundary=8)  # E: demoted, batch resumes there
    resumed = run(results_url)
    assert resumed.windows_written == HOURS - 8
    assert batch_counts(results_url) == counted(times, [*range(0, 4), *range(8, HOURS)])

    backfill = run(results_url, since=T0, until=T0 + pd.Timedelta(hours=HOURS))
    assert backfill.windows_written == 4 + HOURS - 8  # [B, E) stays streaming's
    assert backfill.streamed == [(pd.Timestamp(hour(4)), pd.Timestamp(hour(8)))]
    assert batch_counts(results_url) == counted(times, [*range(0, 4), *range(8, HOURS)])

    # a 3h rollup of the batch states takes the coarse windows batch has whole: [0, 3), [9, 12)
    rolled = CliRunner().invoke(cli, [
        "--app", "tests.test_batch_handover:APP", "batch", "rollup", "taps", "--window", "3h",
        "--since", T0.isoformat(), "--until", hour(HOURS).isoformat(),
        "--database-url", results_url], catch_exceptions=False)
    assert rolled.exit_code == 0, rolled.output
    assert "left out: the coarse windows with a part in [2026-03-02T04:00:00+00:00" in (
        rolled.output)
    assert "taps@3h v1: 2 windows" in rolled.output
    per_hour = counted(times, range(HOURS))
    assert batch_counts(results_url, metric="taps@3h") == {
        hour(h): sum(per_hour[hour(h + i)] for i in range(3)) for h in (0, 9)}


def test_a_new_version_takes_over_at_its_own_boundary(
        results_url: str, times: pd.DatetimeIndex) -> None:
    register(results_url)
    change(results_url, 1, "batch")
    change(results_url, 1, "streaming", boundary=3)
    assert run(results_url).windows_written == 3
    assert register(results_url, CHANGED) == 2
    change(results_url, 2, "batch")
    change(results_url, 2, "streaming", boundary=6)  # v1 streams [3, 6), v2 from 6
    with SqlStore.open(results_url) as store:
        v2 = target(CHANGED.get("taps"), store)
    assert v2.version == 2
    assert [(s.start, s.end) for s in v2.streamed] == [(hour(6), None)]
    summary = run(results_url, CHANGED)  # batch runs the current version, before its span
    assert summary.version == 2 and summary.windows_written == 6
    assert batch_counts(results_url, version=2) == counted(times, range(0, 6))
    assert batch_counts(results_url, version=1) == counted(times, range(0, 3))
    # v1's batch alert ended when v2 was evaluated; v2's when streaming took v2 over
    assert alert_statuses(results_url) == [(1, "batch", "inactive"), (2, "batch", "inactive")]


def test_a_span_from_the_epoch_leaves_batch_nothing(
        results_url: str, times: pd.DatetimeIndex) -> None:
    register(results_url)
    change(results_url, 1, "batch")
    with SqlStore.open(results_url) as store:
        store.record_stage_change("taps", 1, "streaming", by="test", reason="replay",
                                  effective_from=datetime(1970, 1, 1, tzinfo=UTC))
    summary = run(results_url)
    assert summary.up_to_date and summary.windows_written == 0
    assert batch_counts(results_url) == {}
