"""One drift statistic of one column against a reference profile — psi, js, hellinger,
chi2, chi2_gof, ks and wasserstein — with its p-value at the window's count and a drift
flag (see :mod:`metrics.drift.decision`).

Each is defined with the reference profile's name and compares once a fitted profile is
bound (pass the profile itself instead of the name to bind at once). The state is the
current window's counts over the reference bins, so states merge exactly and the values
are bit-identical whatever the chunking.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from metrics.base import ColumnKind
from metrics.drift import methods
from metrics.drift.binding import (
    ReferenceBound,
    check_base,
    split_reference,
)
from metrics.drift.columns import NumericProfile
from metrics.drift.decision import (
    DEFAULT_ALPHA,
    check_decision,
    decide,
    why_drifted,
)
from metrics.drift.profile import ReferenceProfile
from metrics.drift.state import BinCountsState

__all__ = [
    "KS",
    "PSI",
    "Chi2",
    "Chi2GoF",
    "Hellinger",
    "JensenShannon",
    "Wasserstein",
    "chi2",
    "chi2_gof",
    "hellinger",
    "jensenshannon",
    "js",
    "ks",
    "psi",
    "wasserstein",
]


@dataclass(frozen=True)
class ColumnDrift(ReferenceBound):
    """A drift statistic of one column, with its p-value and a drift flag; subclasses say
    which statistic (``method``, one of :data:`metrics.drift.methods.METHODS`).

    Fields: the statistic, ``p_value`` (under the profile's simulated null at the
    window's count, :mod:`metrics.drift.null`), ``p_adjusted`` (corrected with
    ``correction`` over the segments of the window) and ``drifted``: the adjusted p-value
    below ``alpha`` and the effect at least ``min_effect`` (the method's by default; see
    :mod:`metrics.drift.decision`).
    """

    column: str
    reference: str
    alpha: float = field(default=DEFAULT_ALPHA, kw_only=True)
    correction: str = field(default="bh", kw_only=True)
    min_effect: float | None = field(default=None, kw_only=True)
    profile_id: str | None = field(default=None, kw_only=True)
    profile: ReferenceProfile | None = field(default=None, kw_only=True, compare=False, repr=False)

    numeric_only: ClassVar[bool] = False
    method: ClassVar[str]

    def __post_init__(self) -> None:
        check_decision(self.kind, self.alpha, self.correction, self.min_effect)
        super().__post_init__()

    def check_profile(self, profile: ReferenceProfile) -> None:
        column = profile.column(self.column)
        if self.numeric_only and not isinstance(column, NumericProfile):
            raise ValueError(
                f"{self.kind} needs a numeric column, but {self.column!r} is categorical in "
                f"reference profile {profile.name!r} ({profile.id}); use psi, js, hellinger "
                f"or chi2 for categories"
            )

    def columns(self) -> dict[str, ColumnKind]:
        if self.profile is None:
            return {self.column: "numeric" if self.numeric_only else "scalar"}
        return {self.column: methods.column_kind(self.profile.column(self.column))}


    def fields(self) -> tuple[str, ...]:
        return (self._method.field, "p_value", "p_adjusted", "drifted")

    def new_state(self) -> BinCountsState:
        return BinCountsState(self.bound_profile(), [self.column])

    def state_from_bytes(self, data: bytes) -> BinCountsState:
        return self.new_state().load(data)


    def value(self, state: BinCountsState) -> dict[str, float]:
        return self.window_values({"": state})[""]

    def window_values(self, states: Mapping[str, BinCountsState]
                      ) -> dict[str, dict[str, float]]:
        """Each segment's values; the segments of the window are corrected together."""
        method = self._method
        column = self.bound_profile().column(self.column)
        min_effect = method.min_effect if self.min_effect is None else self.min_effect
        tests = {}
        for segment, state in states.items():
            tests[segment] = methods.test_column(method, column, state.column(self.column),
                                         self._base, min_effect)
        verdicts = decide(tests, self.alpha, self.correction)
        return {segment: {method.field: tests[segment].statistic,
                          "p_value": tests[segment].p_value,
                          "p_adjusted": verdicts[segment].p_adjusted,
                          "drifted": verdicts[segment].drifted}
                for segment in states}

    def explain(self, field: str, values: Mapping[str, float], count: int | None
                ) -> str | None:
        method = self._method
        min_effect = method.min_effect if self.min_effect is None else self.min_effect
        return why_drifted(None, method.field, values, count, self.alpha, self.correction,
                           min_effect, methods.shape_floor(method))

    @property
    def _method(self) -> methods.Method:
        return methods.METHODS[self.method]

    @property
    def _base(self) -> float:
        return math.e


