"""Drift methods: each statistic applied to one column's reference profile and current counts.

Defaults follow Evidently, checked in its source (``calculations/stattests/registry.py``
``_get_default_stattest``, each stattest's ``default_threshold``, and the 0.1.50 release
notes; unchanged in the 0.7 ``evidently.legacy`` module):

- reference column with more than 1,000 non-null values: Wasserstein distance normed by
  the reference standard deviation for numeric columns, Jensen–Shannon distance for
  categorical ones, drift when the value is >= 0.1;
- 1,000 or fewer: two-sample KS for numeric columns and chi-square for categorical ones,
  drift when the p-value is < 0.05.

The statistics are Evidently's; the decisions are not. Evidently's fixed thresholds
ignore the window's size (with no drift at all, PSI >= 0.1 flagged a third of the
windows of 200 events). Here a column is drifted when its statistic is beyond sampling
noise at the window's count — its p-value under the null simulated from the reference
profile (:mod:`metrics.drift.null`), corrected over every column and segment tested
together, below ``alpha`` (0.01) — *and* its effect is at least the method's
``min_effect``: Evidently's threshold for the distances (0.1), a KS statistic of 0.05, a
total variation of 0.05 for chi-square (whose statistic grows with the counts and is no
effect size). A window much larger than the noise therefore decides as Evidently does,
and one too small for its statistic cannot flag noise. Wasserstein and KS, statistics of
the CDFs, also consult Pearson's chi-square over the same bins, which sees a change of
shape they miss (``test_column``).

Evidently also treats numeric columns with at most 5 distinct values as categorical and
uses a proportions z-test for binary categorical columns on small references; here the
column's type comes from the profile and chi-square covers binary columns too. Evidently
bins numeric columns for JS/PSI with 'sturges' bins over both samples; these use the
reference quantile bins, so the values differ by binning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from metrics.drift import stats
from metrics.drift.columns import CategoricalProfile, ColumnProfile, NumericProfile
from metrics.drift.decision import ColumnTest
from metrics.drift.null import column_null
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
    """A statistic a drift report can use per column, and how it decides drift.

    ``score`` is the statistic reported (field ``"{column}.{field}"``). The decision
    needs both: the counts-only ``null_statistic`` beyond sampling noise at the window's
    count (its p-value under the profile's simulated null, :mod:`metrics.drift.null`,
    after the report's correction, below ``alpha``), and an ``effect`` of at least
    ``min_effect`` (the statistic itself unless said otherwise; the defaults are
    Evidently's thresholds, so a window far larger than the noise decides as Evidently
    does, while a small one cannot flag noise).
    """

    name: str
    field: str  # the report's field is "{column}.{field}"
    numeric_only: bool
    min_effect: float
    score: Callable[[ColumnProfile, ColumnCounts, float], float]
    null_statistic: str
    effect: Callable[[ColumnProfile, ColumnCounts, float], float] | None = None
    effect_name: str | None = None  # what the effect is, when it is not the statistic
    # A statistic of the CDFs (Wasserstein, KS) is nearly blind to a change of shape that
    # leaves the CDFs close, e.g. the values above P95 moving up: W flagged 3.5% of such
    # windows of 200 events where Pearson's chi-square over the same bins flags 82%. Its
    # decision consults both (see test_column).
    shape_test: bool = False

    def effect_of(self, reference: ColumnProfile, current: ColumnCounts, base: float,
                  score: float) -> float:
        return score if self.effect is None else self.effect(reference, current, base)


# The smallest change of shape a CDF statistic's decision flags: 5% of the mass moved.
SHAPE_MIN_TOTAL_VARIATION = 0.05


def shape_floor(method: Method) -> float | None:
    """The change of shape ``method``'s decision also flags (a total variation), if any."""
    return SHAPE_MIN_TOTAL_VARIATION if method.shape_test else None


def test_column(method: Method, reference: ColumnProfile, current: ColumnCounts,
                base: float, min_effect: float) -> ColumnTest:
    """One column's test: its statistic, p-value at the window's count and whether the
    effect is large enough. For a CDF statistic (``shape_test``) the p-value is the
    smaller of its own and Pearson's chi-square over the same bins, doubled (Bonferroni),
    and the effect is large when the statistic reaches ``min_effect`` or at least
    :data:`SHAPE_MIN_TOTAL_VARIATION` of the mass moved."""
    score = method.score(reference, current, base)
    null = column_null(reference)
    effect = method.effect_of(reference, current, base, score)
    if not method.shape_test:
        p_value = null.p_value(method.null_statistic, current.counts)
        return ColumnTest(score, p_value, bool(effect >= min_effect))
    p_values = null.p_values((method.null_statistic, "chi2"), current.counts)
    p_value = float(np.minimum(1.0, 2.0 * np.min(list(p_values.values()))))  # NaN stays
    shape = total_variation(reference, current, base) >= SHAPE_MIN_TOTAL_VARIATION
    return ColumnTest(score, p_value, bool(effect >= min_effect or shape))


def _numeric(score: Callable[[NumericProfile, ColumnCounts], float]) -> Callable[
    [ColumnProfile, ColumnCounts, float], float
]:
    def numeric_score(reference: ColumnProfile, current: ColumnCounts, base: float) -> float:
        assert isinstance(reference, NumericProfile)
        return score(reference, current)

    return numeric_score


def total_variation(reference: ColumnProfile, current: ColumnCounts, _: float) -> float:
    """Half the summed absolute difference of the proportions: the share of the mass
    that moved (between 0 and 1)."""
    return stats.total_variation(reference.reference_counts(), current.counts)


_js = Method("js", "js", False, 0.1, jensenshannon_of, "js")
METHODS: dict[str, Method] = {
    "psi": Method("psi", "psi", False, 0.1, lambda r, c, _: psi_of(r, c), "psi"),
    "js": _js,
    "jensenshannon": _js,
    "hellinger": Method("hellinger", "hellinger", False, 0.1,
                        lambda r, c, _: hellinger_of(r, c), "hellinger"),
    "chi2": Method("chi2", "chi2", False, 0.05, lambda r, c, _: chi2_of(r, c)[0], "chi2",
                   total_variation, "total variation"),
    "chi2_gof": Method("chi2_gof", "chi2_gof", False, 0.05,
                       lambda r, c, _: chi2_gof_of(r, c)[0], "chi2_gof", total_variation,
                       "total variation"),
    "ks": Method("ks", "ks", True, 0.05, _numeric(lambda r, c: ks_of(r, c)[0]), "ks",
                 shape_test=True),
    "wasserstein": Method("wasserstein", "wasserstein", True, 0.1, _numeric(wasserstein_of),
                          "wasserstein", shape_test=True),
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
    return {"str": "category", "bool": "bool"}.get(type(column.categories[0]).__name__, "scalar")
