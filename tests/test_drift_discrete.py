"""Discrete values in numeric columns: every statistic sees a shift between two reference
values, and binned KS is scipy's statistic exactly on columns of few distinct values.

Quantile bins with a closed last bin used to put tied values together (a 0/1 column got a
single bin, ratings 4 and 5 shared one), so psi, js, hellinger, chi2 and ks were all 0 or
"no drift" for a 40% -> 100% shift. The checks here are on the statistics' values, far
apart from what a window without drift gives; decisions are tested elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats
from scipy.spatial.distance import jensenshannon as scipy_jensenshannon

from metrics.drift import (
    ColumnDrift,
    NumericProfile,
    ReferenceProfile,
    chi2,
    hellinger,
    js,
    ks,
    psi,
)
from metrics.drift import stats as drift_stats
from metrics.drift.aggregates import chi2_gof

REFERENCE_ROWS, WINDOW_ROWS = 20_000, 20_000


@dataclass(frozen=True)
class Shift:
    """A column's reference distribution and a shifted one, drawn by ``draw(rng, n, shifted)``."""

    name: str
    draw: Callable[[np.random.Generator, int, bool], np.ndarray]
    discrete: bool  # every reference value gets a bin of its own


def levels(values: list[float], before: list[float], after: list[float]) -> Callable[
    [np.random.Generator, int, bool], np.ndarray
]:
    def draw(rng: np.random.Generator, n: int, shifted: bool) -> np.ndarray:
        return rng.choice(np.asarray(values), size=n, p=after if shifted else before)

    return draw


def zero_inflated(rng: np.random.Generator, n: int, shifted: bool) -> np.ndarray:
    """Latencies with 30% exact zeros (cache hits); shifted, 10%."""
    values = rng.lognormal(3.0, 1.0, size=n)
    values[rng.random(n) < (0.10 if shifted else 0.30)] = 0.0
    return values


SHIFTS = [
    Shift("ratings 1..5, every 4 became a 5",
          levels([1, 2, 3, 4, 5], [0.1, 0.2, 0.3, 0.25, 0.15], [0.1, 0.2, 0.3, 0.0, 0.4]), True),
    Shift("3 values with heavy ties, 20 -> 30",
          levels([10, 20, 30], [0.05, 0.15, 0.8], [0.05, 0.05, 0.9]), True),
    Shift("0/1 at 3% moved to 8%", levels([0, 1], [0.97, 0.03], [0.92, 0.08]), True),
    Shift("0/1 at 40% moved to 100%", levels([0, 1], [0.6, 0.4], [0.0, 1.0]), True),
    Shift("zero-inflated latency, zeros 30% -> 10%", zero_inflated, False),
]
# each preset's first field is its statistic, named as the preset
PRESETS: dict[str, Callable[..., ColumnDrift]] = {
    "psi": psi, "js": js, "hellinger": hellinger, "chi2": chi2, "chi2_gof": chi2_gof, "ks": ks,
}


