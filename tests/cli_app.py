"""A small Monitor for the CLI tests (loaded as --app tests.cli_app:mon)."""

from __future__ import annotations

import metrics
from monitor import Monitor, Threshold

mon = Monitor("cli-test")
mon.stream("home", schema={"latency_ms": "float", "country": "str", "clicked": "bool?"})
mon.metric("latency", "home", metrics.quantiles("latency_ms", ps=(0.5, 0.99)), window="1h",
           segment_by=["country"], alerts=[Threshold("p99", above=1000.0)], owner="platform")
mon.metric("ctr", "home", metrics.rate("clicked"), window="1h", owner="growth")
