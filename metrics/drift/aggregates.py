"""One drift statistic of one column against a reference profile: psi, js, hellinger, chi2,
ks and wasserstein.

Each is defined with the reference profile's name and compares once a fitted profile is
bound (pass the profile itself instead of the name to bind at once). The state is the
current window's counts over the reference bins, so states merge exactly and the values
are bit-identical whatever the chunking.
"""

from __future__ import annotations

import math
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
from metrics.drift.profile import ReferenceProfile
from metrics.drift.state import BinCountsState, ColumnCounts

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
    """A drift statistic of one column; subclasses say which."""

    column: str
    reference: str
    profile_id: str | None = field(default=None, kw_only=True)
    profile: ReferenceProfile | None = field(default=None, kw_only=True, compare=False, repr=False)

    numeric_only: ClassVar[bool] = False

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
            return {self.column: "numeric" if self.numeric_only else "any"}
        return {self.column: methods.column_kind(self.profile.column(self.column))}

    def new_state(self) -> BinCountsState:
        return BinCountsState(self.bound_profile(), [self.column])

    def state_from_bytes(self, data: bytes) -> BinCountsState:
        return self.new_state().load(data)

    def _current(self, state: BinCountsState) -> ColumnCounts:
        return state.column(self.column)


@dataclass(frozen=True)
class PSI(ColumnDrift):
    """Population stability index over the reference bins (empty bins floored at 1e-4).

    >>> import pandas as pd
    >>> ref = ReferenceProfile.fit(pd.DataFrame({"x": range(100)}), name="training", bins=4)
    >>> agg = psi("x", ref)
    >>> state = agg.new_state()
    >>> state.update(pd.DataFrame({"x": range(50, 150)}))
    >>> agg.value(state)  # half the window is above the reference range
    {'psi': 8.168203072614952}
    """

    kind = "psi"

    def fields(self) -> tuple[str, ...]:
        return ("psi",)

    def value(self, state: BinCountsState) -> dict[str, float]:
        reference = self.bound_profile().column(self.column)
        return {"psi": methods.psi_of(reference, self._current(state))}


@dataclass(frozen=True)
class JensenShannon(ColumnDrift):
    """Jensen–Shannon distance over the reference bins; the log base is ``base``.

    The default base is e (scipy's and Evidently's), giving values in [0, 0.833];
    ``base=2`` (NannyML's) gives [0, 1].

    >>> import pandas as pd
    >>> ref = ReferenceProfile.fit(pd.DataFrame({"device": ["ios"] * 6 + ["web"] * 4}))
    >>> agg = js("device", ref, base=2)
    >>> state = agg.new_state()
    >>> state.update(pd.DataFrame({"device": ["ios", "web", "web", "tv"]}))
    >>> agg.value(state)
    {'js': 0.4272865872206532}
    """

    base: float = math.e
    kind = "jensenshannon"

    def __post_init__(self) -> None:
        check_base(self.kind, self.base)
        super().__post_init__()

    def fields(self) -> tuple[str, ...]:
        return ("js",)

    def value(self, state: BinCountsState) -> dict[str, float]:
        reference = self.bound_profile().column(self.column)
        return {"js": methods.jensenshannon_of(reference, self._current(state), self.base)}


@dataclass(frozen=True)
class Hellinger(ColumnDrift):
    """Hellinger distance over the reference bins, in [0, 1].

    >>> import pandas as pd
    >>> ref = ReferenceProfile.fit(pd.DataFrame({"device": ["ios"] * 6 + ["web"] * 4}))
    >>> agg = hellinger("device", ref)
    >>> state = agg.new_state()
    >>> state.update(pd.DataFrame({"device": ["ios", "web", "web", "web"]}))
    >>> agg.value(state)
    {'hellinger': 0.25490999955688715}
    """

    kind = "hellinger"

    def fields(self) -> tuple[str, ...]:
        return ("hellinger",)

    def value(self, state: BinCountsState) -> dict[str, float]:
        reference = self.bound_profile().column(self.column)
        return {"hellinger": methods.hellinger_of(reference, self._current(state))}


@dataclass(frozen=True)
class Chi2(ColumnDrift):
    """Chi-square test of reference vs current counts (scipy's chi2_contingency on 2×K).

    >>> import pandas as pd
    >>> ref = ReferenceProfile.fit(pd.DataFrame({"device": ["ios"] * 60 + ["web"] * 40}))
    >>> agg = chi2("device", ref)
    >>> state = agg.new_state()
    >>> state.update(pd.DataFrame({"device": ["ios"] * 30 + ["web"] * 70}))
    >>> agg.value(state)
    {'chi2': 16.98989898989899, 'p_value': 3.7579211012441855e-05}
    """

    kind = "chi2"

    def fields(self) -> tuple[str, ...]:
        return ("chi2", "p_value")

    def value(self, state: BinCountsState) -> dict[str, float]:
        reference = self.bound_profile().column(self.column)
        statistic, p_value = methods.chi2_of(reference, self._current(state))
        return {"chi2": statistic, "p_value": p_value}