@dataclass(frozen=True)
class PSI(ColumnDrift):
    """Population stability index over the reference bins (empty bins floored at 1e-4)."""

    kind = "psi"
    method = "psi"


@dataclass(frozen=True)
class JensenShannon(ColumnDrift):
    """Jensen–Shannon distance over the reference bins; the log base is ``base``.

    The default base is e (scipy's and Evidently's), giving values in [0, 0.833];
    ``base=2`` (NannyML's) gives [0, 1].
    """

    base: float = math.e
    kind = "jensenshannon"
    method = "js"

    def __post_init__(self) -> None:
        check_base(self.kind, self.base)
        super().__post_init__()

    @property
    def _base(self) -> float:
        return self.base


@dataclass(frozen=True)
class Hellinger(ColumnDrift):
    """Hellinger distance over the reference bins, in [0, 1]."""

    kind = "hellinger"
    method = "hellinger"


@dataclass(frozen=True)
class Chi2(ColumnDrift):
    """Chi-square test of homogeneity of reference and current counts: the statistic is
    scipy's ``chi2_contingency`` on the 2×K table (with its continuity correction on two
    bins); the p-value is Pearson's uncorrected statistic's, under the profile's null.
    """

    kind = "chi2"
    method = "chi2"


@dataclass(frozen=True)
class Chi2GoF(ColumnDrift):
    """Chi-square goodness of fit of the current counts to the reference proportions,
    Evidently's ``chisquare`` stattest (scipy's ``chisquare`` against the reference
    proportions scaled to the window); :class:`Chi2` is the homogeneity test.

    A current value in a bin the reference never had gives ``inf`` and p = 0, as in
    Evidently; see :func:`metrics.drift.stats.chi2_gof`.
    """

    kind = "chi2_gof"
    method = "chi2_gof"


@dataclass(frozen=True)
class KS(ColumnDrift):
    """Two-sample Kolmogorov–Smirnov statistic over the reference bin boundaries, p-value.

    The binned statistic is at most ``max_j min(p_j, q_j)`` (~1/bins) below the raw-data
    one; see :func:`metrics.drift.stats.ks`.
    """

    kind = "ks"
    method = "ks"
    numeric_only = True


@dataclass(frozen=True)
class Wasserstein(ColumnDrift):
    """Wasserstein-1 distance divided by the reference std ("Wasserstein distance (normed)").

    From the counts and the mean position of each bin's mass; the binning error is
    bounded in :func:`metrics.drift.stats.wasserstein`.
    """

    kind = "wasserstein"
    method = "wasserstein"
    numeric_only = True




# Presets: functions that return specs. ``reference`` is a profile's name, bound later, or
# a fitted ReferenceProfile, bound at once.
def psi(column: str, reference: str | ReferenceProfile) -> PSI:
    """Population stability index of ``column`` against ``reference`` (a profile's name, bound
    later, or a fitted profile), with its p-value, adjusted p-value and drift flag (see
    :class:`ColumnDrift`).

    >>> import pandas as pd
    >>> ref = ReferenceProfile.fit(pd.DataFrame({"x": range(100)}), name="training", bins=4)
    >>> agg = psi("x", ref)
    >>> state = agg.new_state()
    >>> state.update(pd.DataFrame({"x": range(50, 150)}))
    >>> values = agg.value(state)  # half the window is above the reference range
    >>> values["psi"], values["p_value"] < 1e-9, values["drifted"]
    (8.168203072614952, True, 1.0)
    """
    return PSI(column, **split_reference(reference))


def jensenshannon(
    column: str, reference: str | ReferenceProfile, base: float = JensenShannon.base
) -> JensenShannon:
    """Jensen–Shannon distance of ``column`` against ``reference`` (a profile's name, bound
    later, or a fitted profile), with its p-value, adjusted p-value and drift flag (see
    :class:`ColumnDrift`). ``base`` is the log base (see :class:`JensenShannon`); ``js`` is the
    same function.

    >>> import pandas as pd
    >>> ref = ReferenceProfile.fit(pd.DataFrame({"device": ["ios"] * 6 + ["web"] * 4}))
    >>> agg = js("device", ref, base=2)
    >>> state = agg.new_state()
    >>> state.update(pd.DataFrame({"device": ["ios", "web", "web", "tv"]}))
    >>> values = agg.value(state)  # large, but 4 events could give it by chance
    >>> values["js"], round(values["p_value"], 2), values["drifted"]
    (0.4272865872206532, 0.14, 0.0)
    """
    return JensenShannon(column, base=base, **split_reference(reference))


