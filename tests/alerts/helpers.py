"""Builders for the alerting tests: a metric with rules, windows, an injected clock."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import metrics
from monitor import Monitor, Threshold
from monitor.alerts.records import AlertKey
from monitor.spec import MetricSpec
from monitor.storage.records import WindowResult

T0 = datetime(2026, 3, 2, tzinfo=UTC)
HOUR = timedelta(hours=1)


@dataclass
class Clock:
    """A clock the test moves by hand: no sleeps."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def latency_metric(owner: str = "home-platform") -> MetricSpec:
    mon = Monitor("alerts-test")
    mon.stream("home", schema={"latency_ms": "float", "country": "str"})
    return mon.metric(
        "latency", "home", metrics.quantiles("latency_ms", ps=(0.5, 0.99)), window="1h",
        segment_by=["country"], owner=owner,
        alerts=[Threshold("p99", above=1000.0, for_windows=2, severity="critical",
                          name="p99 over 1s"),
                Threshold("p50", above=500.0, for_windows=2, name="p50 over 500ms")])


def hour(index: int, p99: Mapping[str, float], p50: float = 100.0) -> list[WindowResult]:
    """Window ``index`` (hours after T0) for each segment in ``p99``."""
    start = T0 + index * HOUR
    return [WindowResult(segment, start, start + HOUR, 100, {"p50": p50, "p99": value})
            for segment, value in p99.items()]


def key(rule: str = "p99 over 1s", segment: str = "country=BR") -> AlertKey:
    return AlertKey("latency", 1, "batch", rule, segment)
