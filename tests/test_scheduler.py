"""``monitor batch schedule`` in real time, on real databases.

Windows of one and two seconds close while a thread appends events to the source table.
The scheduler (a BackgroundScheduler built by the same code as the CLI) must compute each
window shortly after it becomes final; after a stop, the windows that closed while it was
down must be caught up once, in one coalesced run; a failing source must be recorded as a
failed run without stopping the scheduler. Every wait polls the database with a timeout.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TypeVar

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

import metrics
from monitor import Monitor
from monitor.batch.runner import BatchRunner, Retry, closed_until
from monitor.batch.schedule import (
    BatchScheduler,
    ScheduleSettings,
    _latest_fire,
    trigger_for,
)
from monitor.batch.sources import TableSource
from monitor.batch.tables import events_table
from monitor.errors import DefinitionError
from monitor.spec import MetricSpec
from monitor.storage.migrate import upgrade
from monitor.storage.records import BatchRun
from monitor.storage.store import SqlStore
from monitor.targets import Target, batch_targets
from tests.cli_process import CliProcess
from tests.outage_proxy import OutageProxy
from tests.storage.conftest import throwaway_postgres

ROOT = Path(__file__).resolve().parents[1]
APP_TARGET = "tests.test_scheduler:APP"
APP = Monitor("scheduler-test")
STREAM = APP.stream("clicks", schema={"latency_ms": "float", "country": "str"}, table="clicks")
LATENCY = APP.metric("latency", "clicks", metrics.quantiles("latency_ms", ps=(0.5, 0.99)),
                     window="1s", lateness="1s", segment_by=["country"])
CLICKS = APP.metric("clicks", "clicks", metrics.count(), window="2s", lateness="1s")
APP.metric("unpromoted", "clicks", metrics.mean("latency_ms"), window="1s")
SCHEDULED = (LATENCY, CLICKS)
MISSED = {"latency": 3, "clicks": 2}  # windows that close while the scheduler is stopped

DELAY_S = 0.2
LATE_BY = pd.Timedelta("300ms")  # some events arrive this late: within every lateness
ON_TIME_SLACK = pd.Timedelta("2.5s")  # a window's values appear by end + lateness + this
PASSWORD = "sched-s3cret"  # the test server trusts local users, so any password works

T = TypeVar("T")


# -- helpers ----------------------------------------------------------------------------

def wait_for(condition: Callable[[], T], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


class Appender(threading.Thread):
    """Appends a few events every 50 ms, stamped now, and one a little late.

    While the failure test has renamed the table to ``clicks_away``, the events go there,
    so that no window is left without events when the table comes back.
    """

    def __init__(self, engine: sa.Engine) -> None:
        super().__init__(daemon=True)
        self.engine = engine
        self.tables = [events_table(STREAM), events_table(STREAM, "clicks_away")]
        self.halt = threading.Event()
        self.rng = np.random.default_rng(7)

    def run(self) -> None:
        while not self.halt.wait(0.05):
            stamp = now()
            times = [stamp, stamp, stamp - LATE_BY]
            rows = [{"ts": t.to_pydatetime(), "latency_ms": float(self.rng.lognormal(5, 0.6)),
                     "country": str(self.rng.choice(["SE", "US", "BR"]))} for t in times]
            for table in self.tables:
                try:
                    with self.engine.begin() as conn:
                        conn.execute(table.insert(), rows)
                    break
                except sa.exc.DBAPIError:
                    continue
            else:
                raise AssertionError("no events table to append to")

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=5)


def prepare(url: str) -> tuple[sa.Engine, list[Target]]:
    """A migrated results database holding the source table, with the metrics in batch."""
    upgrade(url)
    engine = sa.create_engine(url)
    events_table(STREAM).create(engine)
    with SqlStore.open(url) as store:
        for spec in SCHEDULED:
            definition = store.register_metric(spec)
            store.record_stage_change(spec.name, definition.version, "batch", by="test",
                                      reason="scheduler test")
        targets = batch_targets(APP, store)
    assert [t.metric.name for t in targets] == [m.name for m in SCHEDULED]
    return engine, targets


def windows_of(store: SqlStore, metric: str) -> set[pd.Timestamp]:
    values = store.read_values(metric=metric, stage="batch", limit=None)
    return {pd.Timestamp(t) for t in values["window_start"]}


def final_at(metric: MetricSpec, window_start: pd.Timestamp) -> pd.Timestamp:
    return window_start + metric.windows.width + pd.Timedelta(metric.lateness_ns, unit="ns")


def watch(store: SqlStore, seen: dict[tuple[str, pd.Timestamp], pd.Timestamp],
          done: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll the values until ``done``, noting when each window's values first appeared."""
    def poll() -> bool:
        stamp = now()
        for spec in SCHEDULED:
            for start in windows_of(store, spec.name):
                seen.setdefault((spec.name, start), stamp)
        return done()
    wait_for(poll, timeout, what)