js = jensenshannon


def hellinger(column: str, reference: str | ReferenceProfile) -> Hellinger:
    """Hellinger distance of ``column`` against ``reference`` (a profile's name, bound later, or
    a fitted profile), with its p-value, adjusted p-value and drift flag (see
    :class:`ColumnDrift`).

    >>> import pandas as pd
    >>> ref = ReferenceProfile.fit(pd.DataFrame({"device": ["ios"] * 6 + ["web"] * 4}))
    >>> agg = hellinger("device", ref)
    >>> state = agg.new_state()
    >>> state.update(pd.DataFrame({"device": ["ios", "web", "web", "web"]}))
    >>> values = agg.value(state)
    >>> values["hellinger"], round(values["p_value"], 2), values["drifted"]
    (0.25490999955688715, 0.25, 0.0)
    """
    return Hellinger(column, **split_reference(reference))


def chi2(column: str, reference: str | ReferenceProfile) -> Chi2:
    """Chi-square test of homogeneity of ``column`` against ``reference`` (a profile's name,
    bound later, or a fitted profile), with its p-value, adjusted p-value and drift flag (see
    :class:`ColumnDrift`).

    >>> import pandas as pd
    >>> ref = ReferenceProfile.fit(pd.DataFrame({"device": ["ios"] * 60 + ["web"] * 40}))
    >>> agg = chi2("device", ref)
    >>> state = agg.new_state()
    >>> state.update(pd.DataFrame({"device": ["ios"] * 30 + ["web"] * 70}))
    >>> values = agg.value(state)
    >>> values["chi2"], values["p_value"] < 1e-4, values["drifted"]
    (16.98989898989899, True, 1.0)
    """
    return Chi2(column, **split_reference(reference))


def chi2_gof(column: str, reference: str | ReferenceProfile) -> Chi2GoF:
    """Chi-square goodness of fit of ``column`` against ``reference`` (a profile's name, bound
    later, or a fitted profile), with its p-value, adjusted p-value and drift flag (see
    :class:`ColumnDrift`).

    >>> import pandas as pd
    >>> ref = ReferenceProfile.fit(pd.DataFrame({"device": ["ios"] * 60 + ["web"] * 40}))
    >>> agg = chi2_gof("device", ref)
    >>> state = agg.new_state()
    >>> state.update(pd.DataFrame({"device": ["ios"] * 30 + ["web"] * 70}))
    >>> values = agg.value(state)
    >>> values["chi2_gof"], values["p_value"] < 1e-3, values["drifted"]
    (37.5, True, 1.0)
    """
    return Chi2GoF(column, **split_reference(reference))


def ks(column: str, reference: str | ReferenceProfile) -> KS:
    """Kolmogorov–Smirnov statistic of numeric ``column`` against ``reference`` (a profile's
    name, bound later, or a fitted profile), with its p-value, adjusted p-value and drift flag
    (see :class:`ColumnDrift`).

    >>> import pandas as pd
    >>> ref = ReferenceProfile.fit(pd.DataFrame({"x": range(1000)}), bins=10)
    >>> agg = ks("x", ref)
    >>> state = agg.new_state()
    >>> state.update(pd.DataFrame({"x": range(300, 1300)}))
    >>> values = agg.value(state)
    >>> round(values["ks"], 12), values["p_value"] < 1e-20, values["drifted"]
    (0.3, True, 1.0)
    """
    return KS(column, **split_reference(reference))


def wasserstein(column: str, reference: str | ReferenceProfile) -> Wasserstein:
    """Normed Wasserstein distance of numeric ``column`` against ``reference`` (a profile's
    name, bound later, or a fitted profile), with its p-value, adjusted p-value and drift flag
    (see :class:`ColumnDrift`).

    >>> import pandas as pd
    >>> ref = ReferenceProfile.fit(pd.DataFrame({"x": range(1000)}), bins=10)
    >>> agg = wasserstein("x", ref)
    >>> state = agg.new_state()
    >>> state.update(pd.DataFrame({"x": range(300, 1300)}))
    >>> values = agg.value(state)  # raw data: 300 / std(range(1000)) = 1.0392310041...
    >>> values["wasserstein"], values["p_value"] < 1e-20, values["drifted"]
    (1.039231004156339, True, 1.0)
    """
    return Wasserstein(column, **split_reference(reference))
