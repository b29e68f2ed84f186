"""A small app with short windows for the tests of stage changes reaching running workers
(``--app tests.streaming.switch_app:mon``), its reference profiles and events stamped
near the wall clock."""

from __future__ import annotations

import numpy as np
import pandas as pd

import metrics
from metrics.drift import ReferenceProfile
from monitor import Monitor

SCHEMA = {"latency_ms": "float", "country": "str", "user_id": "str"}
WINDOW = "5s"
WINDOW_NS = 5 * 10**9

mon = Monitor("switch-test")
mon.stream("clicks", topic="switch-clicks", schema=SCHEMA)
mon.metric("latency", "clicks", metrics.quantiles("latency_ms", ps=(0.5, 0.99)),
           window=WINDOW, segment_by=["country"], owner="platform")
mon.metric("latency_psi", "clicks", metrics.psi("latency_ms", "training"), window=WINDOW,
           owner="ml")


def profile(seed: int, scale: float = 1.0) -> ReferenceProfile:
    """The "training" reference profile of latency_psi, fitted on data of ``seed`` (a
    refit with another seed or scale gives another profile, and a new version)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"latency_ms": rng.lognormal(5, 0.5, 2_000) * scale})
    return ReferenceProfile.fit(frame, name="training", bins=10)


def events(start: pd.Timestamp, seconds: float, per_second: float, seed: int
           ) -> pd.DataFrame:
    """Events spread over ``seconds`` from ``start`` (time order), ``ts`` as UTC times."""
    rng = np.random.default_rng(seed)
    n = int(seconds * per_second)
    offsets = np.sort(rng.uniform(0, seconds, n))
    return pd.DataFrame({
        "ts": start + pd.to_timedelta(offsets, unit="s"),
        "latency_ms": rng.lognormal(5, 0.5, n),
        "country": rng.choice(["SE", "US", "BR"], n),
        "user_id": [f"u{i}" for i in rng.integers(0, 500, n)],
    })


def boundary(time: pd.Timestamp) -> pd.Timestamp:
    """The first window start at or after ``time``."""
    return pd.Timestamp(-(-time.value // WINDOW_NS) * WINDOW_NS, tz="UTC")
