"""Plain records of live alerting: which alert, what happened to it, what gets sent.

An alert is one rule of one metric version on one segment in one stage; its
:class:`AlertKey` names it. Labels are what silences, routes and grouping match on: the
metric, rule, segment (and each of its ``column=value`` parts), stage, severity and owner,
plus the rule's own labels (which cannot override the built-in ones).

>>> import metrics
>>> from monitor import Monitor, Threshold
>>> mon = Monitor()
>>> _ = mon.stream("home", schema={"latency_ms": "float", "country": "str"})
>>> spec = mon.metric("latency", "home", metrics.mean("latency_ms"), segment_by=["country"],
...                   owner="platform", alerts=[Threshold(above=900, name="slow")])
>>> labels = alert_labels(spec, spec.alerts[0], "country=BR", "batch")
>>> labels["country"], labels["owner"], labels["severity"]
('BR', 'platform', 'warning')
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from monitor.alerts.lifecycle import Transition
from monitor.alerts.rules import Rule
from monitor.segments import NULL_LABEL, parse_label
from monitor.spec import MetricSpec

NotificationKind = Literal["firing", "resolved", "repeat", "test"]
NOTIFICATION_KINDS: tuple[NotificationKind, ...] = ("firing", "resolved", "repeat", "test")


@dataclass(frozen=True, order=True)
class AlertKey:
    """One alert: a rule (by title) of a metric version on a segment, in a stage."""

    metric: str
    version: int
    stage: str
    rule: str
    segment: str

    def digest(self, *parts: str) -> str:
        """A stable id of this alert and ``parts``, for idempotency keys."""
        text = "|".join([self.metric, str(self.version), self.stage, self.rule, self.segment,
                         *parts])
        return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class AlertTransition:
    """An alert changed state on a window (see :mod:`monitor.alerts.lifecycle`)."""

    key: AlertKey
    transition: Transition
    window_start: datetime
    window_end: datetime
    value: float
    bound: float
    detail: str
    severity: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Notification:
    """What one message says about one alert; ``key`` is its idempotency key."""

    key: str
    kind: NotificationKind
    alert: AlertKey
    severity: str
    labels: Mapping[str, str]
    window_start: datetime
    window_end: datetime
    value: float
    bound: float
    detail: str
    created_at: datetime

    @property
    def finding(self) -> str:
        """What the rule found: the detail's first line (see :func:`with_examples`)."""
        return self.detail.split("\n", 1)[0]

    @property
    def notes(self) -> tuple[str, ...]:
        """The detail's further lines, shown below the alert's line."""
        return tuple(self.detail.split("\n")[1:])


@dataclass(frozen=True)
class StoredAlert:
    """An alert state as stored, for listing and for the repeat interval."""

    key: AlertKey
    status: str
    consecutive: int
    last_window_start: datetime | None
    last_window_end: datetime | None
    active_since: datetime | None
    value: float
    bound: float
    detail: str
    severity: str
    labels: dict[str, str]
    notified_at: datetime | None
    updated_at: datetime
    examples: str | None = None  # a firing assertion's example ids on its last window


@dataclass(frozen=True)
class Message:
    """Pending deliveries that go out together on one channel, with one key."""

    channel: str
    key: str
    delivery_ids: tuple[int, ...]
    notifications: tuple[Notification, ...]
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime  # of its oldest notification

    def without(self, delivery_ids: Sequence[int]) -> Message:
        """This message less some of its deliveries (e.g. silenced since it was formed)."""
        keep = [i for i, d in enumerate(self.delivery_ids) if d not in set(delivery_ids)]
        return replace(self, delivery_ids=tuple(self.delivery_ids[i] for i in keep),
                       notifications=tuple(self.notifications[i] for i in keep))


def segment_labels(segment: str) -> dict[str, str]:
    """``"country=BR,device=ios"`` as ``{"country": "BR", "device": "ios"}``, values
    unescaped (see :mod:`monitor.segments`), a null as ``<null>``; ``*`` is none."""
    try:
        values = parse_label(segment)
    except ValueError:  # not a label the engine made: no labels rather than no alert
        return {}
    return {name: NULL_LABEL if value is None else value for name, value in values.items()}


def alert_labels(metric: MetricSpec, rule: Rule, segment: str, stage: str) -> dict[str, str]:
    """The labels of ``rule`` on ``segment``; built-in labels win over the rule's own."""
    labels = {**dict(rule.labels), **segment_labels(segment)}
    labels.update(metric=metric.name, rule=rule.title, segment=segment, stage=stage,
                  severity=rule.severity)
    if metric.owner:
        labels["owner"] = metric.owner
    return labels


def with_examples(detail: str, examples: str | None) -> str:
    r"""A notification's detail: the rule's finding, then ``examples`` (an assertion's
    example ids and export command, one line each) below it. The outbox stores the detail
    as text, so the lines travel with it and need no column of their own.

    >>> with_examples("0.2 > 0.1", "example ids 7, 9\nall sampled: `monitor ...`")
    '0.2 > 0.1\nexample ids 7, 9\nall sampled: `monitor ...`'
    """
    return detail if not examples else f"{detail}\n{examples}"
