"""A Monitor whose segment and category values come straight from the data (loaded as
--app tests.labels_app:mon by the label and storage tests)."""

from __future__ import annotations

import metrics
from monitor import Monitor

mon = Monitor("labels-test")
mon.stream("home", schema={"latency_ms": "float", "country": "str", "device": "str?"})
mon.metric("latency", "home", metrics.mean("latency_ms"), window="1h",
           segment_by=["country", "device"])
mon.metric("country_drift", "home", metrics.chi2("country", "countries"), window="1h")