def windows(shift: Shift) -> tuple[ReferenceProfile, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    reference = shift.draw(rng, REFERENCE_ROWS, False).astype(np.float64)
    same = shift.draw(rng, WINDOW_ROWS, False).astype(np.float64)
    shifted = shift.draw(rng, WINDOW_ROWS, True).astype(np.float64)
    profile = ReferenceProfile.fit(pd.DataFrame({"c": reference}), name="training")
    return profile, reference, same, shifted


def value(name: str, profile: ReferenceProfile, values: np.ndarray) -> dict[str, float]:
    aggregate = PRESETS[name]("c", profile)
    state = aggregate.new_state()
    state.update(pd.DataFrame({"c": values}))
    return aggregate.value(state)


@pytest.mark.parametrize("statistic", list(PRESETS))
@pytest.mark.parametrize("shift", SHIFTS, ids=[s.name for s in SHIFTS])
def test_every_statistic_sees_the_shift(shift: Shift, statistic: str) -> None:
    if statistic == "chi2_gof" and not shift.discrete:
        # a continuous window has values beyond the reference's range, where the
        # reference expects none: inf with or without drift (see stats.chi2_gof)
        return
    profile, _, same, shifted = windows(shift)
    without = value(statistic, profile, same)
    with_shift = value(statistic, profile, shifted)
    assert with_shift[statistic] > 5 * without[statistic]


@pytest.mark.parametrize("shift", [s for s in SHIFTS if s.discrete],
                         ids=[s.name for s in SHIFTS if s.discrete])
def test_on_discrete_columns_the_bins_are_the_values(shift: Shift) -> None:
    """psi, js, hellinger and chi2 over the bins equal the same statistics over the
    distinct values, and binned KS is ks_2samp's statistic bit for bit."""
    profile, reference, _, shifted = windows(shift)
    support = np.union1d(reference, shifted)
    p = np.array([(reference == v).sum() for v in support]) / len(reference)
    q = np.array([(shifted == v).sum() for v in support]) / len(shifted)
    p_floor, q_floor = np.where(p == 0, 1e-4, p), np.where(q == 0, 1e-4, q)
    assert value("psi", profile, shifted)["psi"] == pytest.approx(
        np.sum((q_floor - p_floor) * np.log(q_floor / p_floor)), rel=1e-12)
    assert value("js", profile, shifted)["js"] == pytest.approx(
        scipy_jensenshannon(p, q), rel=1e-12)
    assert value("hellinger", profile, shifted)["hellinger"] == pytest.approx(
        np.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2) / 2), rel=1e-12)
    table = np.vstack([p * len(reference), q * len(shifted)]).round()
    expected = scipy_stats.chi2_contingency(table[:, table.sum(axis=0) > 0])
    assert value("chi2", profile, shifted)["chi2"] == pytest.approx(expected.statistic,
                                                                    rel=1e-12)
    assert value("ks", profile, shifted)["ks"] == ks_2samp(reference, shifted)


def test_a_point_mass_in_a_continuous_column_has_a_bin_of_its_own() -> None:
    shift = SHIFTS[-1]
    profile, reference, _, shifted = windows(shift)
    column = profile.numeric_column("c")
    assert column.edges[:2] == (0.0, np.nextafter(0.0, 1.0))
    assert column.counts[1] == (reference == 0).sum()
    # the rest keeps quantile bins of ~1/100 of the reference each
    counts = np.asarray(column.counts[2:-1])
    assert counts.max() <= 0.011 * len(reference)
    # so KS is within 1/100 of scipy's (the old first bin held the zeros and 1% more)
    aggregate = ks("c", profile)
    state = aggregate.new_state()
    state.update(pd.DataFrame({"c": shifted}))
    d_b = aggregate.value(state)["ks"]
    error = drift_stats.ks_binning_error(column.reference_counts(), state.counts["c"],
                                         np.asarray(column.edges))
    assert error <= 0.011
    assert d_b <= scipy_stats.ks_2samp(reference, shifted).statistic <= d_b + error


def test_the_issue_reproduction() -> None:
    reference = pd.DataFrame({"clicked": [0.0] * 3001 + [1.0] * 2000,
                              "rating": np.r_[np.tile([1.0, 2, 3, 4, 5], 1000), 1.0]})
    current = pd.DataFrame({"clicked": [1.0] * 1000, "rating": np.tile([1.0, 2, 3, 5, 5], 200)})
    profile = ReferenceProfile.fit(reference, name="ref")
    assert profile.numeric_column("clicked").counts == (0, 3001, 0, 2000, 0, 0)
    for column in ("clicked", "rating"):
        binned = value_of(ks(column, profile), current)["ks"]
        assert binned == ks_2samp(reference[column], current[column])
    assert value_of(ks("clicked", profile), current)["ks"] == pytest.approx(0.6, abs=1e-3)
    for preset in (psi, js, hellinger):
        assert all(next(iter(value_of(preset(c, profile), current).values())) > 0.1
                   for c in ("clicked", "rating"))


