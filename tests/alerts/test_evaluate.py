"""evaluate_windows on real databases: window order, idempotency, atomicity with the
values, history from stored values, and agreement with the backtest for history rules."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

import metrics
from monitor import Anomaly, Change, Monitor, Threshold
from monitor.alerts.backtest import alert_episodes
from monitor.alerts.evaluate import evaluate_windows
from monitor.storage import alert_states, outbox, results
from monitor.storage.alert_store import SqlAlertTransaction
from monitor.storage.database import Database
from monitor.storage.records import WindowResult
from monitor.storage.store import SqlStore
from tests.alerts.helpers import HOUR, T0, hour, key, latency_metric

SPEC = latency_metric()


def test_windows_are_evaluated_in_window_order_whatever_order_they_come_in(
    database: Database,
) -> None:
    windows = [w for i, v in enumerate([200.0, 1450.0, 1500.0, 300.0])
               for w in hour(i, {"country=BR": v})]
    with database.begin() as conn:
        results.write_windows(conn, "latency", 1, "batch", windows)
        found = evaluate_windows(SqlAlertTransaction(conn), SPEC, 1, "batch",
                                 list(reversed(windows)), T0 + 4 * HOUR)
    assert [(t.transition, t.window_start) for t in found] == [
        ("pending", T0 + HOUR), ("firing", T0 + 2 * HOUR), ("resolved", T0 + 3 * HOUR)]
    firing = found[1]
    assert (firing.value, firing.bound, firing.detail) == (1500.0, 1000.0, "1500 > 1000")
    assert firing.severity == "critical"
    assert firing.labels["country"] == "BR" and firing.labels["owner"] == "home-platform"
    with database.connect() as conn:
        kinds = [n.kind for _, n in outbox.unrouted(conn)]
        history = [e.transition for e in alert_states.events_of(conn, "latency", "batch")]
    assert kinds == ["firing", "resolved"]  # pending and cleared are history only
    assert history == ["pending", "firing", "resolved"]


def test_storing_windows_again_repeats_no_transition(database: Database) -> None:
    store = SqlStore(database)
    windows = [w for i, v in enumerate([1450.0, 1500.0]) for w in hour(i, {"country=BR": v})]
    store.write_windows_and_evaluate(SPEC, 1, "batch", windows, T0 + 2 * HOUR)
    store.write_windows_and_evaluate(SPEC, 1, "batch", windows, T0 + 3 * HOUR)
    store.write_windows_and_evaluate(SPEC, 1, "batch", windows[1:], T0 + 3 * HOUR)
    with database.connect() as conn:
        assert len(outbox.unrouted(conn)) == 1
        [firing] = alert_states.active_alerts(conn)
    assert firing.key == key() and firing.status == "firing"
    assert firing.last_window_start == T0 + HOUR and firing.active_since == T0


def test_a_rolled_back_write_leaves_no_alert_state_or_notification(database: Database) -> None:
    windows = [w for i, v in enumerate([1450.0, 1500.0]) for w in hour(i, {"*": v})]
    with pytest.raises(RuntimeError, match="crash"), database.begin() as conn:
        results.write_windows(conn, "latency", 1, "batch", windows)
        assert evaluate_windows(SqlAlertTransaction(conn), SPEC, 1, "batch", windows,
                                T0 + 2 * HOUR)
        raise RuntimeError("crash before commit")
    with database.connect() as conn:
        assert alert_states.active_alerts(conn, status=("inactive", "pending", "firing")) == []
        assert outbox.unrouted(conn) == []
    # and the windows evaluate normally once they are stored for real
    store = SqlStore(database)
    store.write_windows_and_evaluate(SPEC, 1, "batch", windows, T0 + 2 * HOUR)
    with database.connect() as conn:
        assert [n.kind for _, n in outbox.unrouted(conn)] == ["firing"]


def test_old_windows_are_recorded_but_only_a_current_alert_is_announced(
    database: Database,
) -> None:
    store = SqlStore(database)
    days_later = T0 + timedelta(days=3)
    old = [w for i, v in enumerate([1450.0, 1500.0, 200.0, 1450.0, 1500.0])
           for w in hour(i, {"*": v})]
    store.write_windows_and_evaluate(SPEC, 1, "batch", old, days_later)
    with database.connect() as conn:
        assert outbox.unrouted(conn) == []  # two episodes, both on old windows
        [alert] = alert_states.active_alerts(conn)
    assert alert.status == "firing" and alert.notified_at is None  # nothing to repeat
    # the backfill reaches the present and the alert is still firing: announced, once
    recent = [w for i in range(5, 3 * 24 - 1) for w in hour(i, {"*": 1600.0})]
    store.write_windows_and_evaluate(SPEC, 1, "batch", recent, days_later)
    store.write_windows_and_evaluate(SPEC, 1, "batch", hour(3 * 24 - 1, {"*": 1700.0}),
                                     days_later)
    with database.connect() as conn:
        [(_, late)] = outbox.unrouted(conn)
        [alert] = alert_states.active_alerts(conn)
    assert late.kind == "firing" and late.value == 1600.0
    assert late.window_start == T0 + (3 * 24 - 2) * HOUR
    assert alert.notified_at == days_later
    store.write_windows_and_evaluate(SPEC, 1, "batch", hour(3 * 24, {"*": 100.0}),
                                     days_later + HOUR)
    with database.connect() as conn:
        assert [n.kind for _, n in outbox.unrouted(conn)] == ["firing", "resolved"]


def test_a_stage_that_does_not_notify_records_alerts_but_resolves_announced_ones(
    database: Database,
) -> None:
    store = SqlStore(database)
    firing = [w for i, v in enumerate([1450.0, 1500.0]) for w in hour(i, {"*": v})]
    store.write_windows_and_evaluate(SPEC, 1, "batch", firing, T0 + 2 * HOUR, notify=False)
    with database.connect() as conn:
        assert outbox.unrouted(conn) == []
        assert [a.status for a in alert_states.active_alerts(conn)] == ["firing"]
    store.write_windows_and_evaluate(SPEC, 1, "batch", hour(2, {"*": 100.0}), T0 + 3 * HOUR)
    with database.connect() as conn:
        assert outbox.unrouted(conn) == []  # it was never announced: no resolved notice

    store.write_windows_and_evaluate(SPEC, 1, "batch", hour(3, {"*": 1450.0})
                                     + hour(4, {"*": 1500.0}), T0 + 5 * HOUR)
    store.write_windows_and_evaluate(SPEC, 1, "batch", hour(5, {"*": 100.0}), T0 + 6 * HOUR,
                                     notify=False)  # e.g. promoted to streaming meanwhile
    with database.connect() as conn:
        assert [n.kind for _, n in outbox.unrouted(conn)] == ["firing", "resolved"]


def history_metric() -> Monitor:
    mon = Monitor("history")
    mon.stream("s", schema={"x": "float", "country": "str"})
    mon.metric("m", "s", metrics.mean("x"), window="1h", segment_by=["country"], alerts=[
        Change("mean", relative=0.3, baseline_windows=6, for_windows=2, name="moved"),
        Anomaly("mean", z=4.0, history_windows=12, min_history=6, name="odd"),
        Threshold("mean", above=30.0, name="high"),
    ])
    return mon


@pytest.mark.parametrize("per_call", [1, 5])
def test_history_rules_agree_with_the_backtest_however_windows_arrive(
    database: Database, per_call: int
) -> None:
    spec = history_metric().get("m")
    rng = np.random.default_rng(3)
    rows, windows = [], []
    for country in ("BR", "SE"):
        series = 10 + rng.normal(0, 1, size=60)
        series[20:26] *= 2.0  # a shift the change and anomaly rules see
        series[40] = math.nan  # a window without a value
        series[45:47] = 40.0
        for i, value in enumerate(series):
            start = T0 + i * HOUR
            windows.append(WindowResult(f"country={country}", start, start + HOUR, 5,
                                        {"mean": float(value)}))
            rows.append(("m", "batch", f"country={country}", start, start + HOUR, "mean",
                         float(value), 5))
    values = pd.DataFrame(rows, columns=["metric", "stage", "segment", "window_start",
                                         "window_end", "field", "value", "count"])
    expected = alert_episodes(spec, values)
    assert set(expected["rule"]) == {"moved", "odd", "high"}

    store = SqlStore(database)
    by_time = sorted(windows, key=lambda w: w.window_start)
    for i in range(0, len(by_time), 2 * per_call):  # two segments per window
        store.write_windows_and_evaluate(spec, 1, "batch", by_time[i:i + 2 * per_call],
                                         T0 + timedelta(days=5))
    with database.connect() as conn:
        events = [e for e in alert_states.events_of(conn, "m", "batch")
                  if e.transition in ("firing", "resolved")]
    fired = sorted((e.key.rule, e.key.segment, e.window_start) for e in events
                   if e.transition == "firing")
    resolved = sorted((e.key.rule, e.key.segment, e.window_start) for e in events
                      if e.transition == "resolved")
    assert fired == sorted(zip(expected["rule"], expected["segment"],
                               expected["fired_window_start"], strict=True))
    ends = expected.dropna(subset=["resolved_window_start"])
    assert resolved == sorted(zip(ends["rule"], ends["segment"],
                                  ends["resolved_window_start"], strict=True))


def test_two_writers_storing_the_same_windows_at_once_fire_once(database: Database) -> None:
    import threading

    windows = [w for i, v in enumerate([1450.0, 1500.0]) for w in hour(i, {"*": v})]
    SqlStore(database).write_windows_and_evaluate(SPEC, 1, "batch", windows[:1], T0 + HOUR)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            start.wait()
            SqlStore(database).write_windows_and_evaluate(SPEC, 1, "batch", windows,
                                                          T0 + 2 * HOUR)
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    with database.connect() as conn:
        assert [n.kind for _, n in outbox.unrouted(conn)] == ["firing"]
        events = [e.transition for e in alert_states.events_of(conn, "latency", "batch")]
    assert events == ["pending", "firing"]