def succeeded(store: SqlStore, metric: str) -> list[BatchRun]:
    runs = [r for r in store.recent_runs(metric, limit=1000) if r.status == "succeeded"]
    return sorted(runs, key=lambda r: r.window_start)


def utc(when: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(when)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def assert_runs_tile(store: SqlStore, metric: MetricSpec) -> list[BatchRun]:
    """Each window was computed by exactly one succeeded run: the runs' ranges abut."""
    runs = [r for r in succeeded(store, metric.name) if r.window_end > r.window_start]
    for before, after in itertools.pairwise(runs):
        assert utc(after.window_start) == utc(before.window_end), (before, after)
    windows = windows_of(store, metric.name)
    start, end = utc(runs[0].window_start), utc(runs[-1].window_end)
    expected = pd.date_range(start, end, freq=metric.windows.width, inclusive="left")
    assert sorted(windows) == list(expected)  # no gap
    assert sum(r.windows_written for r in runs) == len(expected)  # no window twice
    return runs


def assert_values_as_one_run(url: str, engine: sa.Engine, metric: MetricSpec) -> None:
    """The scheduled values equal one BatchRunner.run over the whole range they cover."""
    with SqlStore.open(url) as store:
        scheduled = store.read_values(metric=metric.name, stage="batch", limit=None)
        assert not scheduled.duplicated(["segment", "window_start", "field"]).any()
        runs = succeeded(store, metric.name)
        since, until = utc(runs[0].window_start), utc(runs[-1].window_end)
        twin = dataclasses.replace(metric, name=f"{metric.name}_in_one_go")
        version = store.register_metric(twin).version
        BatchRunner(store, lambda m: TableSource(engine, m.stream),
                    retry=Retry(attempts=1)).run(twin, version, since=since, until=until)
        at_once = store.read_values(metric=twin.name, stage="batch", limit=None)
    pd.testing.assert_frame_equal(scheduled.drop(columns="metric"),
                                  at_once.drop(columns="metric"), check_exact=True)


def settings_for(url: str) -> ScheduleSettings:
    return ScheduleSettings(APP_TARGET, url, misfire_grace_s=60, delay_s=DELAY_S,
                            retry=Retry(attempts=1))


@pytest.fixture
def sqlite_file_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'scheduled.sqlite'}"


@pytest.fixture
def password_postgres_url() -> Iterator[str]:
    """A throwaway Postgres database, reached with a password in the URL."""
    with throwaway_postgres("monitor_sched") as url:
        yield make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)


# -- triggers ---------------------------------------------------------------------------

def test_the_default_trigger_fires_as_each_window_becomes_final() -> None:
    spec = dataclasses.replace(LATENCY, window="15m", lateness="2m")
    trigger = trigger_for(spec, delay_s=5)
    fire = trigger.get_next_fire_time(None, datetime(2026, 3, 1, 10, 7, tzinfo=UTC))
    fires = [fire]
    for _ in range(3):
        fires.append(trigger.get_next_fire_time(fires[-1], fires[-1]))
    assert [f.strftime("%H:%M:%S") for f in fires] == ["10:17:05", "10:32:05", "10:47:05",
                                                       "11:02:05"]
    assert fires[0].utcoffset() is not None and not fires[0].utcoffset()
    # The grid is fixed, so a restart at any moment schedules the same fires.
    assert trigger_for(spec, 5).get_next_fire_time(None, fires[1]) == fires[1]


def test_a_cron_schedule_overrides_the_window() -> None:
    spec = dataclasses.replace(LATENCY, schedule="15 * * * *")
    fire = trigger_for(spec).get_next_fire_time(None, datetime(2026, 3, 1, 10, 42, tzinfo=UTC))
    assert fire == datetime(2026, 3, 1, 11, 15, tzinfo=UTC)
    with pytest.raises(DefinitionError, match=r"metric 'latency'.*'61 \* \* \* \*'"):
        trigger_for(dataclasses.replace(LATENCY, schedule="61 * * * *"))


def test_a_restart_runs_the_latest_missed_fire_on_the_new_grid() -> None:
    at = datetime(2026, 3, 1, 10, 42, 30, tzinfo=UTC)
    interval = trigger_for(dataclasses.replace(LATENCY, window="5m"), delay_s=5)
    stored_off_grid = datetime(2026, 3, 1, 9, 0, 1, tzinfo=UTC)  # the delay was changed
    assert _latest_fire(interval, stored_off_grid, at) == datetime(2026, 3, 1, 10, 40, 6,
                                                                   tzinfo=UTC)
    cron = trigger_for(dataclasses.replace(LATENCY, schedule="15 * * * *"))
    assert _latest_fire(cron, datetime(2026, 3, 1, 7, 15, tzinfo=UTC), at) == datetime(
        2026, 3, 1, 10, 15, tzinfo=UTC)


