"""Small builders shared by the storage tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import metrics
from monitor.schema import Schema
from monitor.spec import MetricSpec, StreamSpec
from monitor.storage.records import WindowResult

T0 = datetime(2026, 3, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
STREAM = StreamSpec("home", Schema.parse({"latency_ms": "float", "country": "str"}))


def window(hour: int, segment: str = "*", *, p50: float = 1.0, p99: float = 2.0,
           rows: int = 10, state: bytes | None = b"state") -> WindowResult:
    start = T0 + hour * HOUR
    return WindowResult(segment, start, start + HOUR, rows, {"p50": p50, "p99": p99}, state)


def latency_spec(window: str = "1h", owner: str | None = "platform",
                 description: str = "homepage latency") -> MetricSpec:
    return MetricSpec("latency", STREAM, metrics.quantiles("latency_ms", ps=(0.5, 0.99)),
                      window=window, segment_by=("country",), owner=owner,
                      description=description)
