"""The notification outbox and its deliveries, on the caller's connection.

A notification is written in the transaction of the transition that caused it (the
transactional outbox), so it exists exactly when the transition does. The dispatcher
then routes it into one delivery per channel, groups deliveries into messages and marks
them sent or failed; each step is a short transaction of its own, so a dispatcher killed
at any point resumes where the stored rows say.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from monitor.alerts.grouping import Waiting
from monitor.alerts.records import AlertKey, Message, Notification
from monitor.storage.insert_ignore import insert_ignore
from monitor.storage.models import (
    ERROR_CHARS,
    AlertDeliveryRow,
    AlertNotificationRow,
    table_of,
)

NOTIFICATIONS = table_of(AlertNotificationRow)
DELIVERIES = table_of(AlertDeliveryRow)
DELIVERY_STATUSES = ("pending", "sent", "failed", "silenced")


@dataclass(frozen=True)
class Delivery:
    id: int
    notification: Notification
    channel: str
    status: str
    message_key: str | None
    attempts: int
    last_error: str | None
    sent_at: datetime | None


def enqueue(conn: Connection, notifications: Iterable[Notification]) -> int:
    """Queue notifications; one whose key is queued already is left as it is."""
    rows = [{"key": n.key, "kind": n.kind, "metric": n.alert.metric,
             "metric_version": n.alert.version, "stage": n.alert.stage, "rule": n.alert.rule,
             "segment": n.alert.segment, "severity": n.severity, "labels": dict(n.labels),
             "window_start": n.window_start, "window_end": n.window_end, "value": n.value,
             "bound": n.bound, "detail": n.detail, "created_at": n.created_at,
             "routed_at": None, "outcome": None, "silence_id": None} for n in notifications]
    return insert_ignore(conn, NOTIFICATIONS, rows, ["key"])


def unrouted(conn: Connection, limit: int = 1000) -> list[tuple[int, Notification]]:
    """Notifications the dispatcher has not routed yet, oldest first."""
    query = (select(NOTIFICATIONS).where(NOTIFICATIONS.c.routed_at.is_(None))
             .order_by(NOTIFICATIONS.c.id).limit(limit))
    return [(row.id, notification_of(row._mapping)) for row in conn.execute(query)]


def count_unrouted(conn: Connection) -> int:
    query = select(func.count()).select_from(NOTIFICATIONS).where(
        NOTIFICATIONS.c.routed_at.is_(None))
    return int(conn.execute(query).scalar_one())


def route(conn: Connection, notification_id: int, *, outcome: str, now: datetime,
          channels: Sequence[str] = (), failed: dict[str, str] | None = None,
          silence_id: int | None = None) -> None:
    """Record where a notification goes: a pending delivery per channel, a failed one
    (with the reason) per channel in ``failed``."""
    conn.execute(update(NOTIFICATIONS).where(NOTIFICATIONS.c.id == notification_id)
                 .values(routed_at=now, outcome=outcome, silence_id=silence_id))
    rows = [_delivery(notification_id, channel, "pending", None, now) for channel in channels]
    rows += [_delivery(notification_id, channel, "failed", error, now)
             for channel, error in (failed or {}).items()]
    insert_ignore(conn, DELIVERIES, rows, ["notification_id", "channel"])


def _delivery(notification_id: int, channel: str, status: str, error: str | None,
              now: datetime) -> dict[str, Any]:
    return {"notification_id": notification_id, "channel": channel, "status": status,
            "message_key": None, "attempts": 0, "next_attempt_at": None,
            "last_error": error, "created_at": now, "sent_at": None}


def waiting(conn: Connection) -> list[Waiting]:
    """Pending deliveries not yet in a message."""
    d, n = DELIVERIES.c, NOTIFICATIONS.c
    query = (select(d.id, d.channel, n.key, n.labels, n.created_at)
             .join(NOTIFICATIONS, d.notification_id == n.id)
             .where(d.status == "pending", d.message_key.is_(None)).order_by(d.id))
    return [Waiting(row.id, row.channel, row.key, dict(row.labels), row.created_at)
            for row in conn.execute(query)]


def assign_message(conn: Connection, delivery_ids: Sequence[int], message_key: str) -> None:
    conn.execute(update(DELIVERIES).where(DELIVERIES.c.id.in_(list(delivery_ids)))
                 .values(message_key=message_key))


def pending_messages(conn: Connection) -> list[Message]:
    """Formed messages not yet sent, per channel in the order their alerts happened."""
    d, n = DELIVERIES.c, NOTIFICATIONS.c
    query = (select(d.id, d.channel, d.message_key, d.attempts, d.next_attempt_at,
                    NOTIFICATIONS)
             .join(NOTIFICATIONS, d.notification_id == n.id)
             .where(d.status == "pending", d.message_key.is_not(None)).order_by(d.id))
    grouped: dict[tuple[str, str], list[Any]] = {}
    for row in conn.execute(query):
        grouped.setdefault((row.channel, row.message_key), []).append(row)
    messages = []
    for (channel, key), rows in grouped.items():
        notes = tuple(notification_of(r._mapping) for r in rows)
        messages.append(Message(channel, key, tuple(r.id for r in rows), notes,
                                max(r.attempts for r in rows), rows[0].next_attempt_at,
                                min(note.created_at for note in notes)))
    return sorted(messages, key=lambda m: m.delivery_ids[0])


def mark_silenced(conn: Connection, delivery_ids: Sequence[int], silence_id: int | None
                  ) -> None:
    conn.execute(update(DELIVERIES).where(DELIVERIES.c.id.in_(list(delivery_ids)))
                 .values(status="silenced", next_attempt_at=None,
                         last_error=f"silenced by silence {silence_id}"))


def mark_sent(conn: Connection, message: Message, now: datetime) -> None:
    conn.execute(update(DELIVERIES).where(DELIVERIES.c.id.in_(list(message.delivery_ids)))
                 .values(status="sent", sent_at=now, attempts=message.attempts + 1,
                         next_attempt_at=None))


def mark_failed_attempt(conn: Connection, message: Message, error: str, *,
                        retry_at: datetime | None) -> None:
    """One more failed attempt; ``retry_at`` None gives up (status failed)."""
    if len(error) > ERROR_CHARS:
        error = error[: ERROR_CHARS - 1] + "…"
    conn.execute(update(DELIVERIES).where(DELIVERIES.c.id.in_(list(message.delivery_ids)))
                 .values(status="pending" if retry_at is not None else "failed",
                         attempts=message.attempts + 1, next_attempt_at=retry_at,
                         last_error=error))


def recent_deliveries(conn: Connection, limit: int = 50) -> list[Delivery]:
    """The latest deliveries, newest first."""
    d, n = DELIVERIES.c, NOTIFICATIONS.c
    query = (select(d.id, d.channel, d.status, d.message_key, d.attempts, d.last_error,
                    d.sent_at, NOTIFICATIONS)
             .join(NOTIFICATIONS, d.notification_id == n.id)
             .order_by(d.id.desc()).limit(limit))
    return [Delivery(row.id, notification_of(row._mapping), row.channel, row.status,
                     row.message_key, row.attempts, row.last_error, row.sent_at)
            for row in conn.execute(query)]


def notification_of(row: Any) -> Notification:
    key = AlertKey(row["metric"], row["metric_version"], row["stage"], row["rule"],
                   row["segment"])
    return Notification(row["key"], row["kind"], key, row["severity"], dict(row["labels"]),
                        row["window_start"], row["window_end"], row["value"], row["bound"],
                        row["detail"], row["created_at"])
