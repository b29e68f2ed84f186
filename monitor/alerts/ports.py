"""The ports of live alerting: what evaluation records through, what the dispatcher
delivers from, and the channels it delivers to.

Alerting itself is pure: :mod:`monitor.alerts.evaluate` and :mod:`monitor.alerts.dispatcher`
talk only to these ``Protocol``s. The SQL side (:mod:`monitor.storage.alert_store`)
implements the stores over the results database; the notifiers
(:mod:`monitor.notifiers`: Slack, SMTP) implement :class:`Channel`.

- :class:`EvaluationStore` is bound to the transaction of the stage that stores the
  windows (the store hands it out), so values, alert states and queued notifications
  commit together or not at all (a transactional outbox).
- :class:`DispatchStore` opens a short transaction per dispatcher step, each a
  :class:`DispatchTransaction`.
- A :class:`Channel` raises :class:`DeliveryError` when a message did not get through,
  saying whether trying again may help; its text never holds a secret (a webhook URL or
  an SMTP password).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from monitor.alerts.grouping import Waiting
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


@dataclass(frozen=True)
class PositionSave:
    """Where an alert stands after an evaluation, to keep; ``examples``: what its
    reminders name below the detail (a firing assertion's example ids on its last
    window)."""

    key: AlertKey
    position: Position
    last_window_end: datetime | None
    value: float
    bound: float
    detail: str
    severity: str
    labels: dict[str, str]
    notified_at: datetime | None
    now: datetime
    examples: str | None = None


@dataclass(frozen=True)
class HistoryRequest:
    """Stored values an alert's rule compares a window with: those of ``field`` for
    ``key``'s metric version, stage and segment on windows starting before ``before``,
    oldest first: those within ``span`` before it, or (``span`` None) the ``last`` newest;
    only windows of at least ``min_count`` events (0: all)."""

    key: AlertKey
    field: str
    before: datetime
    span: timedelta | None
    last: int
    min_count: int


class EvaluationStore(Protocol):
    """Alert states, their history, stored values and the outbox, inside the transaction
    that stores the windows being evaluated."""

    def lock_positions(self, keys: Sequence[AlertKey],
                       labels: dict[AlertKey, tuple[str, dict[str, str]]], now: datetime
                       ) -> dict[AlertKey, tuple[Position, datetime | None]]:
        """The position (and ``notified_at``) of each alert in ``keys`` (of one metric or
        several), created inactive when new (``labels`` gives each key's severity and
        labels) and locked until the transaction ends, so two writers evaluating the same
        windows cannot both fire."""
        ...

    def orphaned_alerts(self, stage: str, rules: Mapping[tuple[str, int], Collection[str]]
                        ) -> list[StoredAlert]:
        """For each ``(metric, version)`` in ``rules``, the pending and firing alerts of
        the metric in ``stage`` that no rule evaluates any more: those of that version
        whose rule (title) is not in its ``rules``, and those of every older version; in
        (metric, version, rule, segment) order. Locked until the transaction ends, like
        :meth:`lock_positions`."""
        ...

    def value_histories(self, requests: Sequence[HistoryRequest]) -> list[list[Point]]:
        """The stored values each request asks for, in the order of ``requests`` (a few
        statements for all of them, not one a request)."""
        ...

    def save_positions(self, saves: Sequence[PositionSave]) -> None:
        """Keep where each alert stands (one statement for all: an evaluation saves every
        rule and segment of its metrics)."""
        ...

    def record_events(self, transitions: Iterable[AlertTransition], now: datetime) -> None:
        """Keep the transitions in the alert history."""
        ...

    def enqueue(self, notifications: Iterable[Notification]) -> int:
        """Queue notifications; one whose key is queued already is left as it is."""
        ...


class DispatchTransaction(Protocol):
    """The outbox and the alert states, in one short transaction of a dispatcher step."""

    def active_alerts(self, *, status: Sequence[str]) -> list[StoredAlert]: ...

    def mark_notified(self, key: AlertKey, at: datetime) -> None: ...

    def enqueue(self, notifications: Iterable[Notification]) -> int: ...

    def active_silences(self, now: datetime) -> list[Silence]: ...

    def unrouted(self) -> list[tuple[int, Notification]]:
        """Notifications not routed yet, oldest first, with their ids."""
        ...

    def route(self, notification_id: int, *, outcome: str, now: datetime,
              channels: Sequence[str] = (), failed: dict[str, str] | None = None,
              silence_id: int | None = None) -> None:
        """Record where a notification goes: a pending delivery per channel, a failed one
        (with the reason) per channel in ``failed``."""
        ...

    def waiting(self) -> list[Waiting]:
        """Pending deliveries not yet in a message."""
        ...

    def assign_message(self, delivery_ids: Sequence[int], message_key: str) -> None: ...

    def pending_messages(self) -> list[Message]:
        """Formed messages not yet sent, per channel in the order their alerts happened."""
        ...

    def mark_silenced(self, delivery_ids: Sequence[int], silence_id: int | None) -> None: ...

    def mark_sent(self, message: Message, now: datetime) -> None: ...

    def mark_failed_attempt(self, message: Message, error: str, *,
                            retry_at: datetime | None) -> None:
        """One more failed attempt; ``retry_at`` None gives up (status failed)."""
        ...


class DispatchStore(Protocol):
    def begin(self) -> AbstractContextManager[DispatchTransaction]:
        """One transaction: committed when the block ends, rolled back on an error."""
        ...

    def read(self) -> AbstractContextManager[DispatchTransaction]:
        """A read that writes nothing."""
        ...

    def exclusive(self) -> AbstractContextManager[bool]:
        """Whether this dispatcher may run a round now (one at a time per database),
        held until the block ends."""
        ...

    def close(self) -> None:
        """Release the store's connections."""
        ...


class DeliveryError(Exception):
    """A message was not delivered; ``transient`` when a retry may succeed."""

    def __init__(self, problem: str, *, transient: bool = True) -> None:
        super().__init__(problem)
        self.transient = transient


class Channel(Protocol):
    name: str

    def send(self, key: str, notifications: Sequence[Notification]) -> None:
        """Deliver one message about ``notifications`` with idempotency key ``key``."""
        ...


def scrub(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret replaced by ***, longest first."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
