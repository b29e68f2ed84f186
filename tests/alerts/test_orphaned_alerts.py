"""Alerts that no rule evaluates any more — a rule edited (its derived title changed) or
removed, or an older version of the metric — end when the stage evaluates the metric
again, instead of firing (and being repeated by the dispatcher) forever."""

from __future__ import annotations

import metrics
from monitor import Monitor, Threshold
from monitor.alerts.records import AlertKey
from monitor.alerts.rules import Rule
from monitor.spec import MetricSpec
from monitor.storage import alert_states, outbox
from monitor.storage.database import Database
from monitor.storage.store import SqlStore
from tests.alerts.helpers import HOUR, T0, hour

RULE = Threshold("p99", above=1000.0, for_windows=2)  # titled by its parameters
EDITED = Threshold("p99", above=1200.0, for_windows=2)


def latency(*rules: Rule) -> MetricSpec:
    mon = Monitor("orphans")
    mon.stream("home", schema={"latency_ms": "float", "country": "str"})
    return mon.metric("latency", "home", metrics.quantiles("latency_ms", ps=(0.5, 0.99)),
                      window="1h", segment_by=["country"], alerts=list(rules))


def firing(store: SqlStore, spec: MetricSpec, version: int = 1) -> None:
    """``RULE`` fires, and is announced, on the first two windows."""
    store.write_windows_and_evaluate(
        spec, version, "batch", hour(0, {"*": 1450.0}) + hour(1, {"*": 1500.0}), T0 + 2 * HOUR)


def test_an_edited_rule_resolves_the_alert_of_its_old_title(database: Database) -> None:
    store = SqlStore(database)
    firing(store, latency(RULE))
    store.write_windows_and_evaluate(latency(EDITED), 1, "batch", hour(2, {"*": 1500.0}),
                                     T0 + 3 * HOUR)
    old = AlertKey("latency", 1, "batch", RULE.title, "*")
    new = AlertKey("latency", 1, "batch", EDITED.title, "*")
    assert old != new
    with database.connect() as conn:
        states = {a.key: a for a in alert_states.active_alerts(
            conn, status=("inactive", "pending", "firing"))}
        events = [(e.key.rule, e.transition, e.window_start, e.detail)
                  for e in alert_states.events_of(conn, "latency", "batch")]
        queued = [(n.kind, n.alert, n.window_start) for _, n in outbox.unrouted(conn)]
    assert states[old].status == "inactive" and states[old].notified_at is None
    assert states[old].last_window_start == T0 + HOUR  # its windows are not walked again
    assert states[new].status == "pending"  # the edited rule walks the new window itself
    assert events[:2] == [(RULE.title, "pending", T0, "1450 > 1000"),
                          (RULE.title, "firing", T0 + HOUR, "1500 > 1000")]
    assert events[2:] == [
        (RULE.title, "resolved", T0 + HOUR, f"rule {RULE.title!r} removed or changed"),
        (EDITED.title, "pending", T0 + 2 * HOUR, "1500 > 1200")]
    assert queued == [("firing", old, T0 + HOUR), ("resolved", old, T0 + HOUR)]


def test_a_new_version_resolves_the_alerts_of_the_older_one(database: Database) -> None:
    store = SqlStore(database)
    firing(store, latency(RULE), version=1)
    store.write_windows_and_evaluate(latency(RULE), 2, "batch", hour(2, {"*": 100.0}),
                                     T0 + 3 * HOUR, notify=False)
    with database.connect() as conn:
        [ended] = [e for e in alert_states.events_of(conn, "latency", "batch")
                   if e.key.version == 1 and e.transition == "resolved"]
        queued = [(n.kind, n.alert.version) for _, n in outbox.unrouted(conn)]
        assert alert_states.active_alerts(conn) == []
    assert ended.detail == "metric version 1 replaced by version 2"
    assert queued == [("firing", 1), ("resolved", 1)]  # announced, so resolved even so


def test_a_removed_rule_ends_its_alerts_in_this_stage_only(database: Database) -> None:
    store = SqlStore(database)
    spec = latency(RULE)
    firing(store, spec)  # in batch, and in streaming, never announced from there
    store.write_windows_and_evaluate(spec, 1, "streaming",
                                     hour(0, {"*": 1450.0}) + hour(1, {"*": 1500.0}),
                                     T0 + 2 * HOUR, notify=False)
    with database.connect() as conn:
        before = len(outbox.unrouted(conn))
    store.write_windows_and_evaluate(latency(), 1, "streaming", hour(2, {"*": 1500.0}),
                                     T0 + 3 * HOUR)
    with database.connect() as conn:
        streaming = [e.transition for e in alert_states.events_of(conn, "latency", "streaming")]
        active = [(a.key.stage, a.status) for a in alert_states.active_alerts(conn)]
        assert len(outbox.unrouted(conn)) == before  # it was never announced from streaming
    assert streaming == ["pending", "firing", "resolved"]
    assert active == [("batch", "firing")]


def test_a_pending_alert_of_a_removed_rule_is_cleared(database: Database) -> None:
    store = SqlStore(database)
    store.write_windows_and_evaluate(latency(RULE), 1, "batch", hour(0, {"*": 1450.0}),
                                     T0 + HOUR)
    store.write_windows_and_evaluate(latency(EDITED), 1, "batch", hour(1, {"*": 100.0}),
                                     T0 + 2 * HOUR)
    with database.connect() as conn:
        events = [(e.key.rule, e.transition) for e in
                  alert_states.events_of(conn, "latency", "batch")]
        assert outbox.unrouted(conn) == []
        assert alert_states.active_alerts(conn) == []
    assert events == [(RULE.title, "pending"), (RULE.title, "cleared")]
