"""A Monitor with an assertion, for the `monitor assertions` tests (--app
tests.assertions_cli_app:mon)."""

from __future__ import annotations

import metrics
from monitor import Monitor

mon = Monitor("assertions-cli-test")
mon.stream("home", table="assertions_cli_events",
           schema={"view_id": "int", "user_id": "str", "country": "str", "score": "float",
                   "new_user": "bool"})
mon.metric("sure_about_strangers", "home",
           metrics.assertion("score > 0.8 and new_user", id="view_id",
                             keep=("ts", "user_id", "score"), k=5),
           window="1h", segment_by=["country"])
mon.metric("mean_score", "home", metrics.mean("score"), window="1h")
