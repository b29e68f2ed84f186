"""The alerts as the dashboard shows them: active states, transitions, silences and the
delivery of notifications."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd
from sqlalchemy import func, select

from monitor.alerts.silences import Silence
from monitor.storage import alert_states, outbox, silences
from monitor.storage.alert_states import StoredAlert
from monitor.storage.dashboard.read_only import ReadOnly, rows_frame
from monitor.storage.dashboard.records import TimeRange
from monitor.storage.models import (
    AlertDeliveryRow,
    AlertEventRow,
    AlertNotificationRow,
    table_of,
)
from monitor.storage.types import to_utc

EVENTS = table_of(AlertEventRow)
NOTIFICATIONS = table_of(AlertNotificationRow)
DELIVERIES = table_of(AlertDeliveryRow)


class AlertQueries:
    """Alert states, their history, silences and deliveries."""

    def __init__(self, read: ReadOnly) -> None:
        self._read = read

    def active(self, metric: str | None = None, limit: int = 500) -> list[StoredAlert]:
        """Firing, then pending alerts."""
        with self._read.session() as conn:
            return alert_states.active_alerts(conn, metric=metric)[:limit]

    def events(self, *, metric: str | None = None, span: TimeRange | None = None,
                     transitions: Sequence[str] | None = None, limit: int = 500
                     ) -> pd.DataFrame:
        """Alert transitions on the latest windows first."""
        e = EVENTS.c
        query = select(e.metric, e.metric_version, e.stage, e.rule, e.segment, e.transition,
                       e.window_start, e.window_end, e.value, e.bound, e.detail, e.severity,
                       e.at)
        if metric is not None:
            query = query.where(e.metric == metric)
        if span is not None:
            query = query.where(e.window_start >= to_utc(span.since),
                                e.window_start < to_utc(span.until))
        if transitions is not None:
            query = query.where(e.transition.in_(list(transitions)))
        query = query.order_by(e.window_start.desc(), e.id.desc()).limit(limit)
        with self._read.session() as conn:
            rows = conn.execute(query).all()
        columns = ["metric", "version", "stage", "rule", "segment", "transition",
                   "window_start", "window_end", "value", "bound", "detail", "severity", "at"]
        frame = rows_frame(rows, columns)
        for column in ("window_start", "window_end", "at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame

    def silences(self, now: datetime, limit: int = 200) -> list[Silence]:
        """Every silence, newest first: active ones and those that ended."""
        with self._read.session() as conn:
            return silences.list_silences(conn, now, include_expired=True)[:limit]

    def delivery_counts(self) -> pd.DataFrame:
        """Deliveries per channel and status, plus notifications not routed yet."""
        d = DELIVERIES.c
        with self._read.session() as conn:
            rows = conn.execute(select(d.channel, d.status, func.count())
                                .group_by(d.channel, d.status)
                                .order_by(d.channel, d.status)).all()
            waiting = outbox.count_unrouted(conn)
            n = NOTIFICATIONS.c
            outcomes = conn.execute(select(n.outcome, func.count()).where(
                n.outcome.is_not(None)).group_by(n.outcome)).all()
        frame = rows_frame(rows, ["channel", "status", "count"])
        extra = [("(outbox)", "not routed yet", waiting)] if waiting else []
        extra += [("(outbox)", str(outcome), count) for outcome, count in outcomes
                  if outcome != "routed"]
        if extra:
            frame = pd.concat([frame, rows_frame(extra, ["channel", "status", "count"])],
                              ignore_index=True)
        return frame

    def recent_deliveries(self, limit: int = 100) -> list[outbox.Delivery]:
        with self._read.session() as conn:
            return outbox.recent_deliveries(conn, limit)
