"""Grouping: notifications that come together go out as one message.

As in Alertmanager, notifications are grouped per channel by the values of the
``group_by`` labels (the metric, by default). A group waits ``group_wait`` after its
oldest notification, so alerts that fire in the same evaluation or a moment apart arrive
as one message. A group's members are fixed when it is formed and its message key is a
hash of them: a retried message is the same message, with the same idempotency key.

>>> from datetime import datetime, timedelta, UTC
>>> t0 = datetime(2026, 3, 1, tzinfo=UTC)
>>> items = [Waiting(1, "slack", "k1", {"metric": "ctr"}, t0),
...          Waiting(2, "slack", "k2", {"metric": "ctr"}, t0 + timedelta(seconds=5)),
...          Waiting(3, "slack", "k3", {"metric": "latency"}, t0 + timedelta(seconds=20))]
>>> groups = ready_groups(items, t0 + timedelta(seconds=30), timedelta(seconds=30), ("metric",))
>>> [[m.delivery_id for m in g.members] for g in groups]
[[1, 2]]
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Waiting:
    """A delivery of a notification to a channel, not yet part of a message."""

    delivery_id: int
    channel: str
    notification_key: str
    labels: Mapping[str, str]
    created_at: datetime


@dataclass(frozen=True)
class Group:
    channel: str
    group_labels: tuple[tuple[str, str], ...]
    members: tuple[Waiting, ...]

    @property
    def message_key(self) -> str:
        text = "|".join([self.channel, *(m.notification_key for m in self.members)])
        return hashlib.sha256(text.encode()).hexdigest()[:32]


def ready_groups(waiting: Sequence[Waiting], now: datetime, group_wait: timedelta,
                 group_by: Sequence[str]) -> list[Group]:
    """The groups whose oldest member has waited ``group_wait``, ordered by first member."""
    groups: dict[tuple[str, tuple[tuple[str, str], ...]], list[Waiting]] = {}
    for item in sorted(waiting, key=lambda w: w.delivery_id):
        labels = tuple((name, item.labels.get(name, "")) for name in group_by)
        groups.setdefault((item.channel, labels), []).append(item)
    ready = [
        Group(channel, labels, tuple(members))
        for (channel, labels), members in groups.items()
        if now - min(m.created_at for m in members) >= group_wait
    ]
    return sorted(ready, key=lambda g: g.members[0].delivery_id)
