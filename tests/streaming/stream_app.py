"""Monitors for the replay tests: one with a single stream topic, one with two."""

from __future__ import annotations

import metrics
from monitor import Monitor

SCHEMA = {"latency_ms": "float", "country": "str", "user_id": "int?"}

mon = Monitor("replay-test")
mon.stream("home", schema=SCHEMA, topic="replay-home", time="event_time")
mon.stream("offline", schema=SCHEMA)  # no topic: not a candidate
mon.metric("latency", "home", metrics.quantiles("latency_ms", ps=(0.5, 0.99)), window="1h")

two = Monitor("replay-test-two")
two.stream("home", schema=SCHEMA, topic="replay-home")
two.stream("search", schema=SCHEMA, topic="replay-search")
