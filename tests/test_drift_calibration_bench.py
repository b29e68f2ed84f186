"""The pure parts of bench/drift_calibration.py: seeded windows from the stated distributions,
Wilson intervals and the power check. (The benchmark itself runs for minutes and needs the
peers' venvs; these make sure what it measures is what it says.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from bench.calibration_data import (
    BIMODAL_SHARE,
    CATEGORIES,
    FALSE_ALARM,
    FAMILIES,
    FAMILYWISE_COLUMNS,
    INTEGER_WEIGHTS,
    P95,
    POWER,
    SCENARIOS,
    ZIPF_LEVELS,
    familywise_columns,
    familywise_frame_values,
    reference_of_window,
    reference_values,
    window_values,
)
from bench.calibration_stats import Rate, calibration_summary, power_check, wilson

N = 200_000  # large enough that every check below is far inside its tolerance


def test_windows_are_seeded_by_their_place_alone():
    again = window_values(7, FALSE_ALARM, "lognormal", 500, 3)
    assert np.array_equal(window_values(7, FALSE_ALARM, "lognormal", 500, 3), again)
    others = [window_values(8, FALSE_ALARM, "lognormal", 500, 3),      # seed
              window_values(7, FALSE_ALARM, "lognormal", 500, 4),      # index
              window_values(7, FALSE_ALARM, "pareto", 500, 3),         # family
              reference_values(7, "lognormal", 500)]                   # purpose
    assert not any(np.array_equal(again, other) for other in others)
    # a window of another size is another stream, not a prefix of this one
    assert not np.array_equal(window_values(7, FALSE_ALARM, "lognormal", 400, 3), again[:400])
    a = familywise_frame_values(1, POWER, familywise_columns(), 50, 2, 5)
    b = familywise_frame_values(1, POWER, familywise_columns(), 50, 2, 5)
    assert all(np.array_equal(a[c], b[c]) for c in a)


def _ks_p(values: np.ndarray, cdf) -> float:
    return float(stats.kstest(values, cdf).pvalue)


@pytest.mark.parametrize(("family", "cdf"), [
    ("normal", stats.norm().cdf),
    ("lognormal", stats.lognorm(s=2.0).cdf),
    ("pareto", stats.pareto(b=1.5).cdf),
    ("bimodal", lambda x: BIMODAL_SHARE * stats.norm.cdf(x)
     + (1 - BIMODAL_SHARE) * stats.norm.cdf(x, loc=5.0)),
])
def test_continuous_families_have_their_distribution(family, cdf):
    values = window_values(0, FALSE_ALARM, family, N, 0)
    assert values.dtype == np.float64 and FAMILIES[family].kind == "numeric"
    assert _ks_p(values, cdf) > 1e-4


def _frequencies_fit(values: np.ndarray, levels: np.ndarray, weights: np.ndarray) -> None:
    observed = np.array([np.count_nonzero(values == level) for level in levels])
    assert observed.sum() == len(values), "a value outside the stated levels"
    assert stats.chisquare(observed, weights / weights.sum() * len(values)).pvalue > 1e-4


def test_discrete_families_have_their_frequencies():
    _frequencies_fit(window_values(0, FALSE_ALARM, "integers", N, 0),
                     np.arange(1.0, 6.0), INTEGER_WEIGHTS)
    for family, share in (("binary3", 0.03), ("binary40", 0.40)):
        _frequencies_fit(window_values(0, FALSE_ALARM, family, N, 0),
                         np.array([0.0, 1.0]), np.array([1 - share, share]))
    levels = np.array([f"c{k:04d}" for k in range(CATEGORIES)], dtype=object)
    values = window_values(0, FALSE_ALARM, "categorical20", N, 0)
    assert values.dtype == object and FAMILIES["categorical20"].kind == "categorical"
    _frequencies_fit(values, levels, 0.8 ** np.arange(CATEGORIES))


def test_zipf_family_follows_one_over_k():
    values = window_values(0, FALSE_ALARM, "zipf1000", N, 0)
    harmonic = sum(1 / k for k in range(1, ZIPF_LEVELS + 1))
    _, counts = np.unique(values, return_counts=True)
    assert len(counts) <= ZIPF_LEVELS
    top = np.count_nonzero(values == "z0000") / N
    assert abs(top - 1 / harmonic) < 5 * math.sqrt(top / N)
    tenth = np.count_nonzero(values == "z0009") / N
    assert abs(tenth - 1 / (10 * harmonic)) < 5 * math.sqrt(tenth / N)


def test_scenarios_shift_what_they_say():
    normal = window_values(0, FALSE_ALARM, "normal", N, 0)
    for name, mean in (("mean+0.1sd", 0.1), ("mean+0.25sd", 0.25), ("mean+0.5sd", 0.5)):
        assert _ks_p(window_values(0, POWER, name, N, 0), stats.norm(loc=mean).cdf) > 1e-4
    assert _ks_p(window_values(0, POWER, "scale*1.2", N, 0), stats.norm(scale=1.2).cdf) > 1e-4
    assert abs(window_values(0, POWER, "ones40->45%", N, 0).mean() - 0.45) < 0.005
    assert abs(window_values(0, POWER, "ones3->8%", N, 0).mean() - 0.08) < 0.003
    new = window_values(0, POWER, "new_category_2%", N, 0)
    assert abs(np.count_nonzero(new == "c_new") / N - 0.02) < 0.002
    tail = window_values(0, POWER, "above_p95+1sd", N, 0)
    # below P95 the distribution is untouched; above, every value moved up by 1
    assert np.count_nonzero((tail > P95) & (tail <= P95 + 1.0)) == 0
    assert abs(np.count_nonzero(tail > P95 + 1.0) / N - 0.05) < 0.003
    assert abs(np.count_nonzero(normal > P95) / N - 0.05) < 0.003
    assert {s.family for s in SCENARIOS.values()} <= set(FAMILIES)


def test_familywise_report_cycles_through_the_families():
    columns = familywise_columns()
    assert len(columns) == FAMILYWISE_COLUMNS
    assert set(columns.values()) == set(FAMILIES)
    assert list(columns)[:2] == ["normal_0", "lognormal_0"]
    assert [reference_of_window(w, 3) for w in range(5)] == [0, 1, 2, 0, 1]


def test_wilson_interval():
    assert wilson(0, 2000)[0] == 0.0
    z2 = 1.959963984540054 ** 2
    assert wilson(0, 2000)[1] == pytest.approx(z2 / (2000 + z2))
    low, high = wilson(20, 2000)
    assert low < 0.01 < high and high - low < 0.01
    assert all(math.isnan(x) for x in wilson(0, 0))


def test_calibration_summary_and_power_check():
    cells = {"a": Rate(10, 2000), "b": Rate(60, 2000), "c": Rate(30, 2000)}
    summary = calibration_summary(cells, 0.01, 0.02, 0.015)
    assert summary["over_limit"] == ["b"] and summary["surely_over_limit"] == ["b"]
    assert summary["pooled"]["flags"] == 100 and not summary["met"]
    # the peer alarms less often than we do: our power must be at least its
    check = power_check(Rate(100, 200), Rate(4, 200), Rate(150, 200), Rate(2, 200))
    assert check["applies"] and not check["ok"] and check["surely_lower"]
    # the peer alarms more often: no claim
    check = power_check(Rate(100, 200), Rate(2, 200), Rate(150, 200), Rate(40, 200))
    assert not check["applies"] and check["ok"]
