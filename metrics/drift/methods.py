"""Drift methods: each statistic applied to one column's reference profile and current counts.

Defaults follow Evidently, checked in its source (``calculations/stattests/registry.py``
``_get_default_stattest``, each stattest's ``default_threshold``, and the 0.1.50 release
notes; unchanged in the 0.7 ``evidently.legacy`` module):

- reference column with more than 1,000 non-null values: Wasserstein distance normed by
  the reference standard deviation for numeric columns, Jensen–Shannon distance for
  categorical ones, drift when the value is >= 0.1;
- 1,000 or fewer: two-sample KS for numeric columns and chi-square for categorical ones,
  drift when the p-value is < 0.05.

Evidently also treats numeric columns with at most 5 distinct values as categorical and
uses a proportions z-test for binary categorical columns on small references; here the
column's type comes from the profile and chi-square covers binary columns too. Evidently
bins numeric columns for JS/PSI with 'sturges' bins over both samples; these use the
reference quantile bins, so the values differ by binning.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from metrics.drift import stats
from metrics.drift.columns import CategoricalProfile, ColumnProfile, NumericProfile
from metrics.drift.state import ColumnCounts

__all__ = ["AUTO_REFERENCE_SIZE", "METHODS", "Method", "auto_method", "column_kind"]

# Evidently's cut between "small" and "large" references, in non-null values.
AUTO_REFERENCE_SIZE = 1000
# Evidently's floor for the std that normalises Wasserstein (a constant column).
MIN_STD = 0.001


def psi_of(reference: ColumnProfile, current: ColumnCounts) -> float:
    return stats.psi(reference.reference_counts(), current.counts)


def jensenshannon_of(reference: ColumnProfile, current: ColumnCounts, base: float) -> float:
    return stats.jensenshannon(reference.reference_counts(), current.counts, base)


def hellinger_of(reference: ColumnProfile, current: ColumnCounts) -> float:
    return stats.hellinger(reference.reference_counts(), current.counts)


def chi2_of(reference: ColumnProfile, current: ColumnCounts) -> tuple[float, float]:
    return stats.chi2(reference.reference_counts(), current.counts)


def chi2_gof_of(reference: ColumnProfile, current: ColumnCounts) -> tuple[float, float]:
    """Evidently's chi-square: goodness of fit to the reference proportions."""
    return stats.chi2_gof(reference.reference_counts(), current.counts)


def ks_of(reference: NumericProfile, current: ColumnCounts) -> tuple[float, float]:
    return stats.ks(reference.reference_counts(), current.counts)


def wasserstein_of(reference: NumericProfile, current: ColumnCounts) -> float:
    """Wasserstein-1 divided by the reference std (floored at 0.001, as Evidently does)."""
    assert current.offsets is not None
    distance = stats.wasserstein(
        np.asarray(reference.edges), reference.reference_counts(), current.counts,
        outside_distance(reference, current),
        reference.reference_means(), reference.bin_means(current.counts, current.offsets),
    )
    return distance / max(reference.std, MIN_STD)


def outside_distance(reference: NumericProfile, current: ColumnCounts) -> float:
    """The mean distance of the current values to the reference range, rounded once.

    Summed in exact rationals from the fixed-point distances (each floored to
    ``(e_last − e_0)·2**-32``) and the exact sums of the far outliers.
    """
    n = current.n
    if n == 0 or current.below is None or current.above is None:
        return 0.0
    scale = reference.fixed_point_scale
    total = current.below.total(reference.edges[0], scale) + current.above.total(
        reference.edges[-1], scale
    )
    return float(total / n)


@dataclass(frozen=True)
class Method:
    """A statistic a drift report can use per column, and how it decides drift."""

    name: str
    field: str  # the report's field is "{column}.{field}"
    numeric_only: bool
    p_value: bool  # drift when the score is below the threshold, not at or above it
    default_threshold: float
    score: Callable[[ColumnProfile, ColumnCounts, float], float]

    def drifted(self, score: float, threshold: float) -> float:
        """1.0 or 0.0, NaN when there is no score (an empty window)."""
        if math.isnan(score):
            return float("nan")
        return float(score < threshold if self.p_value else score >= threshold)


def _numeric(score: Callable[[NumericProfile, ColumnCounts], float]) -> Callable[
    [ColumnProfile, ColumnCounts, float], float
]:
    def numeric_score(reference: ColumnProfile, current: ColumnCounts, base: float) -> float:
        assert isinstance(reference, NumericProfile)
        return score(reference, current)

    return numeric_score


_js = Method("js", "js", False, False, 0.1, jensenshannon_of)
METHODS: dict[str, Method] = {
    "psi": Method("psi", "psi", False, False, 0.1, lambda r, c, _: psi_of(r, c)),
    "js": _js,
    "jensenshannon": _js,
    "hellinger": Method("hellinger", "hellinger", False, False, 0.1,
                        lambda r, c, _: hellinger_of(r, c)),
    "chi2": Method("chi2", "chi2_p_value", False, True, 0.05, lambda r, c, _: chi2_of(r, c)[1]),
    "chi2_gof": Method("chi2_gof", "chi2_gof_p_value", False, True, 0.05,
                       lambda r, c, _: chi2_gof_of(r, c)[1]),
    "ks": Method("ks", "ks_p_value", True, True, 0.05, _numeric(lambda r, c: ks_of(r, c)[1])),
    "wasserstein": Method("wasserstein", "wasserstein", True, False, 0.1,
                          _numeric(wasserstein_of)),
}


def auto_method(column: ColumnProfile) -> Method:
    """Evidently's default for a column, from its type and reference size."""
    large = column.n > AUTO_REFERENCE_SIZE
    if isinstance(column, NumericProfile):
        return METHODS["wasserstein" if large else "ks"]
    return METHODS["js" if large else "chi2"]


def column_kind(column: ColumnProfile) -> str:
    """What the stream schema must give for a profiled column (a metrics.base.ColumnKind)."""
    if isinstance(column, NumericProfile):
        return "numeric"
    assert isinstance(column, CategoricalProfile)
    return {"str": "category", "bool": "bool"}.get(type(column.categories[0]).__name__, "any")
