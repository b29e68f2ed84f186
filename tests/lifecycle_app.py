"""Two versions of a small app for the lifecycle and export tests, and events for them.

``mon`` is the app as first written; ``changed`` is the same app after an edit to the
latency metric (one more quantile), which makes its definition a new version.
Load them as ``--app tests.lifecycle_app:mon`` or ``--app tests.lifecycle_app:changed``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import metrics
from monitor import Monitor, Threshold

SCHEMA = {"latency_ms": "float", "country": "str"}
START = pd.Timestamp("2026-05-01T00:00:00Z")


def build(latency_ps: tuple[float, ...]) -> Monitor:
    app = Monitor("lifecycle-test")
    app.stream("home", schema=SCHEMA)
    app.metric("latency", "home", metrics.quantiles("latency_ms", ps=latency_ps), window="1h",
               segment_by=["country"], alerts=[Threshold("p99", above=1000.0)],
               owner="platform")
    app.metric("latency_psi", "home", metrics.psi("latency_ms", "training"), window="1h",
               owner="ml")
    return app


mon = build((0.5, 0.99))
changed = build((0.5, 0.95, 0.99))


def events(n: int = 400, hours: int = 3, seed: int = 0, scale: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    seconds = np.sort(rng.integers(0, hours * 3600, n))
    times = START + pd.to_timedelta(seconds, unit="s")
    return pd.DataFrame({
        "ts": [t.isoformat() for t in times],
        "latency_ms": rng.lognormal(5, 0.5, n) * scale,
        "country": rng.choice(["SE", "US", "BR"], n),
    })


def write_events(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_json(path, orient="records", lines=True)
    return path
