"""What the drift page shows per window: the decision rule a drift aggregate stored with its
definition, in words, and its stored values arranged per column.

A drift flag means two things at once (:mod:`metrics.drift.decision`): the statistic is
beyond what sampling noise gives at the window's count (its calibrated p-value, adjusted
over the columns and segments of the window, below ``alpha``), and the effect is at least
the method's ``min_effect``. The page draws both halves, so the reader sees which one
held a window back. No Streamlit and no database here.

>>> aggregate = {"kind": "drift", "column_names": ["rank", "device"], "alpha": 0.01,
...              "correction": "bh", "min_effect": None}
>>> fields = ["rank.ks", "rank.p_value", "device.chi2", "device.p_value", "n_drifted"]
>>> decision = drift_decision(aggregate, fields)
>>> [(r.column, r.statistic, r.min_effect, r.effect) for r in decision.rules]
[('rank', 'rank.ks', 0.05, 'ks'), ('device', 'device.chi2', 0.05, 'total variation')]
>>> import textwrap
>>> print(textwrap.fill(decision.caption(), 88))
Flagged when beyond sampling noise at the window's count (BH-adjusted p < 0.01 over
columns and segments) and at least 0.05 (ks of rank; total variation of device).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from metrics.drift.decision import DEFAULT_ALPHA
from metrics.drift.methods import METHODS
from monitor.storage.dashboard.records import WindowValues

DECISION_FIELDS = ("p_value", "p_adjusted", "drifted")
REPORT_FIELDS = ("n_drifted", "share_drifted")
ADJUSTED = {"bh": "BH-adjusted p", "bonferroni": "Bonferroni-adjusted p", "none": "p"}
# How a window's tests came out, the order they are drawn and listed in.
VERDICTS = ("drifted", "beyond noise, below the effect floor", "within noise", "no test")
WINDOW_COLUMNS = ["window_start", "statistic", "low", "high", "p_value", "p_adjusted",
                  "flagged", "windows", "count", "verdict"]


@dataclass(frozen=True)
class ColumnRule:
    """How one column of a drift aggregate is decided, and the names of its fields."""

    column: str
    prefix: str  # "column." in a report; "" for a single-column aggregate
    method: str  # the statistic, as metrics.drift.methods names it
    min_effect: float
    effect: str  # what must reach min_effect: the statistic, or what the method says

    @property
    def statistic(self) -> str:
        return self.prefix + self.method

    def field(self, name: str) -> str:
        return self.prefix + name

    @property
    def floor_on_statistic(self) -> bool:
        """Whether ``min_effect`` is a bound on the statistic drawn (not on chi-square's
        total variation, which the statistic does not show)."""
        return self.effect == self.method


@dataclass(frozen=True)
class DriftDecision:
    """The decision parameters of a drift aggregate, per column."""

    alpha: float
    correction: str
    report: bool  # many columns, corrected together with the segments
    rules: tuple[ColumnRule, ...]
    threshold: float | None = None  # a definition from before calibrated decisions

    def rule(self, column: str) -> ColumnRule:
        return next(r for r in self.rules if r.column == column)

    def caption(self) -> str:
        """What a flag means, in words, with the numbers stored in the definition."""
        if self.threshold is not None:
            return (f"Computed before decisions were calibrated: flagged when the statistic "
                    f"is at least {self.threshold:g}, whatever the window's count.")
        scope = "over columns and segments" if self.report else "over segments"
        test = (f"p < {self.alpha:g}, not corrected for the many tests"
                if self.correction == "none"
                else f"{ADJUSTED.get(self.correction, self.correction)} < {self.alpha:g} "
                     f"{scope}")
        return (f"Flagged when beyond sampling noise at the window's count ({test}) and "
                f"{self._floors()}.")

    def _floors(self) -> str:
        floors: dict[float, dict[str, list[str]]] = {}
        for rule in self.rules:
            floors.setdefault(rule.min_effect, {}).setdefault(rule.effect, []).append(
                rule.column)
        if not self.report and len(self.rules) == 1:
            rule = self.rules[0]
            what = "" if rule.floor_on_statistic else f"its {rule.effect} "
            return f"{what}at least {rule.min_effect:g}"
        parts = []
        for floor, effects in floors.items():
            named = "; ".join(f"{effect} of {', '.join(columns)}"
                              for effect, columns in effects.items())
            parts.append(f"at least {floor:g} ({named})")
        return ", ".join(parts)


def drift_decision(aggregate: Mapping[str, Any], fields: Sequence[str]) -> DriftDecision:
    """The decision of a drift aggregate from its stored params (``definition.spec
    ["aggregate"]``); each column's statistic is read from the stored ``fields`` (the
    method ``auto`` picks per column), else from the params."""
    kind = str(aggregate.get("kind"))
    report = kind == "drift"
    columns = ([str(c) for c in aggregate.get("column_names") or ()] if report
               else [str(aggregate.get("column"))])
    chosen = aggregate.get("column_methods") or [aggregate.get("method")] * len(columns)
    floor = aggregate.get("min_effect")
    rules = []
    for column, fallback in zip(columns, chosen, strict=False):
        prefix = f"{column}." if report else ""
        method = _stored_method(prefix, fields) or _method_name(fallback if report else kind)
        if method is None:
            continue  # nothing stored for it yet, and "auto" needs the profile
        found = METHODS[method]
        min_effect = found.min_effect if floor is None else float(floor)
        rules.append(ColumnRule(column, prefix, found.field, min_effect,
                                found.effect_name or found.field))
    threshold = aggregate.get("threshold")
    return DriftDecision(
        float(aggregate.get("alpha", DEFAULT_ALPHA)), str(aggregate.get("correction", "bh")),
        report, tuple(rules),
        float(threshold) if threshold is not None and "alpha" not in aggregate else None)


def _stored_method(prefix: str, fields: Sequence[str]) -> str | None:
    for field in fields:
        if field.startswith(prefix) and field[len(prefix):] in METHODS:
            return field[len(prefix):]
    return None


def _method_name(name: object) -> str | None:
    if name == "jensenshannon":
        return "js"
    return name if isinstance(name, str) and name in METHODS else None


def rule_fields(rule: ColumnRule) -> list[str]:
    return [rule.statistic, *(rule.field(name) for name in DECISION_FIELDS)]


def column_windows(series: pd.DataFrame, counts: pd.DataFrame, rule: ColumnRule,
                   alpha: float) -> pd.DataFrame:
    """One row per plotted point of ``rule``'s column: the statistic (mean, min and max
    of the point's windows), the smallest p-values, the share of windows flagged, the
    count (mean per window) and the verdict (:data:`VERDICTS`).

    ``series`` and ``counts`` are frames of one segment and stage, as
    :class:`~monitor.storage.dashboard.values.ValueQueries` gives them (``series`` and
    ``window_counts``).

    >>> t = pd.Timestamp("2026-03-02", tz="UTC")
    >>> def point(field, value): return {"field": field, "window_start": t, "value": value,
    ...                                  "low": value, "high": value, "windows": 1}
    >>> series = pd.DataFrame([point("psi", 0.3), point("p_value", 1e-4),
    ...                        point("p_adjusted", 2e-4), point("drifted", 1.0)])
    >>> counts = pd.DataFrame([point("count", 180.0)])
    >>> rule = ColumnRule("score", "", "psi", 0.1, "psi")
    >>> column_windows(series, counts, rule, 0.01)[["statistic", "count", "verdict"]]
       statistic  count  verdict
    0        0.3  180.0  drifted
    """
    fields = {rule.statistic: "statistic", rule.field("p_value"): "p_value",
              rule.field("p_adjusted"): "p_adjusted", rule.field("drifted"): "flagged"}
    mine = series[series["field"].isin(list(fields))]
    if mine.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in WINDOW_COLUMNS})
    # A point of several windows: its strongest evidence (the smallest p-values).
    value = mine["value"].where(~mine["field"].isin([rule.field("p_value"),
                                                     rule.field("p_adjusted")]), mine["low"])
    wide = (mine.assign(value=value).pivot_table(index="window_start", columns="field",
                                                 values="value", aggfunc="first",
                                                 dropna=False)
            .rename(columns=fields).reindex(columns=list(fields.values())))
    statistic = mine[mine["field"] == rule.statistic].set_index("window_start")
    wide["low"] = statistic["low"]
    wide["high"] = statistic["high"]
    wide["windows"] = statistic["windows"]
    wide["count"] = counts.set_index("window_start")["value"] if len(counts) else np.nan
    wide = wide.reset_index()
    wide.columns.name = None
    wide["verdict"] = [verdict(f, p, alpha) for f, p in zip(wide["flagged"],
                                                             wide["p_adjusted"], strict=True)]
    return wide[WINDOW_COLUMNS]


def verdict(flagged: float, p_adjusted: float, alpha: float) -> str:
    """How a window (or a point of windows: any flagged one counts) came out.

    >>> verdict(1.0, 1e-5, 0.01), verdict(0.0, 1e-5, 0.01), verdict(0.0, 0.2, 0.01)
    ('drifted', 'beyond noise, below the effect floor', 'within noise')
    """
    if math.isnan(flagged) or math.isnan(p_adjusted):
        return "no test"
    if flagged > 0:
        return "drifted"
    return VERDICTS[1] if p_adjusted < alpha else "within noise"


def latest_table(decision: DriftDecision, latest: WindowValues,
                 column_counts: Mapping[str, int]) -> pd.DataFrame:
    """The latest window's columns, drifted first, then by adjusted p-value.

    ``column_counts`` holds each column's values in the window (nulls are not tested, so
    a column may have fewer than the window's count), when the state was read.
    """
    rows = []
    for rule in decision.rules:
        values = latest.values
        flagged = values.get(rule.field("drifted"), math.nan)
        p_adjusted = values.get(rule.field("p_adjusted"), math.nan)
        rows.append({
            "column": rule.column,
            "statistic": rule.method,
            "value": values.get(rule.statistic, math.nan),
            "min effect": rule.min_effect,
            "count": latest.count,
            "values tested": column_counts.get(rule.column),
            "p-value": values.get(rule.field("p_value"), math.nan),
            "adjusted p": p_adjusted,
            "drifted": None if math.isnan(flagged) else flagged == 1.0,
            "verdict": verdict(flagged, p_adjusted, decision.alpha),
        })
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    order = table["verdict"].map(VERDICTS.index)
    return (table.assign(_order=order).sort_values(["_order", "adjusted p"],
                                                   kind="stable")
            .drop(columns="_order").reset_index(drop=True))