def test_ks_is_exact_off_the_reference_support_too() -> None:
    """New values (below, between and above the reference's) fall in bins the reference
    has no mass in, where only the current CDF moves: still scipy's statistic."""
    reference = np.repeat([1.0, 2.0, 3.0, 4.0, 5.0], [100, 200, 300, 250, 150])
    current = np.r_[reference[::3], [0.0, 2.5, 2.5, 4.5, 5.0 + 1e-9, 7.0],
                    np.nextafter(5.0, 6.0), np.nextafter(np.nextafter(5.0, 6.0), 6.0)]
    column = NumericProfile.fit(reference)
    tally = column.count(current)
    d_b, _ = drift_stats.ks(column.reference_counts(), tally.counts)
    assert d_b == ks_2samp(reference, current)
    assert drift_stats.ks_binning_error(column.reference_counts(), tally.counts,
                                        np.asarray(column.edges)) == 0.0


# -0.0 and 0.0, values one float apart, subnormals, and values far apart (ks_2samp warns
# about its p-value on tiny samples: only its statistic is used)
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@settings(max_examples=200, deadline=None)
@given(
    support=st.lists(st.sampled_from([-1e150, -1.0, -0.0, 0.0, 5e-324, 1.0,
                                      np.nextafter(1.0, 2.0), 3.5, 1e150])
                     | st.floats(-1e9, 1e9),
                     min_size=1, max_size=30),
    weights=st.lists(st.integers(1, 50), min_size=30, max_size=30),
    bins=st.integers(1, 40),
    current=st.lists(st.floats(-1e12, 1e12), min_size=1, max_size=50),
)
def test_profiles_keep_their_invariants_on_any_discrete_data(
    support: list[float], weights: list[int], bins: int, current: list[float]
) -> None:
    reference = np.repeat(np.asarray(support), weights[: len(support)])
    column = NumericProfile.fit(reference, bins=bins)
    edges = np.asarray(column.edges)
    constant = len(np.unique(reference)) == 1
    assert (np.diff(edges) > 0).all() or (constant and len(edges) == 2 and edges[0] == edges[1])
    assert edges[0] == reference.min() and edges[-1] >= reference.max()
    inner, _ = np.histogram(reference, bins=edges)
    assert column.counts == (0, *inner.tolist(), 0)
    # every value's own bin holds it alone, or the values are too many to each have one
    distinct, multiplicity = np.unique(reference, return_counts=True)
    for v, m in zip(distinct, multiplicity, strict=True):
        if len(distinct) <= bins or m * bins >= len(reference):
            j = min(int(np.searchsorted(edges, v, side="right")), len(edges) - 1)  # 1-based
            closed = j == len(edges) - 1
            inside = (reference >= edges[j - 1]) & (
                (reference <= edges[j]) if closed else (reference < edges[j]))
            assert set(reference[inside].tolist()) == {v}
    if len(distinct) <= bins:
        cur = np.asarray(current)
        tally = column.count(cur)
        d_b, _ = drift_stats.ks(column.reference_counts(), tally.counts)
        assert d_b == ks_2samp(reference, cur)
        assert drift_stats.ks_binning_error(column.reference_counts(), tally.counts,
                                            edges) == 0.0 or math.isnan(d_b)


def ks_2samp(reference: np.ndarray | pd.Series, current: np.ndarray | pd.Series) -> float:
    """scipy's statistic as its asymptotic method computes it, the method whose p-value
    ours is. (Its exact method, the default up to 10,000 values, re-rounds the same
    rational ``h / lcm(m, n)``, which can differ in the last bit.)"""
    return float(scipy_stats.ks_2samp(reference, current, method="asymp").statistic)


def value_of(aggregate: ColumnDrift, frame: pd.DataFrame) -> dict[str, float]:
    state = aggregate.new_state()
    state.update(frame)
    return aggregate.value(state)
