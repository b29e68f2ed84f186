"""A monitor of the example app's homepage events with two assertions, for the worker
fault tests: one by expression, and one by a per-event function that cannot judge a view
slower than 1 s (it raises: those events go to dead letters)."""

from __future__ import annotations

import pandas as pd

import metrics
from examples.music_home import SCHEMA
from monitor import Monitor

SLOW_MS = 1_000.0

mon = Monitor("assertion-faults")
mon.stream("home", topic="home-events", time="ts", schema=SCHEMA)
mon.metric("sure_scores", "home",
           metrics.assertion("score > 0.6", id="view_id", keep=("ts", "user_id", "score"),
                             k=10),
           window="1h", segment_by=["country"])


@mon.metric("buried_favourite", "home", window="1h", segment_by=["device"],
            aggregate=metrics.assertion(id="view_id", keep=("fav_carousel", "latency_ms"),
                                        k=10))
def buried_favourite(events: pd.DataFrame) -> pd.Series:
    """How far below the fourth place the user's favourite carousel was shown."""
    if (events["latency_ms"] > SLOW_MS).any():
        raise ValueError(f"a view slower than {SLOW_MS:g} ms cannot be judged")
    return (events["fav_carousel_rank"] - 4).clip(lower=0).astype(float)