# -- in real time -----------------------------------------------------------------------

def run_through_a_restart(url: str) -> None:
    engine, targets = prepare(url)
    appender = Appender(engine)
    appender.start()
    store = SqlStore.open(url)
    seen: dict[tuple[str, pd.Timestamp], pd.Timestamp] = {}
    try:
        # Running: each window's values appear shortly after it becomes final.
        scheduler = BatchScheduler(settings_for(url))
        started = now()
        jobs = scheduler.start(targets)
        assert [(j.metric, j.catching_up) for j in jobs] == [("latency", False),
                                                              ("clicks", False)]

        def live_windows() -> list[pd.Timestamp]:
            return [s for (m, s) in seen if m == "latency" and final_at(LATENCY, s) >= started]

        watch(store, seen, lambda: len(live_windows()) >= 3, 10, "three windows as they close")
        scheduler.shutdown()
        stopped = now()
        for (name, start), first_seen in seen.items():
            spec = APP.get(name)
            if final_at(spec, start) >= started:
                assert final_at(spec, start) <= first_seen <= final_at(spec, start) + ON_TIME_SLACK

        # Stopped: windows close, nothing computes them.
        before = {spec.name: windows_of(store, spec.name) for spec in SCHEDULED}
        last = {spec.name: max(before[spec.name]) for spec in SCHEDULED}
        wait_for(lambda: all(closed_until(s, now())
                             >= last[s.name] + (1 + MISSED[s.name]) * s.windows.width
                             for s in SCHEDULED), 15, "windows closing while stopped")
        assert {s.name: windows_of(store, s.name) for s in SCHEDULED} == before

        # Restarted: the missed fires collapse into one run that catches up every window.
        scheduler = BatchScheduler(settings_for(url))
        restarted = now()
        jobs = scheduler.start(targets)
        assert all(j.catching_up for j in jobs)
        closed = {s.name: closed_until(s, restarted) for s in SCHEDULED}
        watch(store, seen, lambda: all(max(windows_of(store, s.name)) >= closed[s.name]
                                       for s in SCHEDULED),
              10, "the catch-up and one more window")
        scheduler.shutdown()
    finally:
        appender.stop()
        store.close()
    with SqlStore.open(url) as store:
        for spec in SCHEDULED:
            runs = assert_runs_tile(store, spec)
            catch_up = next(r for r in runs if utc(r.window_start) == last[spec.name]
                            + spec.windows.width)
            assert utc(catch_up.window_end) >= closed[spec.name]  # one run caught up all
            assert catch_up.windows_written >= MISSED[spec.name]
            assert utc(catch_up.started_at) - restarted < pd.Timedelta("2s")
            assert not [r for r in store.recent_runs(spec.name) if r.status != "succeeded"]
            assert_values_as_one_run(url, engine, spec)
    engine.dispose()
    delays = sorted(round((t - final_at(APP.get(m), s)).total_seconds(), 2)
                    for (m, s), t in seen.items() if started <= final_at(APP.get(m), s) < stopped)
    print(f"stopped for {(restarted - stopped).total_seconds():.1f} s; live windows appeared "
          f"this long after becoming final (s): {delays}")


def test_windows_are_computed_as_they_close_and_caught_up_after_a_restart(
    sqlite_file_url: str,
) -> None:
    run_through_a_restart(sqlite_file_url)


