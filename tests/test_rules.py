"""Alert rules and their lifecycle, checked against hand-computed expectations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import metrics
from monitor import Anomaly, Change, Monitor, Threshold
from monitor.alerts.backtest import alert_episodes
from monitor.alerts.lifecycle import AlertState, step
from monitor.alerts.rules import rule_from_dict


def test_threshold_above_and_below() -> None:
    rule = Threshold("p99", above=10.0, below=1.0)
    assert rule.check([], 10.5).breached
    assert rule.check([], 0.5).breached
    assert not rule.check([], 10.0).breached  # at the bound is not over it
    assert not rule.check([], float("nan")).breached


def test_change_against_the_median_of_the_previous_windows() -> None:
    rule = Change("rate", relative=0.25, baseline_windows=4, direction="down")
    history = [0.10, 0.12, 0.08, 0.10]  # median 0.10
    assert rule.check(history, 0.074).breached
    assert not rule.check(history, 0.076).breached
    assert not rule.check(history, 0.20).breached  # up is not watched
    assert not rule.check(history[:3], 0.01).breached  # not enough history yet
    assert rule.check(history, 0.074).bound == pytest.approx(0.075)


def test_anomaly_uses_the_modified_z_score() -> None:
    rng = np.random.default_rng(0)
    history = list(rng.normal(100, 5, size=48))
    median = np.median(history)
    mad = np.median(np.abs(np.asarray(history) - median))
    rule = Anomaly("p95", z=3.5, history_windows=48, min_history=12)
    just_over = median + 3.51 * mad / 0.6745
    just_under = median + 3.49 * mad / 0.6745
    assert rule.check(history, just_over).breached
    assert not rule.check(history, just_under).breached
    assert rule.check(history, 2 * median - just_over).breached


def test_anomaly_on_a_constant_history_breaches_on_any_change() -> None:
    rule = Anomaly("x", min_history=3, history_windows=5)
    assert rule.check([1.0, 1.0, 1.0], 1.5).breached
    assert not rule.check([1.0, 1.0, 1.0], 1.0).breached


def test_pending_flap_clears_without_firing() -> None:
    state = AlertState()
    transitions = []
    for breached in [True, True, False, True, True, True, False]:
        state, t = step(state, _check(breached), for_windows=3)
        transitions.append(t)
    assert transitions == ["pending", None, "cleared", "pending", None, "firing", "resolved"]


def _check(breached: bool):
    from monitor.alerts.rules import Check

    return Check(breached, 0.0, "")


def test_rules_round_trip_through_dicts() -> None:
    for rule in [Threshold("p99", above=3, for_windows=2, severity="critical",
                           labels=(("team", "ml"),)),
                 Change("rate", relative=0.3), Anomaly("p50", z=4)]:
        assert rule_from_dict(rule.to_dict()) == rule


def test_bad_rule_parameters_fail_early() -> None:
    with pytest.raises(ValueError, match="needs above=, below="):
        Threshold("x")
    with pytest.raises(ValueError, match="for_windows must be at least 1"):
        Threshold("x", above=1, for_windows=0)
    with pytest.raises(ValueError, match="severity 'urgent'"):
        Threshold("x", above=1, severity="urgent")


def test_backtest_episodes_per_segment() -> None:
    mon = Monitor()
    mon.stream("s", schema={"x": "float", "country": "str"})
    spec = mon.metric("m", "s", metrics.mean("x"), window="1h", segment_by=["country"],
                      alerts=[Threshold(above=5.0, for_windows=2)])
    hours = pd.date_range("2026-01-01", periods=8, freq="1h", tz="UTC")
    se = [1, 6, 7, 8, 1, 6, 1, 1]  # fires at 02:00 (second breach), resolves at 04:00
    us = [1, 1, 1, 1, 1, 1, 1, 1]
    rows = []
    for country, series in (("SE", se), ("US", us)):
        for start, value in zip(hours, series, strict=True):
            rows.append(("m", "research", f"country={country}", start,
                         start + pd.Timedelta("1h"), "mean", float(value), 10))
    values = pd.DataFrame(rows, columns=["metric", "stage", "segment", "window_start",
                                         "window_end", "field", "value", "count"])
    episodes = alert_episodes(spec, values)
    assert len(episodes) == 1
    episode = episodes.iloc[0]
    assert episode["segment"] == "country=SE"
    assert episode["fired_window_start"] == hours[2]
    assert episode["resolved_window_start"] == hours[4]
    assert episode["windows_firing"] == 2
    assert episode["value"] == 7.0
