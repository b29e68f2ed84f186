"""Alert states and their history, on the caller's connection and transaction.

:func:`lock_positions` creates the missing states of alerts and locks them
(``SELECT ... FOR UPDATE`` on Postgres; SQLite serializes writers anyway), so two
writers evaluating the same windows cannot both fire. :func:`orphaned_alerts` finds
(and locks) the active alerts no rule evaluates any more, for evaluation to end them.
Both take the alerts of several metrics at once: a batch slice evaluates all its
metrics with one statement of each, not one a metric.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.engine import Connection

from monitor.alerts.lifecycle import AlertState
from monitor.alerts.ports import PositionSave
from monitor.alerts.records import AlertKey, AlertTransition, StoredAlert
from monitor.alerts.walk import Position
from monitor.storage.insert_ignore import insert_ignore
from monitor.storage.models import AlertEventRow, AlertStateRow, table_of

STATES = table_of(AlertStateRow)
EVENTS = table_of(AlertEventRow)
STATE_KEY = ("metric", "metric_version", "stage", "rule", "segment")


@dataclass(frozen=True)
class AlertEvent:
    key: AlertKey
    transition: str
    window_start: datetime
    window_end: datetime
    value: float
    bound: float
    detail: str
    severity: str
    at: datetime


def lock_positions(conn: Connection, keys: Sequence[AlertKey],
                   labels: dict[AlertKey, tuple[str, dict[str, str]]], now: datetime
                   ) -> dict[AlertKey, tuple[Position, datetime | None]]:
    """The position (and ``notified_at``) of each alert in ``keys``, created inactive
    when new and locked for this transaction. ``labels`` gives each key's severity and
    labels. The keys may be of several metrics (a batch slice's): they are created in
    one statement and read in one, whatever their number."""
    if not keys:
        return {}
    fresh = [{**_key_columns(key), "status": "inactive", "consecutive": 0,
              "last_window_start": None, "last_window_end": None, "active_since": None,
              "value": None, "bound": None,
              "detail": "", "severity": labels[key][0], "labels": labels[key][1],
              "notified_at": None, "updated_at": now, "examples": None} for key in keys]
    insert_ignore(conn, STATES, fresh, STATE_KEY)
    segments: dict[tuple[str, int, str], set[str]] = {}
    for key in keys:
        segments.setdefault((key.metric, key.version, key.stage), set()).add(key.segment)
    c = STATES.c
    # each metric's rows of its segments, as one metric's evaluation locked them alone
    query = (select(c.metric, c.metric_version, c.stage, c.rule, c.segment, c.status,
                    c.consecutive, c.last_window_start, c.active_since, c.notified_at)
             .where(or_(*(and_(c.metric == metric, c.metric_version == version,
                               c.stage == stage, c.segment.in_(sorted(names)))
                          for (metric, version, stage), names in segments.items())))
             .with_for_update())
    wanted = set(keys)
    found = {}
    for row in conn.execute(query):
        key = AlertKey(row.metric, row.metric_version, row.stage, row.rule, row.segment)
        if key in wanted:
            state = AlertState(row.status, row.consecutive)
            found[key] = (Position(state, row.last_window_start, row.active_since),
                          row.notified_at)
    return found


def orphaned_alerts(conn: Connection, stage: str, rules: Mapping[tuple[str, int],
                                                                  Collection[str]]
                    ) -> list[StoredAlert]:
    """For each ``(metric, version)`` in ``rules``, the pending and firing alerts of the
    metric in ``stage`` that no rule evaluates any more (of that version with a rule not
    in its ``rules``, or of an older version), in one statement for all the metrics;
    locked for this transaction in key order (metric, version, rule, segment)."""
    if not rules:
        return []
    c = STATES.c
    query = (select(STATES)
             .where(c.stage == stage, c.status.in_(["pending", "firing"]),
                    or_(*(and_(c.metric == metric,
                               or_(c.metric_version < version,
                                   and_(c.metric_version == version,
                                        c.rule.not_in(sorted(titles)))))
                          for (metric, version), titles in rules.items())))
             .order_by(c.metric, c.metric_version, c.rule, c.segment)
             .with_for_update())
    return [_stored(row._mapping) for row in conn.execute(query)]


# the columns an evaluation saves, each bound by name (``v_...``: a bound parameter may not
# share a column's name in an UPDATE's SET)
_SAVED = ("status", "consecutive", "last_window_start", "last_window_end", "active_since",
          "value", "bound", "detail", "severity", "labels", "notified_at", "updated_at",
          "examples")


def save_positions(conn: Connection, saves: Sequence[PositionSave]) -> None:
    """Keep where each alert stands, in one statement run for every row (the driver
    sends them together: one round trip, where a statement per alert cost one each)."""
    if not saves:
        return
    c = STATES.c
    statement = (update(STATES)
                 .where(*(c[name] == bindparam(f"k_{name}", type_=c[name].type)
                          for name in STATE_KEY))
                 .values({name: bindparam(f"v_{name}", type_=c[name].type)
                          for name in _SAVED}))
    rows = []
    for save in saves:
        position = save.position
        saved = {"status": position.state.status, "consecutive": position.state.consecutive,
                 "last_window_start": position.last_window,
                 "last_window_end": save.last_window_end,
                 "active_since": position.active_since, "value": save.value,
                 "bound": save.bound, "detail": save.detail, "severity": save.severity,
                 "labels": save.labels, "notified_at": save.notified_at,
                 "updated_at": save.now, "examples": save.examples}
        rows.append({**{f"k_{name}": value for name, value in _key_columns(save.key).items()},
                     **{f"v_{name}": value for name, value in saved.items()}})
    conn.execute(statement, rows)


def mark_notified(conn: Connection, key: AlertKey, at: datetime) -> None:
    conn.execute(update(STATES).where(_where(key)).values(notified_at=at))


def record_events(conn: Connection, transitions: Iterable[AlertTransition],
                  now: datetime) -> None:
    rows = [{**_key_columns(t.key), "transition": t.transition,
             "window_start": t.window_start, "window_end": t.window_end, "value": t.value,
             "bound": t.bound, "detail": t.detail, "severity": t.severity, "at": now}
            for t in transitions]
    if rows:
        conn.execute(EVENTS.insert(), rows)


def active_alerts(conn: Connection, *, status: Sequence[str] = ("pending", "firing"),
                  metric: str | None = None) -> list[StoredAlert]:
    """Alerts in ``status``, firing first, then by metric, rule and segment."""
    c = STATES.c
    query = select(STATES).where(c.status.in_(list(status)))
    if metric is not None:
        query = query.where(c.metric == metric)
    rows = [_stored(row._mapping) for row in conn.execute(query)]
    return sorted(rows, key=lambda a: (a.status != "firing", a.key))


def recent_events(conn: Connection, *, limit: int = 50, metric: str | None = None
                  ) -> list[AlertEvent]:
    """The transitions on the latest windows, newest first."""
    query = select(EVENTS).order_by(EVENTS.c.window_start.desc(), EVENTS.c.id.desc()
                                    ).limit(limit)
    if metric is not None:
        query = query.where(EVENTS.c.metric == metric)
    return [_event(row._mapping) for row in conn.execute(query)]


def events_of(conn: Connection, metric: str, stage: str) -> list[AlertEvent]:
    """Every transition of ``metric`` in ``stage``, in the order they happened."""
    query = (select(EVENTS).where(EVENTS.c.metric == metric, EVENTS.c.stage == stage)
             .order_by(EVENTS.c.id))
    return [_event(row._mapping) for row in conn.execute(query)]


def _key_columns(key: AlertKey) -> dict[str, Any]:
    return {"metric": key.metric, "metric_version": key.version, "stage": key.stage,
            "rule": key.rule, "segment": key.segment}


def _where(key: AlertKey) -> Any:
    c = STATES.c
    return and_(c.metric == key.metric, c.metric_version == key.version,
                c.stage == key.stage, c.rule == key.rule, c.segment == key.segment)


def _key_of(row: Any) -> AlertKey:
    return AlertKey(row["metric"], row["metric_version"], row["stage"], row["rule"],
                    row["segment"])


def _stored(row: Any) -> StoredAlert:
    return StoredAlert(_key_of(row), row["status"], row["consecutive"],
                       row["last_window_start"], row["last_window_end"], row["active_since"],
                       row["value"],
                       row["bound"], row["detail"], row["severity"], dict(row["labels"]),
                       row["notified_at"], row["updated_at"], row["examples"])


def _event(row: Any) -> AlertEvent:
    return AlertEvent(_key_of(row), row["transition"], row["window_start"],
                      row["window_end"], row["value"], row["bound"], row["detail"],
                      row["severity"], row["at"])


