"""The alerting ports over the results database (see :mod:`monitor.alerts.ports`).

:class:`SqlAlertTransaction` is the evaluation store and a dispatcher step's transaction,
bound to one connection: a stage's store makes one on the connection that writes the
windows, so the alert evaluation commits with them. :class:`SqlDispatchStore` opens one
per dispatcher step; on Postgres a session advisory lock lets one dispatcher run a round
at a time (SQLite: run a single dispatcher per file).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection

from monitor.alerts.grouping import Waiting
from monitor.alerts.ports import HistoryRequest, PositionSave
from monitor.alerts.records import (
    AlertKey,
    AlertTransition,
    Message,
    Notification,
    StoredAlert,
)
from monitor.alerts.rules import Point
from monitor.alerts.silences import Silence
from monitor.alerts.walk import Position
from monitor.storage import alert_states, outbox, silences
from monitor.storage.database import Database
from monitor.storage.value_histories import value_histories

ADVISORY_LOCK_ID = 0x6D6F6E616C657274  # "monalert": one dispatcher round at a time


class SqlAlertTransaction:
    """Alert states, values, silences and the outbox on ``conn``, in its transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # -- EvaluationStore ------------------------------------------------------------------

    def lock_positions(self, keys: Sequence[AlertKey],
                       labels: dict[AlertKey, tuple[str, dict[str, str]]], now: datetime
                       ) -> dict[AlertKey, tuple[Position, datetime | None]]:
        return alert_states.lock_positions(self.conn, keys, labels, now)

    def orphaned_alerts(self, stage: str, rules: Mapping[tuple[str, int], Collection[str]]
                        ) -> list[StoredAlert]:
        return alert_states.orphaned_alerts(self.conn, stage, rules)

    def value_histories(self, requests: Sequence[HistoryRequest]) -> list[list[Point]]:
        return value_histories(self.conn, requests)

    def save_positions(self, saves: Sequence[PositionSave]) -> None:
        alert_states.save_positions(self.conn, saves)

    def record_events(self, transitions: Iterable[AlertTransition], now: datetime) -> None:
        alert_states.record_events(self.conn, transitions, now)

    def enqueue(self, notifications: Iterable[Notification]) -> int:
        return outbox.enqueue(self.conn, notifications)

    # -- DispatchTransaction --------------------------------------------------------------

    def active_alerts(self, *, status: Sequence[str]) -> list[StoredAlert]:
        return alert_states.active_alerts(self.conn, status=status)

    def mark_notified(self, key: AlertKey, at: datetime) -> None:
        alert_states.mark_notified(self.conn, key, at)

    def active_silences(self, now: datetime) -> list[Silence]:
        return silences.list_silences(self.conn, now)

    def unrouted(self) -> list[tuple[int, Notification]]:
        return outbox.unrouted(self.conn)

    def route(self, notification_id: int, *, outcome: str, now: datetime,
              channels: Sequence[str] = (), failed: dict[str, str] | None = None,
              silence_id: int | None = None) -> None:
        outbox.route(self.conn, notification_id, outcome=outcome, now=now,
                     channels=channels, failed=failed, silence_id=silence_id)

    def waiting(self) -> list[Waiting]:
        return outbox.waiting(self.conn)

    def assign_message(self, delivery_ids: Sequence[int], message_key: str) -> None:
        outbox.assign_message(self.conn, delivery_ids, message_key)

    def pending_messages(self) -> list[Message]:
        return outbox.pending_messages(self.conn)

    def mark_silenced(self, delivery_ids: Sequence[int], silence_id: int | None) -> None:
        outbox.mark_silenced(self.conn, delivery_ids, silence_id)

    def mark_sent(self, message: Message, now: datetime) -> None:
        outbox.mark_sent(self.conn, message, now)

    def mark_failed_attempt(self, message: Message, error: str, *,
                            retry_at: datetime | None) -> None:
        outbox.mark_failed_attempt(self.conn, message, error, retry_at=retry_at)


class SqlDispatchStore:
    """What a dispatcher delivers from: one short transaction per step."""

    def __init__(self, database: Database) -> None:
        self.database = database

    @contextmanager
    def begin(self) -> Iterator[SqlAlertTransaction]:
        with self.database.begin() as conn:
            yield SqlAlertTransaction(conn)

    @contextmanager
    def read(self) -> Iterator[SqlAlertTransaction]:
        with self.database.connect() as conn:
            yield SqlAlertTransaction(conn)

    @contextmanager
    def exclusive(self) -> Iterator[bool]:
        """A Postgres session advisory lock, held until the block ends."""
        if self.database.dialect != "postgresql":
            yield True
            return
        with self.database.connect() as conn:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:id)"),
                                    {"id": ADVISORY_LOCK_ID}).scalar())
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(:id)"),
                                 {"id": ADVISORY_LOCK_ID})
                    conn.commit()

    def close(self) -> None:
        self.database.dispose()

    def __repr__(self) -> str:
        return f"SqlDispatchStore({self.database.display_url!r})"


if TYPE_CHECKING:  # mypy checks that the classes implement the ports
    from monitor.alerts.ports import DispatchStore, DispatchTransaction, EvaluationStore

    def _implements_ports(tx: SqlAlertTransaction, store: SqlDispatchStore
                          ) -> tuple[EvaluationStore, DispatchTransaction, DispatchStore]:
        return (tx, tx, store)
