"""The app the streaming bench (bench/stream.py) runs: one stream, 10 metrics x 3 segments.

Two monitors over the same schema and metrics, differing only in their windows (and
metric names, so both can be registered in one database):

- ``throughput`` (``--app bench.stream_app:throughput``): one-minute windows, lateness
  10 s, for the pre-filled topics whose events span a stretch of past event time;
- ``live`` (``--app bench.stream_app:live``): five-second windows, no lateness, for the
  window-close delay under live traffic.

Every metric is segmented by ``country`` (3 values, plus the overall segment), so a
micro-batch updates 10 x 4 states per window per partition.
"""

from __future__ import annotations

import metrics
from monitor import Monitor

SCHEMA = {
    "country": "str",
    "device": "str",
    "latency_ms": "float",
    "score": "float",
    "clicked": "bool",
    "session_length_s": "float?",
}
COUNTRIES = ("DE", "FR", "US")
DEVICES = ("ios", "android", "web")
TOPIC = "bench-events"


def build(name: str, *, window: str, lateness: str, topic: str = TOPIC, prefix: str = ""
          ) -> Monitor:
    mon = Monitor(name)
    mon.stream("events", topic=topic, time="ts", schema=SCHEMA)
    computes = {
        "latency_tail": metrics.quantiles("latency_ms", ps=(0.5, 0.95, 0.99, 0.999)),
        "score_tail": metrics.quantiles("score", ps=(0.5, 0.99)),
        "latency_mean": metrics.mean("latency_ms"),
        "score_mean": metrics.mean("score"),
        "latency_total": metrics.sum_of("latency_ms"),
        "ctr": metrics.rate("clicked"),
        "slow_rate": metrics.rate("latency_ms > 500"),
        "session_null_rate": metrics.null_rate("session_length_s"),
        "ios_share": metrics.share("device", "ios"),
        "events": metrics.count(),
    }
    for metric, compute in computes.items():
        mon.metric(prefix + metric, "events", compute, window=window, lateness=lateness,
                   segment_by=["country"], owner="bench")
    return mon


throughput = build("bench-throughput", window="1m", lateness="10s")
live = build("bench-live", window="5s", lateness="0s", topic=TOPIC + "-live", prefix="live_")
