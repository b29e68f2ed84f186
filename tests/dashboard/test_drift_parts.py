"""The drift page's pure parts: decision rules in words, per-window frames, the latest
window's table and histograms of profiles whose values have bins of their own."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from dashboard.charts import histogram_chart
from dashboard.drift_windows import (
    ColumnRule,
    column_windows,
    drift_decision,
    latest_table,
)
from dashboard.views.drift import histogram_bins
from metrics.drift.columns import NumericProfile
from monitor.storage.dashboard.records import WindowValues

T0 = pd.Timestamp("2026-03-02", tz="UTC")


def test_the_caption_states_alpha_correction_and_each_methods_floor() -> None:
    report = {"kind": "drift", "column_names": ["x", "device"], "alpha": 0.05,
              "correction": "bonferroni", "min_effect": None,
              "column_methods": ["ks", "chi2_gof"]}
    caption = drift_decision(report, ["n_drifted"]).caption()  # nothing stored yet
    assert caption == ("Flagged when beyond sampling noise at the window's count "
                       "(Bonferroni-adjusted p < 0.05 over columns and segments) and at "
                       "least 0.05 (ks of x; total variation of device).")
    uncorrected = drift_decision({"kind": "hellinger", "column": "x", "alpha": 0.01,
                                  "correction": "none", "min_effect": 0.2}, ["hellinger"])
    assert uncorrected.caption() == (
        "Flagged when beyond sampling noise at the window's count (p < 0.01, not corrected "
        "for the many tests) and at least 0.2.")
    chi2 = drift_decision({"kind": "chi2", "column": "device", "alpha": 0.01,
                           "correction": "bh", "min_effect": None}, ["chi2", "p_value"])
    assert chi2.caption().endswith("over segments) and its total variation at least 0.05.")
    assert not chi2.rules[0].floor_on_statistic  # no floor line on the chi-square chart


def test_a_definition_from_before_calibration_says_its_fixed_threshold() -> None:
    old = {"kind": "psi", "column": "score", "reference": "training", "threshold": 0.2}
    decision = drift_decision(old, ["psi", "drifted"])
    assert "at least 0.2, whatever the window's count" in decision.caption()
    assert [r.statistic for r in decision.rules] == ["psi"]


def test_auto_reports_read_each_columns_statistic_from_the_stored_fields() -> None:
    report = {"kind": "drift", "column_names": ["x", "y"], "method": "auto",
              "alpha": 0.01, "correction": "bh", "min_effect": 0.3}
    decision = drift_decision(report, ["x.ks", "x.p_value", "y.wasserstein", "y.drifted"])
    assert [(r.column, r.statistic, r.min_effect) for r in decision.rules] == [
        ("x", "x.ks", 0.3), ("y", "y.wasserstein", 0.3)]


def _point(field: str, at: pd.Timestamp, value: float, low: float, high: float,
           windows: int) -> dict[str, object]:
    return {"field": field, "window_start": at, "value": value, "low": low, "high": high,
            "windows": windows}


def test_a_point_of_many_windows_shows_its_strongest_evidence_and_any_flag() -> None:
    rule = ColumnRule("x", "x.", "js", 0.1, "js")
    at = [T0, T0 + pd.Timedelta(hours=4)]
    series = pd.DataFrame([
        _point("x.js", at[0], 0.05, 0.02, 0.3, 4), _point("x.p_value", at[0], 0.4, 1e-6, 0.9, 4),
        _point("x.p_adjusted", at[0], 0.5, 2e-6, 1.0, 4),
        _point("x.drifted", at[0], 0.25, 0.0, 1.0, 4),
        _point("x.js", at[1], 0.04, 0.03, 0.05, 4), _point("x.p_value", at[1], 0.3, 1e-4, 0.6, 4),
        _point("x.p_adjusted", at[1], 0.4, 2e-3, 0.8, 4),
        _point("x.drifted", at[1], 0.0, 0.0, 0.0, 4)])
    counts = pd.DataFrame([_point("count", a, 200.0, 150.0, 250.0, 4) for a in at])
    windows = column_windows(series, counts, rule, alpha=0.01)
    assert list(windows["p_adjusted"]) == [2e-6, 2e-3]  # the smallest of the point
    assert list(windows["verdict"]) == ["drifted", "beyond noise, below the effect floor"]
    assert list(windows["count"]) == [200.0, 200.0] and list(windows["high"]) == [0.3, 0.05]


def test_the_latest_table_lists_drifted_columns_first_and_untested_ones_last() -> None:
    report = {"kind": "drift", "column_names": ["a", "b", "c", "d"], "alpha": 0.01,
              "correction": "bh", "min_effect": None}
    values = {"a.psi": 0.05, "a.p_value": 0.3, "a.p_adjusted": 0.6, "a.drifted": 0.0,
              "b.psi": math.nan, "b.p_value": math.nan, "b.p_adjusted": math.nan,
              "b.drifted": math.nan,
              "c.psi": 0.4, "c.p_value": 1e-5, "c.p_adjusted": 4e-5, "c.drifted": 1.0,
              "d.psi": 0.05, "d.p_value": 1e-4, "d.p_adjusted": 2e-4, "d.drifted": 0.0}
    decision = drift_decision(report, list(values))
    start = datetime(2026, 3, 2, tzinfo=UTC)
    table = latest_table(decision, WindowValues(start, start + timedelta(hours=1), 180,
                                                values), {"a": 180, "c": 170})
    assert list(table["column"]) == ["c", "d", "a", "b"]
    assert list(table["verdict"]) == ["drifted", "beyond noise, below the effect floor",
                                      "within noise", "no test"]
    assert list(table["drifted"]) == [True, False, False, None]
    assert set(table["count"]) == {180} and table["values tested"].iloc[0] == 170


def test_a_discrete_column_is_drawn_as_a_bar_per_value_with_new_values_between() -> None:
    column = NumericProfile.fit(np.repeat([1.0, 2.0, 3.0, 5.0], [40, 30, 20, 10]))
    bins, outside = histogram_bins(column, column.count(np.array([1.0, 4.0, 5.0, 5.0])).counts)
    current = bins[bins["which"] == "current"]
    assert dict(zip(current["label"], current["share"], strict=True)) == {
        "1": 0.25, "2": 0.0, "3": 0.0, "(3, 5)": 0.25, "5": 0.5}
    assert outside == {"below range": (0.0, 0.0), "above range": (0.0, 0.0)}
    spec = histogram_chart(bins, numeric=True).to_dict()
    assert spec["mark"]["type"] == "bar"
    assert spec["encoding"]["x"]["sort"] == ["1", "2", "3", "(3, 5)", "5"]  # value order


def test_a_point_mass_in_a_continuous_column_gets_bars_beside_the_densities() -> None:
    rng = np.random.default_rng(3)
    values = np.r_[np.zeros(3_000), rng.lognormal(4.0, 1.0, 7_000)]
    column = NumericProfile.fit(values)
    bins, _ = histogram_bins(column, column.count(values[::7]).counts)
    spec = histogram_chart(bins, numeric=True).to_dict()
    bars, densities = spec["vconcat"]
    assert bars["mark"]["type"] == "bar" and densities["mark"]["type"] == "rect"
    points = bins[bins["point"] & (bins["which"] == "reference")]
    assert list(points["label"]) == ["0"] and list(points["share"]) == [0.3]
    finite = (bins["right"] - bins["left"]) > 0
    assert finite.all()  # no zero-width bin among the densities


def test_a_top_value_bin_of_its_own_is_drawn_as_the_end_of_the_last_bin() -> None:
    """A continuous column's tail may end with the top value's own bin [v, nextafter(v)]:
    as a density it would be a spike of infinite height, as a bar a value that means
    nothing to the reader. It is drawn as part of the bin before it."""
    top = float(np.nextafter(20.0, np.inf))
    column = NumericProfile((0.0, 10.0, 20.0, top), (0, 5, 4, 1, 0), (0, 0, 0, 0, 0), 10,
                            9.0, 5.0, 0.0, 20.0)
    bins, _ = histogram_bins(column, np.array([0, 2, 1, 1, 1]))
    assert not bins["point"].any() and bins["right"].max() == top
    # reference 5 | 4 + 1 of 10; current 2 | 1 + 1 of 5 (and one above the range)
    assert list(bins[bins["which"] == "reference"]["share"]) == pytest.approx([0.5, 0.5])
    assert list(bins[bins["which"] == "current"]["share"]) == pytest.approx([0.4, 0.4])
    assert histogram_chart(bins, numeric=True).to_dict()["mark"]["type"] == "rect"
