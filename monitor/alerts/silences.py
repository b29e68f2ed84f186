"""Silences: mute the notifications of matching alerts until an expiry.

A silence matches an alert when every matcher it has equals the alert's label: the
metric, the segment, and any ``key=value`` labels (e.g. ``country=BR`` or
``owner=home-ml``). It is active from its creation until ``ends_at``; ending it early
(``monitor alerts unsilence``) moves ``ends_at`` to now. Notifications of a silenced alert
are recorded as silenced and never sent.

>>> from datetime import datetime, timedelta, UTC
>>> now = datetime(2026, 3, 1, tzinfo=UTC)
>>> quiet = Silence(1, metric="ctr", labels={"country": "BR"}, starts_at=now,
...                 ends_at=now + parse_duration("2h"), reason="known outage", created_by="me")
>>> quiet.matches({"metric": "ctr", "country": "BR", "segment": "country=BR"}, now)
True
>>> quiet.matches({"metric": "ctr", "country": "SE"}, now)
False
>>> quiet.matches({"metric": "ctr", "country": "BR"}, now + timedelta(hours=3))
False
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitor.windows import parse_duration_ns


@dataclass(frozen=True)
class Silence:
    id: int | None
    metric: str | None = None
    segment: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    reason: str = ""
    created_by: str = ""

    def __post_init__(self) -> None:
        if self.metric is None and self.segment is None and not self.labels:
            raise ValueError("a silence needs a matcher: a metric, a segment or a label; "
                             "it would mute every alert otherwise")

    def matchers(self) -> dict[str, str]:
        found = dict(self.labels)
        if self.metric is not None:
            found["metric"] = self.metric
        if self.segment is not None:
            found["segment"] = self.segment
        return found

    def active(self, now: datetime) -> bool:
        started = self.starts_at is None or self.starts_at <= now
        return started and (self.ends_at is None or now < self.ends_at)

    def matches(self, labels: Mapping[str, str], now: datetime) -> bool:
        if not self.active(now):
            return False
        return all(labels.get(name) == value for name, value in self.matchers().items())

    def describe(self) -> str:
        return ", ".join(f"{name}={value}" for name, value in self.matchers().items())


def silencing(silences: Iterable[Silence], labels: Mapping[str, str],
              now: datetime) -> Silence | None:
    """The first active silence that matches ``labels``, or None."""
    return next((s for s in silences if s.matches(labels, now)), None)


def parse_label(text: str) -> tuple[str, str]:
    """``"country=BR"`` as ``("country", "BR")``; anything else is a ValueError saying why."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise ValueError(f"label {text!r} must look like name=value, e.g. country=BR")
    return name.strip(), value.strip()


def parse_duration(text: str) -> timedelta:
    """``"90m"``, ``"2h"``, ``"1d"`` as a positive timedelta."""
    nanoseconds = parse_duration_ns(text)
    if nanoseconds <= 0:
        raise ValueError(f"duration {text!r} must be positive, e.g. 2h")
    return timedelta(microseconds=nanoseconds // 1_000)
