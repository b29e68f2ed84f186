"""A drift report over many columns, with Evidently's statistic per column and decisions
calibrated to each window's count (see :mod:`metrics.drift.decision`).

One state holds the counts of every column, so a report costs one pass over the data;
see :mod:`metrics.drift.methods` for the defaults and what was checked in Evidently.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from metrics.base import ColumnKind
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
from metrics.drift.methods import (
    METHODS,
    Method,
    auto_method,
    column_kind,
    shape_floor,
    test_column,
)
from metrics.drift.profile import ReferenceProfile
from metrics.drift.state import BinCountsState

__all__ = ["Drift", "drift"]

_CATEGORY_METHODS = sorted(name for name, m in METHODS.items() if not m.numeric_only)


@dataclass(frozen=True)
class Drift(ReferenceBound):
    """Drift of many columns: per column a statistic, its p-value and a drift flag; and
    how many columns drifted.

    ``method`` is ``"auto"`` (Evidently's statistics, chosen per column from the reference
    profile: more than 1,000 reference values → normed Wasserstein for numeric columns and
    Jensen–Shannon for categorical ones; otherwise KS and chi-square) or one of psi, js,
    hellinger, chi2, ks, wasserstein for every column; ``categorical_method`` overrides it
    for categorical columns.

    A column is drifted when its statistic is beyond sampling noise at the window's count
    — its p-value under the profile's simulated null (:mod:`metrics.drift.null`),
    corrected with ``correction`` over every column and segment of the window tested
    together, below ``alpha`` — and its effect is at least ``min_effect`` (by default the
    method's: Evidently's thresholds; see :mod:`metrics.drift.methods`).

    Fields are, per column, ``"{column}.{statistic}"`` (``ks`` for the KS statistic,
    ``chi2`` for Pearson's), ``"{column}.p_value"`` (before the correction),
    ``"{column}.p_adjusted"`` and ``"{column}.drifted"``, then ``"n_drifted"`` and
    ``"share_drifted"`` (over the columns with values). With ``method="auto"`` the fields
    depend on the profile, so ask for them once it is bound; binding records each
    column's method in ``column_methods``, a parameter, so an aggregate rebuilt from its
    parameters knows its fields before it is bound again.
    """

    column_names: tuple[str, ...]
    reference: str
    method: str = "auto"
    alpha: float = DEFAULT_ALPHA
    correction: str = "bh"
    min_effect: float | None = None  # None: each method's own
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
        check_decision(self.kind, self.alpha, self.correction, self.min_effect)
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
        """Per column: its method and the minimum effect it must show."""
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
            (name, method, method.min_effect if self.min_effect is None else self.min_effect)
            for name, method in plan
        ]

    # -- the aggregate ----------------------------------------------------------------

    def columns(self) -> dict[str, ColumnKind]:
        if self.profile is None:
            numeric = self.method in METHODS and METHODS[self.method].numeric_only
            return dict.fromkeys(self.column_names, "numeric" if numeric else "scalar")
        return {name: column_kind(self.profile.column(name)) for name in self.column_names}

    def fields(self) -> tuple[str, ...]:
        names: list[str] = []
        for name, method, _ in self._plan():
            names += [f"{name}.{method.field}", f"{name}.p_value", f"{name}.p_adjusted",
                      f"{name}.drifted"]
        return (*names, "n_drifted", "share_drifted")

    def new_state(self) -> BinCountsState:
        return BinCountsState(self.bound_profile(), self.column_names)

    def state_from_bytes(self, data: bytes) -> BinCountsState:
        return self.new_state().load(data)

    def value(self, state: BinCountsState) -> dict[str, float]:
        return self.window_values({"": state})[""]

    def window_values(self, states: Mapping[str, BinCountsState]
                      ) -> dict[str, dict[str, float]]:
        """Every segment's values, the columns of all the segments corrected together."""
        profile = self.bound_profile()
        plan = self._plan()
        tests = {}
        for segment, state in states.items():
            for name, method, min_effect in plan:
                tests[(segment, name)] = test_column(method, profile.column(name),
                                                     state.column(name), self.base, min_effect)
        verdicts = decide(tests, self.alpha, self.correction)
        values: dict[str, dict[str, float]] = {}
        for segment in states:
            row: dict[str, float] = {}
            drifted = scored = 0
            for name, method, _ in plan:
                test, verdict = tests[(segment, name)], verdicts[(segment, name)]
                row[f"{name}.{method.field}"] = test.statistic
                row[f"{name}.p_value"] = test.p_value
                row[f"{name}.p_adjusted"] = verdict.p_adjusted
                row[f"{name}.drifted"] = verdict.drifted
                scored += not math.isnan(verdict.drifted)
                drifted += verdict.drifted == 1.0
            row["n_drifted"] = float(drifted)
            row["share_drifted"] = drifted / scored if scored else float("nan")
            values[segment] = row
        return values

    def explain(self, field: str, values: Mapping[str, float], count: int | None
                ) -> str | None:
        """The drifted columns (for n_drifted / share_drifted) or the column (for its own
        fields): statistic, effect floor, count and adjusted p-value."""
        plan = {name: (method, min_effect) for name, method, min_effect in self._plan()}
        column = field.rsplit(".", 1)[0] if "." in field else None
        if column in plan:
            names = [column]
        elif field in ("n_drifted", "share_drifted"):
            names = [name for name in plan if values.get(f"{name}.drifted") == 1.0]
            if not names:
                return None
        else:
            return None
        reasons = [why_drifted(name, plan[name][0].field, values, count, self.alpha,
                               self.correction, plan[name][1], shape_floor(plan[name][0]))
                   for name in names[:3]]
        more = f"; and {len(names) - 3} more" if len(names) > 3 else ""
        return "; ".join(reasons) + more

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Self:
        params = {**params, "column_names": tuple(params["column_names"])}
        if params.get("column_methods") is not None:
            params["column_methods"] = tuple(params["column_methods"])
        return cls(**params)


def drift(
    columns: Sequence[str],
    reference: str | ReferenceProfile,
    method: str = Drift.method,
    *,
    alpha: float = Drift.alpha,
    correction: str = Drift.correction,
    min_effect: float | None = Drift.min_effect,
    categorical_method: str | None = Drift.categorical_method,
    base: float = Drift.base,
    threshold: float | None = None,
) -> Drift:
    """A drift report over ``columns`` against ``reference`` (a profile's name, bound later,
    or a fitted :class:`ReferenceProfile`); the parameters and fields are :class:`Drift`'s.

    ``threshold`` is gone: a fixed threshold ignored the window's size. Use ``alpha``
    (the false-alarm rate) and ``min_effect`` (the smallest statistic worth a flag).

    >>> import pandas as pd
    >>> ref = pd.DataFrame({"x": [float(i % 50) for i in range(2000)],
    ...                     "device": ["ios", "web"] * 1000})
    >>> report = drift(["x", "device"], ReferenceProfile.fit(ref, name="training"))
    >>> report.fields()[:4]
    ('x.wasserstein', 'x.p_value', 'x.p_adjusted', 'x.drifted')
    >>> state = report.new_state()
    >>> state.update(pd.DataFrame({"x": [float(i % 50) + 10 for i in range(500)],
    ...                            "device": ["ios", "web"] * 250}))
    >>> values = report.value(state)
    >>> round(values["x.wasserstein"], 3), values["x.p_value"] < 1e-6, values["x.drifted"]
    (0.693, True, 1.0)
    >>> values["device.js"], values["device.drifted"], values["n_drifted"]
    (0.0, 0.0, 1.0)
    """
    if threshold is not None:
        raise ValueError("drift(threshold=) is gone: a fixed threshold ignores the window's "
                         "size. Pass alpha= (the false-alarm rate, default 0.01) and "
                         "min_effect= (the smallest statistic that matters, e.g. 0.1)")
    if isinstance(columns, str):
        columns = [columns]
    return Drift(
        tuple(columns),
        method=method,
        alpha=alpha,
        correction=correction,
        min_effect=min_effect,
        categorical_method=categorical_method,
        base=base,
        **split_reference(reference),
    )
