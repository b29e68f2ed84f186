"""Plain records the dashboard reads: a metric's row on the overview, a series request.

No I/O and no SQLAlchemy. The dashboard draws these; the queries of
:mod:`monitor.storage.dashboard` fill them.

>>> from datetime import UTC, datetime
>>> t0 = datetime(2026, 3, 2, tzinfo=UTC)
>>> span = TimeRange(t0, t0.replace(day=9))
>>> span.windows(3_600)
168
>>> span.bucket_seconds(3_600, max_points=50)
14400
>>> worst_status(["ok", "firing", "pending"]), worst_status([])
('firing', 'ok')
>>> week = default_range(latest=t0, days=7)  # up to the newest window, included
>>> week.since.isoformat(), week.until.isoformat()
('2026-02-23T00:00:01+00:00', '2026-03-02T00:00:01+00:00')
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

ALERT_STATUSES = ("firing", "pending", "ok")  # worst first
NO_DATA = "no data"
DEFAULT_MAX_POINTS = 1_500  # per series: more windows than this are bucketed in SQL
DEFAULT_SPARK_WINDOWS = 48


@dataclass(frozen=True)
class TimeRange:
    """Windows with ``since <= window_start < until``; both tz-aware."""

    since: datetime
    until: datetime

    def __post_init__(self) -> None:
        if not self.until > self.since:
            raise ValueError(f"a time range must end after it starts: {self.since} to "
                             f"{self.until}")

    def windows(self, width_s: float) -> int:
        """How many windows of ``width_s`` seconds the range holds."""
        return math.ceil((self.until - self.since).total_seconds() / width_s)

    def bucket_seconds(self, width_s: int, max_points: int = DEFAULT_MAX_POINTS) -> int:
        """The width of a plotted point: the window, or a whole number of windows when the
        range holds more than ``max_points`` of them."""
        if max_points < 1:
            raise ValueError(f"max_points must be positive, got {max_points}")
        return width_s * max(1, math.ceil(self.windows(width_s) / max_points))


@dataclass(frozen=True)
class MetricOverview:
    """One metric on the overview: where it stands and how it moved lately.

    ``value_stage`` is the stage whose values are shown (the metric's own stage when it
    has values there, else the stage with the newest window); ``headline`` is the field its
    first alert rule watches (else its first field); ``sparkline`` holds the values of
    that field on the overall segment over the last windows, oldest first.
    """

    name: str
    version: int
    stage: str
    owner: str | None
    window: str
    description: str
    value_stage: str | None
    headline: str | None
    last_window_start: datetime | None
    last_value: float
    status: str  # firing, pending, ok; "no data" before any value is stored
    alerts: Mapping[str, int] = field(default_factory=dict)  # status -> how many
    sparkline: tuple[float, ...] = ()


@dataclass(frozen=True)
class WindowValues:
    """Every stored field of one window of one segment, and the window's event count."""

    window_start: datetime
    window_end: datetime
    count: int
    values: Mapping[str, float]  # NaN where the stored value is NULL


def worst_status(statuses: Iterable[str]) -> str:
    """The most urgent of alert statuses (firing, then pending); ``ok`` when none is."""
    found = set(statuses)
    return next((s for s in ALERT_STATUSES[:-1] if s in found), "ok")


def default_range(latest: datetime | None, days: float, now: datetime | None = None
                  ) -> TimeRange:
    """``days`` back from just after the newest window (or from now without one)."""
    end = latest + timedelta(seconds=1) if latest is not None else (now or datetime.now(UTC))
    return TimeRange(end - timedelta(days=days), end)
