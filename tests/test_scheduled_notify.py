"""A window belongs to one stage, and that stage announces its alerts: a scheduled batch
run announces a breach in a window before the metric's streaming boundary, and leaves a
window from the boundary on to streaming — neither computed nor announced by batch — so a
breach pages once, not twice, and never not at all. And a rule removed from the metric
(which keeps its version) ends its alert at the next run, with a notice.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

import metrics
from monitor import Monitor, Threshold
from monitor.batch.runner import BatchRunner, Retry
from monitor.batch.schedule import run_metric_once
from monitor.batch.sources import source_for
from monitor.batch.tables import events_table
from monitor.storage import outbox
from monitor.storage.migrate import upgrade
from monitor.storage.store import SqlStore
from monitor.targets import Target

APP_TARGET = "tests.test_scheduled_notify:APP"
APP = Monitor("scheduled-notify-test")
STREAM = APP.stream("taps", schema={"country": "str"}, table="taps")
TAPS = APP.metric("taps", "taps", metrics.count(), window="1h",
                  alerts=[Threshold("count", above=0.0)])


@pytest.fixture
def sqlite_file_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'scheduled.sqlite'}"


def breach_in_the_last_closed_hour(url: str, stage: str, streaming_from: int = 0,
                                   windows: int = 1) -> tuple[int, int]:
    """The firing alerts and queued notifications after one scheduled run of TAPS,
    promoted to ``stage`` (to streaming from ``streaming_from`` hours after the breach's
    hour, if there), which computes ``windows`` windows."""
    upgrade(url)
    engine = sa.create_engine(url)
    events_table(STREAM).create(engine)
    hour = pd.Timestamp.now(tz="UTC").floor("1h") - pd.Timedelta("1h")
    with engine.begin() as conn:
        conn.execute(events_table(STREAM).insert(),
                     [{"ts": (hour + pd.Timedelta(minutes=m)).to_pydatetime(), "country": "SE"}
                      for m in range(5)])
    engine.dispose()
    with SqlStore.open(url) as store:
        version = store.register_metric(TAPS).version
        store.record_stage_change("taps", version, "batch", by="test", reason="notify test")
        if stage == "streaming":
            boundary = (hour + pd.Timedelta(hours=streaming_from)).to_pydatetime()
            store.record_stage_change("taps", version, stage, by="test", reason="notify test",
                                      effective_from=boundary)
    summary = run_metric_once(APP_TARGET, "taps", url, None, Retry(attempts=1))
    assert summary is not None and summary.windows_written == windows
    with SqlStore.open(url) as store, store.database.connect() as conn:
        firing = conn.execute(sa.text("SELECT count(*) FROM alert_states "
                                      "WHERE status = 'firing'")).scalar_one()
        return firing, outbox.count_unrouted(conn)


def test_a_metric_in_batch_only_is_announced_by_its_scheduled_run(sqlite_file_url: str) -> None:
    assert breach_in_the_last_closed_hour(sqlite_file_url, "batch") == (1, 1)


def test_a_breach_before_the_streaming_boundary_is_announced_by_batch(
    sqlite_file_url: str,
) -> None:
    """Batch computed every window before the boundary: it announces the breach, then
    resolves its alert there (streaming's own alerts judge the windows from it on)."""
    assert breach_in_the_last_closed_hour(sqlite_file_url, "streaming",
                                          streaming_from=1) == (0, 2)


def test_a_breach_before_a_boundary_still_ahead_stays_firing_in_batch(
    sqlite_file_url: str,
) -> None:
    assert breach_in_the_last_closed_hour(sqlite_file_url, "streaming",
                                          streaming_from=2) == (1, 1)


def test_a_breach_from_the_streaming_boundary_on_is_left_to_streaming(
    sqlite_file_url: str,
) -> None:
    assert breach_in_the_last_closed_hour(sqlite_file_url, "streaming", streaming_from=0,
                                          windows=0) == (0, 0)


def test_a_batch_run_after_the_last_rule_was_removed_resolves_its_alert(
    sqlite_file_url: str,
) -> None:
    assert breach_in_the_last_closed_hour(sqlite_file_url, "batch") == (1, 1)
    without_rules = dataclasses.replace(TAPS, alerts=())
    assert without_rules.id == TAPS.id  # a rule edit keeps the version
    hour = pd.Timestamp.now(tz="UTC").floor("1h") - pd.Timedelta("1h")
    engine = sa.create_engine(sqlite_file_url)
    with SqlStore.open(sqlite_file_url) as store:
        runner = BatchRunner(store, lambda m: source_for(m.stream, engine), retry=Retry(attempts=1))
        runner.run_many([Target(without_rules, 1)], since=hour, until=hour + pd.Timedelta("1h"))
        with store.database.connect() as conn:
            statuses = conn.execute(sa.text("SELECT status FROM alert_states")).scalars().all()
            assert statuses == ["inactive"]  # resolved: the episode is over
            assert outbox.count_unrouted(conn) == 2  # the firing, then its resolution
    engine.dispose()