@dataclass(frozen=True)
class Chi2GoF(ColumnDrift):
    """Chi-square goodness of fit of the current counts to the reference proportions,
    Evidently's ``chisquare`` stattest (scipy's ``chisquare`` against the reference
    proportions scaled to the window); :class:`Chi2` is the homogeneity test.

    A current value in a bin the reference never had gives ``inf`` and p = 0, as in
    Evidently; see :func:`metrics.drift.stats.chi2_gof`.

    >>> import pandas as pd
    >>> ref = ReferenceProfile.fit(pd.DataFrame({"device": ["ios"] * 60 + ["web"] * 40}))
    >>> agg = chi2_gof("device", ref)
    >>> state = agg.new_state()
    >>> state.update(pd.DataFrame({"device": ["ios"] * 30 + ["web"] * 70}))
    >>> agg.value(state)
    {'chi2_gof': 37.5, 'p_value': 9.141298408246627e-10}
    """

    kind = "chi2_gof"

    def fields(self) -> tuple[str, ...]:
        return ("chi2_gof", "p_value")

    def value(self, state: BinCountsState) -> dict[str, float]:
        reference = self.bound_profile().column(self.column)
        statistic, p_value = methods.chi2_gof_of(reference, self._current(state))
        return {"chi2_gof": statistic, "p_value": p_value}


@dataclass(frozen=True)
class KS(ColumnDrift):
    """Two-sample Kolmogorov–Smirnov statistic over the reference bin boundaries, p-value.

    The binned statistic is at most ``max_j min(p_j, q_j)`` (~1/bins) below the raw-data
    one; see :func:`metrics.drift.stats.ks`.

    >>> import pandas as pd
    >>> ref = ReferenceProfile.fit(pd.DataFrame({"x": range(1000)}), bins=10)
    >>> agg = ks("x", ref)
    >>> state = agg.new_state()
    >>> state.update(pd.DataFrame({"x": range(300, 1300)}))
    >>> {name: round(v, 42) for name, v in agg.value(state).items()}
    {'ks': 0.3, 'p_value': 2.1e-40}
    """

    kind = "ks"
    numeric_only = True

    def fields(self) -> tuple[str, ...]:
        return ("ks", "p_value")

    def value(self, state: BinCountsState) -> dict[str, float]:
        reference = self.bound_profile().numeric_column(self.column)
        statistic, p_value = methods.ks_of(reference, self._current(state))
        return {"ks": statistic, "p_value": p_value}


@dataclass(frozen=True)
class Wasserstein(ColumnDrift):
    """Wasserstein-1 distance divided by the reference std ("Wasserstein distance (normed)").

    Mass is spread uniformly within each bin; the binning error is bounded by
    ``Σ (p_j + q_j) · w_j / 2 / std``; see :func:`metrics.drift.stats.wasserstein`.

    >>> import pandas as pd
    >>> ref = ReferenceProfile.fit(pd.DataFrame({"x": range(1000)}), bins=10)
    >>> agg = wasserstein("x", ref)
    >>> state = agg.new_state()
    >>> state.update(pd.DataFrame({"x": range(300, 1300)}))
    >>> agg.value(state)  # raw data: 300 / std(range(1000)) = 1.0392310041...
    {'wasserstein': 1.039231004156339}
    """

    kind = "wasserstein"
    numeric_only = True

    def fields(self) -> tuple[str, ...]:
        return ("wasserstein",)

    def value(self, state: BinCountsState) -> dict[str, float]:
        reference = self.bound_profile().numeric_column(self.column)
        return {"wasserstein": methods.wasserstein_of(reference, self._current(state))}


# Presets: functions that return specs. ``reference`` is a profile's name, bound later, or
# a fitted ReferenceProfile, bound at once.
def psi(column: str, reference: str | ReferenceProfile) -> PSI:
    return PSI(column, **split_reference(reference))


def jensenshannon(
    column: str, reference: str | ReferenceProfile, base: float = math.e
) -> JensenShannon:
    return JensenShannon(column, base=base, **split_reference(reference))


js = jensenshannon


def hellinger(column: str, reference: str | ReferenceProfile) -> Hellinger:
    return Hellinger(column, **split_reference(reference))


def chi2(column: str, reference: str | ReferenceProfile) -> Chi2:
    return Chi2(column, **split_reference(reference))


def chi2_gof(column: str, reference: str | ReferenceProfile) -> Chi2GoF:
    return Chi2GoF(column, **split_reference(reference))


def ks(column: str, reference: str | ReferenceProfile) -> KS:
    return KS(column, **split_reference(reference))


def wasserstein(column: str, reference: str | ReferenceProfile) -> Wasserstein:
    return Wasserstein(column, **split_reference(reference))
