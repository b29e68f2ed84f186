"""The monitor of tests/streaming/test_raw_on_demand.py: a segmented metric (whose partial
states a test makes the database refuse) and one that judges unknown fields (so the
processor wants the unknown-fields mark)."""

from __future__ import annotations

import metrics
from monitor import Monitor

SCHEMA = {"latency_ms": "float", "country": "str", "user_id": "int?"}

mon = Monitor("raw-ask-test")
mon.stream("home", schema=SCHEMA, topic="raw-ask-home", time="event_time")
mon.metric("latency", "home", metrics.quantiles("latency_ms", ps=(0.5, 0.99)), window="1h",
           segment_by=["country"])
mon.expectations("home", [metrics.expect_no_unknown_fields()], prefix="fields")
