"""Several metrics evaluated together (a batch slice's, one statement of each kind for
all of them) leave the rows each metric evaluated alone leaves: each is judged by its
own rules and positions, whatever the others' are."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

import metrics
from monitor import Anomaly, Change, Monitor, Threshold
from monitor.alerts.evaluate import MetricWindows, evaluate_metrics, evaluate_windows
from monitor.alerts.rules import Rule
from monitor.spec import MetricSpec
from monitor.storage import alert_states, outbox, results, value_histories
from monitor.storage.alert_store import SqlAlertTransaction
from monitor.storage.database import Database
from monitor.storage.records import WindowResult
from tests.alerts.helpers import HOUR, T0, hour

RULE = Threshold("p99", above=1000.0, for_windows=2)  # titled by its parameters
EDITED = Threshold("p99", above=1200.0, for_windows=2)
TABLES = ("alert_states", "alert_events", "alert_notifications")


def latency(name: str, *rules: Rule) -> MetricSpec:
    mon = Monitor("slices")
    mon.stream("home", schema={"latency_ms": "float", "country": "str"})
    return mon.metric(name, "home", metrics.quantiles("latency_ms", ps=(0.5, 0.99)),
                      window="1h", segment_by=["country"], alerts=list(rules))


# Two slices of three metrics: "fires" fires on the first and resolves on the second;
# "waits" is pending on the first slice's last window and fires on the second's first
# (its pending count carried across slices); "edited" fires on the first, then its rule
# is edited, so its alert of the old title ends on the second although "waits" still
# has a rule of that title.
SLICES: list[list[tuple[MetricSpec, list[WindowResult]]]] = [
    [(latency("fires", RULE), hour(0, {"BR": 1450.0}) + hour(1, {"BR": 1500.0})),
     (latency("waits", RULE), hour(0, {"US": 100.0}) + hour(1, {"US": 1300.0})),
     (latency("edited", RULE), hour(0, {"*": 1450.0}) + hour(1, {"*": 1500.0}))],
    [(latency("fires", RULE), hour(2, {"BR": 100.0})),
     (latency("waits", RULE), hour(2, {"US": 1400.0})),
     (latency("edited", EDITED), hour(2, {"*": 1500.0}))],
]


def snapshot(database: Database) -> dict[str, list[tuple[str, ...]]]:
    """The alert tables' rows but their ids, sorted."""
    rows = {}
    with database.connect() as conn:
        for table in TABLES:
            result = conn.execute(sa.text(f"SELECT * FROM {table}"))
            kept = [i for i, name in enumerate(result.keys()) if name != "id"]
            rows[table] = sorted(tuple(repr(row[i]) for i in kept) for row in result)
    return rows


def clear(database: Database) -> None:
    with database.begin() as conn:
        for table in TABLES:
            conn.execute(sa.text(f"DELETE FROM {table}"))


def test_metrics_evaluated_together_leave_what_each_alone_leaves(database: Database) -> None:
    for number, pieces in enumerate(SLICES):
        for spec, windows in pieces:
            with database.begin() as conn:
                evaluate_windows(SqlAlertTransaction(conn), spec, 1, "batch", windows,
                                 T0 + (number + 2) * HOUR)
    alone = snapshot(database)
    clear(database)

    together = []
    for number, pieces in enumerate(SLICES):
        with database.begin() as conn:
            together += evaluate_metrics(
                SqlAlertTransaction(conn), "batch",
                [MetricWindows(spec, 1, windows) for spec, windows in pieces],
                T0 + (number + 2) * HOUR)

    assert snapshot(database) == alone
    assert [(t.key.metric, t.key.rule == RULE.title, t.transition, t.window_start)
            for t in together] == [
        ("fires", True, "pending", T0), ("fires", True, "firing", T0 + HOUR),
        ("waits", True, "pending", T0 + HOUR),
        ("edited", True, "pending", T0), ("edited", True, "firing", T0 + HOUR),
        ("fires", True, "resolved", T0 + 2 * HOUR),
        ("waits", True, "firing", T0 + 2 * HOUR),
        ("edited", True, "resolved", T0 + HOUR),  # ended: its rule was edited
        ("edited", False, "pending", T0 + 2 * HOUR)]
    with database.connect() as conn:
        states = {(a.key.metric, a.key.rule == RULE.title): a.status
                  for a in alert_states.active_alerts(conn)}
        queued = [(n.alert.metric, n.kind, n.window_start) for _, n in outbox.unrouted(conn)]
    assert states == {("waits", True): "firing", ("edited", False): "pending"}
    assert queued == [("fires", "firing", T0 + HOUR), ("edited", "firing", T0 + HOUR),
                      ("fires", "resolved", T0 + 2 * HOUR),
                      ("waits", "firing", T0 + 2 * HOUR),
                      ("edited", "resolved", T0 + HOUR)]


