"""A drift report over many columns, with Evidently's default method per column.

One state holds the counts of every column, so a report costs one pass over the data;
see :mod:`metrics.drift.methods` for the defaults and what was checked in Evidently.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from metrics.base import ColumnKind
from metrics.drift.binding import (
    ReferenceBound,
    check_base,
    split_reference,
)
from metrics.drift.columns import NumericProfile
from metrics.drift.methods import METHODS, Method, auto_method, column_kind
from metrics.drift.profile import ReferenceProfile
from metrics.drift.state import BinCountsState

__all__ = ["Drift", "drift"]

_CATEGORY_METHODS = sorted(name for name, m in METHODS.items() if not m.numeric_only)


@dataclass(frozen=True)
class Drift(ReferenceBound):
    """Drift of many columns: a score and a 0/1 drift flag per column, and the drifted share.

    ``method`` is ``"auto"`` (Evidently's defaults, chosen per column from the reference
    profile: more than 1,000 reference values → normed Wasserstein for numeric columns and
    Jensen–Shannon for categorical ones, drift at >= 0.1; otherwise KS and chi-square,
    drift at p < 0.05) or one of psi, js, hellinger, chi2, ks, wasserstein for every
    column; ``categorical_method`` overrides it for categorical columns. ``threshold``
    replaces the methods' default thresholds.

    Fields are ``"{column}.{method}"`` (``ks_p_value`` and ``chi2_p_value`` for the tests,
    which flag drift below the threshold) and ``"{column}.drifted"`` per column, then
    ``"n_drifted"`` and ``"share_drifted"`` (over the columns with values). With
    ``method="auto"`` the fields depend on the profile, so ask for them once it is bound;
    binding records each column's method in ``column_methods``, a parameter, so an
    aggregate rebuilt from its parameters knows its fields before it is bound again.

    >>> import pandas as pd
    >>> ref = pd.DataFrame({"x": [float(i % 50) for i in range(2000)],
    ...                     "device": ["ios", "web"] * 1000})
    >>> report = drift(["x", "device"], ReferenceProfile.fit(ref, name="training"))
    >>> report.fields()
    ('x.wasserstein', 'x.drifted', 'device.js', 'device.drifted', 'n_drifted', 'share_drifted')
    >>> state = report.new_state()
    >>> state.update(pd.DataFrame({"x": [float(i % 50) + 10 for i in range(500)],
    ...                            "device": ["ios", "web"] * 250}))
    >>> report.value(state)
    {'x.wasserstein': 0.6929589286600709, 'x.drifted': 1.0, 'device.js': 0.0,
     'device.drifted': 0.0, 'n_drifted': 1.0, 'share_drifted': 0.5}
    """

    column_names: tuple[str, ...]
    reference: str
    method: str = "auto"
    threshold: float | None = None
    categorical_method: str | None = None
    base: float = math.e  # the log base of Jensen–Shannon, where it is used
    # The method each column uses, filled in when a profile is bound ("auto" depends on
    # it), so that an aggregate rebuilt from its params knows its fields unbound.
    column_methods: tuple[str, ...] | None = field(default=None, kw_only=True)
    profile_id: str | None = field(default=None, kw_only=True)
    profile: ReferenceProfile | None = field(default=None, kw_only=True, compare=False, repr=False)

    kind = "drift"

    def __post_init__(self) -> None:
        names = self.column_names
        if isinstance(names, str) or not names:
            raise ValueError(f"drift needs a sequence of column names, got {names!r}")
        object.__setattr__(self, "column_names", tuple(names))
        if len(set(self.column_names)) != len(self.column_names):
            raise ValueError(f"drift columns repeat: {list(self.column_names)}")
        if self.method != "auto" and self.method not in METHODS:
            raise ValueError(
                f"unknown drift method {self.method!r}; use 'auto' or one of {sorted(METHODS)}"
            )
        if self.categorical_method is not None and self.categorical_method not in (
            _CATEGORY_METHODS
        ):
            raise ValueError(
                f"categorical_method {self.categorical_method!r} is not one of "
                f"{_CATEGORY_METHODS}"
            )
        if self.threshold is not None and not (
            isinstance(self.threshold, int | float) and math.isfinite(self.threshold)
        ):
            raise ValueError(f"drift threshold must be a finite number, got {self.threshold!r}")
        check_base(self.kind, self.base)
        if self.column_methods is not None:
            resolved = tuple(self.column_methods)
            if len(resolved) != len(self.column_names) or not set(resolved) <= set(METHODS):
                raise ValueError(
                    f"column_methods {list(resolved)} do not name one method per column"
                )
            object.__setattr__(self, "column_methods", resolved)
        super().__post_init__()
        if self.profile is not None:
            resolved = tuple(self._resolve(name).name for name in self.column_names)
            object.__setattr__(self, "column_methods", resolved)

    def check_profile(self, profile: ReferenceProfile) -> None:
        for name in self.column_names:
            column = profile.column(name)
            if self.method in METHODS and not isinstance(column, NumericProfile):
                method = METHODS[self.categorical_method or self.method]
                if method.numeric_only:
                    raise ValueError(
                        f"drift method {self.method!r} needs numeric columns, but {name!r} is "
                        f"categorical in reference profile {profile.name!r} ({profile.id}); "
                        f"pass categorical_method= one of {_CATEGORY_METHODS}"
                    )

    # -- the plan: which method and threshold per column ------------------------------

    def _method(self, index: int) -> Method:
        if self.column_methods is not None:
            return METHODS[self.column_methods[index]]
        return self._resolve(self.column_names[index])

    def _resolve(self, name: str) -> Method:
        fixed = self.method != "auto" and self.categorical_method in (None, self.method)
        if fixed:
            return METHODS[self.method]
        column = self.bound_profile().column(name)
        if isinstance(column, NumericProfile):
            return auto_method(column) if self.method == "auto" else METHODS[self.method]
        if self.categorical_method is not None:
            return METHODS[self.categorical_method]
        return auto_method(column) if self.method == "auto" else METHODS[self.method]

    def _plan(self) -> list[tuple[str, Method, float]]:
        try:
            plan = [(name, self._method(i)) for i, name in enumerate(self.column_names)]
        except ValueError as err:
            if self.profile is not None:
                raise
            raise ValueError(
                f"drift(method={self.method!r}) picks each column's statistic from the "
                f"reference profile: {err}"
            ) from None
        return [
            (name, method, method.default_threshold if self.threshold is None else self.threshold)
            for name, method in plan
        ]

    # -- the aggregate ----------------------------------------------------------------

    def columns(self) -> dict[str, ColumnKind]:
        if self.profile is None:
            numeric = self.method in METHODS and METHODS[self.method].numeric_only
            return dict.fromkeys(self.column_names, "numeric" if numeric else "any")
        return {name: column_kind(self.profile.column(name)) for name in self.column_names}

    def fields(self) -> tuple[str, ...]:
        names: list[str] = []
        for name, method, _ in self._plan():
            names += [f"{name}.{method.field}", f"{name}.drifted"]
        return (*names, "n_drifted", "share_drifted")

    def new_state(self) -> BinCountsState:
        return BinCountsState(self.bound_profile(), self.column_names)

    def state_from_bytes(self, data: bytes) -> BinCountsState:
        return self.new_state().load(data)

    def value(self, state: BinCountsState) -> dict[str, float]:
        profile = self.bound_profile()
        values: dict[str, float] = {}
        drifted = scored = 0
        for name, method, threshold in self._plan():
            score = method.score(profile.column(name), state.column(name), self.base)
            flag = method.drifted(score, threshold)
            values[f"{name}.{method.field}"] = score
            values[f"{name}.drifted"] = flag
            scored += not math.isnan(flag)
            drifted += flag == 1.0
        values["n_drifted"] = float(drifted)
        values["share_drifted"] = drifted / scored if scored else float("nan")
        return values

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Self:
        params = {**params, "column_names": tuple(params["column_names"])}
        if params.get("column_methods") is not None:
            params["column_methods"] = tuple(params["column_methods"])
        return cls(**params)


def drift(
    columns: Sequence[str],
    reference: str | ReferenceProfile,
    method: str = "auto",
    threshold: float | None = None,
    *,
    categorical_method: str | None = None,
    base: float = math.e,
) -> Drift:
    """A drift report over ``columns`` against ``reference`` (a profile name or profile)."""
    if isinstance(columns, str):
        columns = [columns]
    return Drift(
        tuple(columns),
        method=method,
        threshold=threshold,
        categorical_method=categorical_method,
        base=base,
        **split_reference(reference),
    )
