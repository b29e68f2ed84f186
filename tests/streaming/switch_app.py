"""A small app with short windows for the tests of stage changes reaching running workers
(``--app tests.streaming.switch_app:mon``), its reference profiles, events, and what the
tests compare: the values stored for a version and research's."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

import metrics
from metrics.drift import ReferenceProfile
from monitor import Monitor
from monitor.references import References, bind
from monitor.research import evaluate
from monitor.spec import MetricSpec
from monitor.storage.store import SqlStore

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


def bound(name: str, fitted: ReferenceProfile | None = None) -> MetricSpec:
    """The app's ``name``, compared against ``fitted`` if it has a reference."""
    metric = mon.get(name)
    return metric if fitted is None else bind(metric, References(profiles={"training": fitted}))


def stored(store: SqlStore, name: str, version: int) -> pd.DataFrame:
    """The streaming values stored for a version, as research gives them."""
    values = store.read_values(metric=name, stage="streaming", version=version, limit=None)
    return values.drop(columns="stage").reset_index(drop=True)


def research(metric: MetricSpec, frame: pd.DataFrame, *, since: Any = None, until: Any = None,
             reference: ReferenceProfile | None = None) -> pd.DataFrame:
    """Research's values of ``metric`` over the events of the windows in [since, until)."""
    keep = pd.Series(True, index=frame.index)
    if since is not None:
        keep &= frame.ts >= pd.Timestamp(since)
    if until is not None:
        keep &= frame.ts < pd.Timestamp(until)
    values = evaluate(metric, frame[keep], reference=reference)
    return values.drop(columns="stage").reset_index(drop=True)