# rules that look back, by count (with a minimum of events) and by time, over two
# segments of three metrics: six alerts a rule, each reading its own history
LOOKING_BACK: list[Rule] = [Change("p99", relative=0.5, baseline_windows=3, for_windows=1),
                            Anomaly("p99", z=3.0, season="2h", seasons=2, min_history=1,
                                    for_windows=1, min_count=50)]
NAMES = ("a", "b", "c")


def looking_back_slices() -> list[list[tuple[MetricSpec, list[WindowResult]]]]:
    """Four slices of two windows: steady values, then a jump in one segment of "b"."""
    values = {"BR": [100.0, 110.0, 105.0, 100.0, 95.0, 100.0, 400.0, 410.0],
              "US": [200.0, 190.0, 210.0, 200.0, 205.0, 195.0, 200.0, 200.0]}
    slices = []
    for first in range(0, 8, 2):
        pieces = []
        for offset, name in enumerate(NAMES):
            windows = []
            for index in (first, first + 1):
                windows += hour(index, {segment: series[index] if name == "b"
                                        else min(series[index], 110.0) + offset
                                        for segment, series in values.items()})
            windows = [w if w.window_start != T0 + 2 * HOUR else  # too few to look back on
                       WindowResult(w.segment, w.window_start, w.window_end, 10, w.values)
                       for w in windows]
            pieces.append((latency(name, *LOOKING_BACK), windows))
        slices.append(pieces)
    return slices


class ValueReads:
    """Counts the statements reading stored values."""

    def __init__(self, database: Database) -> None:
        self.count = 0
        sa.event.listen(database.engine, "before_cursor_execute", self.seen)

    def seen(self, conn: sa.Connection, cursor: object, statement: str, *args: object) -> None:
        self.count += statement.lstrip().startswith("SELECT") and "metric_values" in statement


@pytest.mark.parametrize("per_statement", [value_histories.PER_STATEMENT, 5])
def test_the_histories_of_a_slice_are_read_together_and_judge_as_alone(
    database: Database, monkeypatch: pytest.MonkeyPatch, per_statement: int
) -> None:
    monkeypatch.setattr(value_histories, "PER_STATEMENT", per_statement)
    slices = looking_back_slices()
    with database.begin() as conn:
        conn.execute(sa.text("DELETE FROM metric_values"))
    for number, pieces in enumerate(slices):
        for spec, windows in pieces:
            with database.begin() as conn:
                results.write_windows(conn, spec.name, 1, "batch", windows)
                evaluate_windows(SqlAlertTransaction(conn), spec, 1, "batch", windows,
                                 T0 + (2 * number + 2) * HOUR)
    alone = snapshot(database)
    clear(database)

    reads = ValueReads(database)
    for number, pieces in enumerate(slices):
        with database.begin() as conn:
            for spec, windows in pieces:
                results.write_windows(conn, spec.name, 1, "batch", windows)
            evaluate_metrics(SqlAlertTransaction(conn), "batch",
                             [MetricWindows(spec, 1, windows) for spec, windows in pieces],
                             T0 + (2 * number + 2) * HOUR)

    assert snapshot(database) == alone
    fired = {(row[0], row[3], row[4]) for row in alone["alert_events"]
             if row[5] == "'firing'"}
    change = f"'{LOOKING_BACK[0].title}'"
    assert {(metric, segment) for metric, rule, segment in fired if rule == change} == {
        ("'b'", "'BR'")}  # the jump, judged against the stored windows before it
    alerts = len(NAMES) * len(LOOKING_BACK) * 2  # segments
    assert reads.count == len(slices) * -(-alerts // per_statement)