def test_the_same_on_postgres_and_the_password_is_never_stored_or_logged(
    password_postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    run_through_a_restart(password_postgres_url)
    assert PASSWORD not in caplog.text
    with sa.create_engine(password_postgres_url).connect() as conn:
        states = [pickle.loads(row[0]) for row in
                  conn.execute(sa.text("SELECT job_state FROM apscheduler_jobs ORDER BY id"))]
    assert [s["id"] for s in states] == ["clicks", "latency"]
    for state in states:
        assert state["func"] == "monitor.batch.schedule:run_scheduled_metric"
        assert (state["coalesce"], state["max_instances"], state["misfire_grace_time"]) == (
            True, 1, 60)
        assert PASSWORD not in repr(state)


def test_a_failing_run_is_recorded_and_the_scheduler_goes_on(sqlite_file_url: str) -> None:
    url = sqlite_file_url
    engine, targets = prepare(url)
    appender = Appender(engine)
    appender.start()
    scheduler = BatchScheduler(settings_for(url))
    store = SqlStore.open(url)
    try:
        scheduler.start(targets[:1])
        wait_for(lambda: succeeded(store, "latency"), 10, "a first successful run")
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE clicks RENAME TO clicks_away")

        def failures() -> list[BatchRun]:
            return [r for r in store.recent_runs("latency") if r.status == "failed"]

        failed = wait_for(lambda: [*failures()][:2] if len(failures()) >= 2 else [], 10,
                          "two fires failing in a row")
        for run in failed:
            assert "source table 'clicks'" in (run.error or "")
            assert "does not exist" in (run.error or "")
        assert scheduler.scheduler.running
        job = scheduler.scheduler.get_job("latency")
        assert job is not None and job.next_run_time is not None
        watermark = max(utc(r.window_end) for r in succeeded(store, "latency"))
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE clicks_away RENAME TO clicks")
        retried = wait_for(lambda: [r for r in succeeded(store, "latency")
                                    if utc(r.window_start) == watermark], 10,
                           "the next fire to succeed")
        # It picks up where the last success ended, over the windows the failures missed.
        assert retried[0].windows_written >= 2
    finally:
        scheduler.shutdown()
        appender.stop()
        store.close()
    with SqlStore.open(url) as store:
        assert_runs_tile(store, LATENCY)
    engine.dispose()


# -- the command ------------------------------------------------------------------------

def collect(pipe: IO[str], lines: list[str]) -> None:
    lines.extend(iter(pipe.readline, ""))


def test_the_command_prints_its_plan_and_stops_on_sigterm(password_postgres_url: str) -> None:
    url = password_postgres_url
    engine, _ = prepare(url)
    engine.dispose()
    env = {**os.environ, "MONITOR_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-c", "from monitor.cli.main import cli; cli()", "-v",
               "--app", APP_TARGET, "batch", "schedule", "--misfire-grace", "120",
               "--delay", "0.5"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    errors: list[str] = []
    readers = [threading.Thread(target=collect, args=(pipe, out), daemon=True)
               for pipe, out in ((process.stdout, lines), (process.stderr, errors))]
    for reader in readers:
        reader.start()
    try:
        wait_for(lambda: any("scheduler running" in line for line in lines), 20,
                 "the scheduler to start")
        wait_for(lambda: any("scheduled batch run:" in line for line in errors), 20,
                 "a scheduled run")  # its log lines hold no password either
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
    for reader in readers:
        reader.join(timeout=5)
    stdout, stderr = "".join(lines), "".join(errors)
    assert process.returncode == 0, stderr
    assert "results: postgresql+psycopg://postgres:***@" in stdout
    assert "skip metric 'unpromoted': is not registered yet" in stdout
    assert "latency v1: as each 1s window closes (its end + 1s lateness + 0.5 s); next run" \
        in stdout
    assert "clicks v1: as each 2s window closes" in stdout
    assert stdout.rstrip().endswith("scheduler stopped")
    assert PASSWORD not in stdout + stderr
    with sa.create_engine(url).connect() as conn:
        jobs = conn.execute(sa.text("SELECT id, job_state FROM apscheduler_jobs")).all()
    assert sorted(job_id for job_id, _ in jobs) == ["clicks", "latency"]
    assert all(pickle.loads(state)["misfire_grace_time"] == 120 for _, state in jobs)


def test_the_command_started_while_postgres_is_down_waits_for_it(
    password_postgres_url: str,
) -> None:
    url = password_postgres_url
    engine, _ = prepare(url)
    appender = Appender(engine)
    appender.start()
    with OutageProxy.for_url(url) as proxy:
        proxy.down()
        scheduler = CliProcess(["--app", APP_TARGET, "batch", "schedule", "--delay", "0.2"],
                               {"MONITOR_DATABASE_URL": proxy.url(url)})
        try:
            scheduler.wait_for(lambda: scheduler.output.count("failed (try") >= 2, 30,
                               "two tries while the database is down")
            assert "scheduler running" not in scheduler.output
            proxy.up()
            scheduler.wait_for_line("scheduler running", 20)
            with SqlStore.open(url) as store:
                scheduler.wait_for(lambda: succeeded(store, "latency"), 20,
                                   "a scheduled run to succeed")
        finally:
            code = scheduler.stop()
            appender.stop()
    engine.dispose()
    assert code == 0, scheduler.output
    tries = [line for line in scheduler.stderr if "failed (try" in line]
    assert all("connecting to the database failed" in line and "Connection refused" in line
               and "postgresql+psycopg://postgres:***@" in line for line in tries)
    assert "Traceback" not in scheduler.output and PASSWORD not in scheduler.output
    assert scheduler.stdout[-1] == "scheduler stopped\n"
