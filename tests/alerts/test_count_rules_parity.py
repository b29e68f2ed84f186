"""Rules that use the window's count and seasonal baselines fire the same alerts live as
in the backtest: the count reaches the rules from stored windows and from the values
frame, and the history read from the store (the previous windows of enough events, or the
same hour of the previous days) is the history the backtest walks with."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

import metrics
from monitor import Anomaly, Change, Monitor, Threshold
from monitor.alerts.backtest import alert_episodes
from monitor.spec import MetricSpec
from monitor.storage import alert_states
from monitor.storage.database import Database
from monitor.storage.records import WindowResult
from monitor.storage.store import SqlStore
from tests.alerts.helpers import HOUR, T0

DAYS = 10


def rate_metric() -> MetricSpec:
    mon = Monitor("counts")
    mon.stream("s", schema={"clicked": "bool", "country": "str"})
    return mon.metric("ctr", "s", metrics.rate("clicked"), window="1h",
                      segment_by=["country"], alerts=[
        Threshold("rate", below=0.2, for_windows=2, min_count=60, confidence=0.99,
                  name="low beyond noise"),
        Change("rate", relative=0.25, season="1d", seasons=3, min_count=60,
               confidence=0.99, name="vs yesterdays"),
        Anomaly("rate", z=4.0, season="1d", seasons=5, min_history=3, confidence=0.99,
                name="odd hour"),
        Change("rate", relative=0.4, baseline_windows=6, min_count=100, for_windows=2,
               name="vs previous big hours"),
    ])


def windows() -> list[WindowResult]:
    """Ten days of hourly rates with a daily cycle and counts from 5 to 2,000 events; a
    drop on day 8 in BR, a spike in one small SE hour."""
    rng = np.random.default_rng(11)
    out = []
    for country, scale in (("BR", 1.0), ("SE", 0.1)):
        for h in range(DAYS * 24):
            count = max(5, int(scale * (200 + 1800 * (0.5 + 0.5 * np.sin(h / 24 * 2 * np.pi)))))
            rate = 0.3 + 0.1 * np.sin((h % 24) / 24 * 2 * np.pi)
            if country == "BR" and 8 * 24 + 6 <= h < 8 * 24 + 12:
                rate *= 0.5
            if country == "SE" and h == 7 * 24 + 5:
                rate = 0.9
            hits = rng.binomial(count, rate)
            start = T0 + h * HOUR
            out.append(WindowResult(f"country={country}", start, start + HOUR, count,
                                    {"rate": hits / count}))
    return out


def values_frame(found: list[WindowResult]) -> pd.DataFrame:
    return pd.DataFrame(
        [("ctr", "batch", w.segment, w.window_start, w.window_end, "rate", w.values["rate"],
          w.rows) for w in found],
        columns=["metric", "stage", "segment", "window_start", "window_end", "field", "value",
                 "count"])


@pytest.mark.parametrize("per_call", [1, 7, 30])
def test_count_and_seasonal_rules_fire_live_what_the_backtest_predicted(
    database: Database, per_call: int,
) -> None:
    spec = rate_metric()
    found = windows()
    expected = alert_episodes(spec, values_frame(found))
    assert set(expected["rule"]) == {r.title for r in spec.alerts}  # every rule fires
    # the window's count shows in what they say
    assert expected["detail"].str.contains("beyond noise at n = ").any()

    store = SqlStore(database)
    by_time = sorted(found, key=lambda w: (w.window_start, w.segment))
    for i in range(0, len(by_time), 2 * per_call):  # two segments per hour
        store.write_windows_and_evaluate(spec, 1, "batch", by_time[i:i + 2 * per_call],
                                         T0 + timedelta(days=DAYS + 1))
    with database.connect() as conn:
        events = alert_states.events_of(conn, "ctr", "batch")
    fired = sorted((e.key.rule, e.key.segment, e.window_start, e.detail) for e in events
                   if e.transition == "firing")
    resolved = sorted((e.key.rule, e.key.segment, e.window_start) for e in events
                      if e.transition == "resolved")
    assert fired == sorted(zip(expected["rule"], expected["segment"],
                               expected["fired_window_start"], expected["detail"], strict=True))
    ends = expected.dropna(subset=["resolved_window_start"])
    assert resolved == sorted(zip(ends["rule"], ends["segment"], ends["resolved_window_start"],
                                  strict=True))
