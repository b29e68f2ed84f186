"""Drift page: per window of the chosen metric and segment, each column's statistic, its
p-value at the window's count and whether the window was flagged, with the decision rule
in words; the latest window's columns as a table; and reference against current
histograms per column, from the stored reference profile and the windows' stored states
(counts over the reference bins, merged over the chosen windows)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from dashboard.charts import (
    P_FLOOR,
    count_chart,
    drift_statistic_chart,
    histogram_chart,
    p_value_chart,
    series_chart,
)
from dashboard.context import (
    fmt,
    md,
    pick_metric_of_kind,
    pick_one,
    pick_stored_range,
    require_data,
)
from dashboard.drift_windows import (
    REPORT_FIELDS,
    VERDICTS,
    DriftDecision,
    column_windows,
    drift_decision,
    latest_table,
    rule_fields,
)
from dashboard.views.metric import rules_of, thresholds
from metrics.base import Aggregate, aggregate_from_dict
from metrics.drift import ReferenceProfile
from metrics.drift.columns import ColumnProfile, NumericProfile
from metrics.drift.state import BinCountsState
from monitor.partials import merge_stored
from monitor.spec import OVERALL
from monitor.storage.dashboard.queries import DashboardQueries
from monitor.storage.dashboard.records import TimeRange, WindowValues
from monitor.storage.records import MetricDefinition, StoredState

DRIFT_KINDS = frozenset({"psi", "jensenshannon", "hellinger", "chi2", "chi2_gof", "ks",
                         "wasserstein", "drift"})
ONE_SECOND = pd.Timedelta(seconds=1)
ALL = "all"  # the key the states of a chosen range merge under


def render() -> None:
    queries = require_data()
    st.title("Drift")
    definition = pick_metric_of_kind(
        queries, DRIFT_KINDS, "Drift metric",
        "No drift metric is registered (metrics.psi, metrics.drift_report, ...).",
        key="drift_metric")
    if definition is None:
        return
    name = definition.name
    aggregate = dict(definition.spec["aggregate"])  # type: ignore[call-overload]
    columns = list(aggregate.get("column_names") or [aggregate.get("column")])
    st.caption(f"{aggregate['kind']} of {', '.join(map(str, columns))} against reference "
               f"profile **{aggregate.get('reference')}** ({aggregate.get('profile_id')})")
    stored = pick_stored_range(queries, name, definition.version, key="drift_range")
    if stored is None:
        return
    span, segments, fields = stored.span, stored.segments, stored.fields
    if not fields:
        st.info("No values in this time range; pick a longer one.")
        return
    segment = pick_one("Segment", segments, param="segment", key=f"drift_segment:{name}") \
        or OVERALL
    stages = queries.values.stages_with_values(name, definition.version)
    stage = definition.stage if definition.stage in stages else stages[-1]
    decision = drift_decision(aggregate, fields)
    st.info(md(decision.caption()), icon=":material/rule:")
    reader = state_reader(definition, queries.drift.profile(str(aggregate.get("reference")),
                                                            aggregate.get("profile_id")))
    latest = queries.values.latest_values(name, definition.version, stage, segment, span)
    if latest is None:
        st.info(f"Segment {md(segment)} has no window in this range; pick a longer one.")
        return
    latest_states = queries.drift.states(name, definition.version, stage,
                                         TimeRange(latest.window_start,
                                                   latest.window_start + ONE_SECOND), segment)
    table = _latest_window(decision, latest, reader, latest_states)
    if table.empty:
        st.info("No column of this version has a statistic stored in this range.")
        return
    shown = list(table["column"])
    column = str(st.selectbox("Column", shown, key="drift_column")) if len(shown) > 1 \
        else shown[0]
    _per_window(queries, definition, decision, span, segment, stage, column)
    if decision.report:
        _report_fields(queries, definition, fields, span, segment, stage)
    _reference_against_current(queries, definition, reader, span, latest, segment, stage,
                               column)


def _latest_window(decision: DriftDecision, latest: WindowValues, reader: StateReader,
                   states: Sequence[StoredState]) -> pd.DataFrame:
    st.subheader("Latest window")
    tested = {}
    if reader.aggregate is not None and states:
        merged = reader.merged(states)
        tested = {r.column: merged.column(r.column).n for r in decision.rules}
    table = latest_table(decision, latest, tested)
    flagged = int((table["verdict"] == "drifted").sum()) if not table.empty else 0
    st.markdown(f"Window **{latest.window_start:%Y-%m-%d %H:%M}** to "
                f"{latest.window_end:%H:%M} UTC · **{latest.count:,} events** · "
                f"**{flagged} of {len(table)}** column(s) drifted")
    if not table.empty:
        styled = table.style.map(_verdict_style, subset=["verdict"]).format(
            {"value": "{:.4g}", "min effect": "{:g}", "count": "{:,}",
             "values tested": "{:,.0f}", "p-value": "{:.2e}", "adjusted p": "{:.2e}"},
            na_rep="—")
        st.dataframe(styled, hide_index=True, column_config={
            "count": st.column_config.Column("window count"),
            "values tested": st.column_config.Column(
                help="Non-null values of the column in the window: what was tested"),
            "drifted": st.column_config.CheckboxColumn(),
        })
    return table


def _verdict_style(verdict: object) -> str:
    return {"drifted": "color: #d62728; font-weight: 600",
            VERDICTS[1]: "color: #e8710a"}.get(str(verdict), "")


def _per_window(queries: DashboardQueries, definition: MetricDefinition,
                decision: DriftDecision, span: TimeRange, segment: str, stage: str,
                column: str) -> None:
    rule = decision.rule(column)
    st.subheader(f"{md(column)}: per window" if decision.report else "Per window")
    series = queries.values.series(definition.name, definition.version, span,
                                   window=definition.window, fields=rule_fields(rule),
                                   segments=[segment], stages=[stage])
    counts = queries.values.window_counts(definition.name, definition.version, span,
                                          window=definition.window, field=rule.statistic,
                                          segment=segment, stage=stage)
    windows = column_windows(series, counts, rule, decision.alpha)
    if windows.empty:
        st.info(f"No values of {md(column)} in this range.")
        return
    floor = rule.min_effect if rule.floor_on_statistic else None
    st.altair_chart(drift_statistic_chart(windows, title=rule.method, floor=floor),
                    width="stretch")
    st.altair_chart(p_value_chart(windows, alpha=decision.alpha), width="stretch")
    st.altair_chart(count_chart(windows), width="stretch")
    verdicts = windows["verdict"].value_counts()
    points = int(windows["windows"].max())
    drifted = (f"points (each up to {points} windows, its smallest p-values shown) had a "
               "drifted window" if points > 1 else "windows drifted")
    effect = "" if rule.floor_on_statistic else \
        f" (the effect is the {rule.effect}, not the {rule.method} drawn)"
    st.caption(f"{verdicts.get('drifted', 0)} of {len(windows)} {drifted}; "
               f"{verdicts.get(VERDICTS[1], 0)} beyond sampling noise but below the effect "
               f"floor of {rule.min_effect:g}{effect}. p-values below {P_FLOOR:g} are drawn "
               f"at {P_FLOOR:g}.")


def _report_fields(queries: DashboardQueries, definition: MetricDefinition,
                   fields: Sequence[str], span: TimeRange, segment: str, stage: str) -> None:
    found = [f for f in REPORT_FIELDS if f in fields]
    if not found:
        return
    st.subheader("Columns drifted per window")
    rules = rules_of(definition.spec)
    series = queries.values.series(definition.name, definition.version, span,
                                   window=definition.window, fields=found, segments=[segment],
                                   stages=[stage])
    field = found[0]
    shown = series[series["field"] == field]
    if not shown.empty:
        st.altair_chart(series_chart(shown, thresholds(rules, field), title=field),
                        width="stretch")


def _reference_against_current(queries: DashboardQueries, definition: MetricDefinition,
                               reader: StateReader, span: TimeRange, latest: WindowValues,
                               segment: str, stage: str, column: str) -> None:
    st.subheader("Reference against current")
    profile = reader.profile
    if profile is None or reader.aggregate is None:
        st.warning(md(reader.problem))
        return
    if column not in profile:
        st.info(f"Column {md(column)} is not in the stored reference profile.")
        return
    scope = st.radio("Current", ["latest window", "the whole time range"], horizontal=True,
                     key="drift_scope")
    window_span = (TimeRange(latest.window_start, latest.window_start + ONE_SECOND)
                   if scope == "latest window" else span)
    states = queries.drift.states(definition.name, definition.version, stage, window_span, segment)
    if not states:
        st.info("No stored window states for this segment and range.")
        return
    merged = reader.merged(states)
    counts = np.asarray(merged.column(column).counts, dtype=np.int64)
    bins, outside = histogram_bins(profile.column(column), counts)
    numeric = isinstance(profile.column(column), NumericProfile)
    by_quantile = numeric and st.radio(
        "Bins", ["by value", "by reference quantile"], horizontal=True,
        key="drift_bins") == "by reference quantile"
    st.altair_chart(histogram_chart(bins, numeric=numeric, by_quantile=by_quantile),
                    width="stretch")
    st.caption(f"{len(states)} window(s), {int(counts.sum()):,} values of {md(column)} · "
               + " · ".join(f"{k}: reference {fmt(r)}, current {fmt(c)}"
                            for k, (r, c) in outside.items()))


@dataclass(frozen=True)
class StateReader:
    """Reads a version's stored states: its profile and its aggregate bound to it, or
    why it cannot (``problem``)."""

    profile: ReferenceProfile | None
    aggregate: Aggregate | None
    problem: str = ""

    def merged(self, states: Sequence[StoredState]) -> BinCountsState:
        """The stored states merged: counts over the reference bins of every column."""
        assert self.aggregate is not None
        merged = merge_stored(self.aggregate, ((ALL, s.state, s.rows) for s in states))
        state = merged[ALL].state if merged else self.aggregate.new_state()
        if not isinstance(state, BinCountsState):
            raise TypeError(f"{self.aggregate.kind} is not a drift aggregate")
        return state


def state_reader(definition: MetricDefinition, profile: ReferenceProfile | None
                 ) -> StateReader:
    if profile is None:
        return StateReader(None, None, "The reference profile this version was computed "
                                       "with is not stored.")
    try:
        aggregate = aggregate_from_dict(dict(definition.spec["aggregate"]))  # type: ignore[call-overload]
        return StateReader(profile, aggregate.bind_reference(profile))
    except (TypeError, ValueError) as err:  # stored by a version of the code before this
        return StateReader(profile, None, (
            f"Version {definition.version} of {definition.name} was defined with parameters "
            f"this code no longer reads ({err}), so its stored states cannot be drawn; its "
            f"stored values are shown above. Register the metric again for a new version."))


def bin_labels(left: np.ndarray, right: np.ndarray, point: np.ndarray) -> list[str]:
    """A point bin is labelled with its value (as short as keeps them apart), another
    with its range; one that starts just after a point value is open there.

    >>> bin_labels(np.array([1.0, 1.5]), np.array([1.5, 2.0]), np.array([False, False]))
    ['[1, 1.5)', '[1.5, 2)']
    >>> bin_labels(np.array([0.1, 0.1000001]), np.array([0.1, 0.1000001]),
    ...            np.array([True, True]))
    ['0.1', '0.1000001']
    """
    values = left[point]
    short = [f"{v:.6g}" for v in values]
    if len(set(short)) < len(short):
        short = [repr(float(v)) for v in values]
    points = iter(short)
    labels = []
    for i, (a, b, is_point) in enumerate(zip(left, right, point, strict=True)):
        if is_point:
            labels.append(next(points))
        elif i and point[i - 1] and right[i - 1] == a:
            labels.append(f"({left[i - 1]:.4g}, {b:.4g})")
        else:
            labels.append(f"[{a:.4g}, {b:.4g})")
    return labels


def histogram_bins(reference: ColumnProfile, current: np.ndarray
                   ) -> tuple[pd.DataFrame, dict[str, tuple[float, float]]]:
    """Shares per bin of the reference and the current counts, long (``which``), and
    the shares outside the reference bins (below, above, unseen categories).

    >>> col = NumericProfile.fit(np.array([1.0, 2.0, 3.0, 4.0]), bins=2)
    >>> bins, outside = histogram_bins(col, np.array([1, 0, 2, 1]))
    >>> bins[bins["which"] == "current"]["share"].tolist(), outside["above range"]
    ([0.0, 0.5], (0.0, 0.25))

    A discrete column's values get bins of their own, labelled with the value; a new
    value between two of them falls in the empty bin between their bins:

    >>> col = NumericProfile.fit(np.array([0.0, 0.0, 1.0, 1.0, 1.0]))
    >>> counts = col.count(np.array([0.0, 0.5, 1.0, 1.0])).counts
    >>> bins, _ = histogram_bins(col, counts)
    >>> print(bins[bins["which"] == "current"][["label", "point", "share"]].to_string())
        label  point  share
    3       0   True   0.25
    4  (0, 1)  False   0.25
    5       1   True   0.50
    """
    ref = reference.reference_counts().astype(float)
    cur = current.astype(float)
    ref_share = ref / ref.sum() if ref.sum() else ref
    cur_share = cur / cur.sum() if cur.sum() else cur
    if isinstance(reference, NumericProfile):
        edges = np.asarray(reference.edges, dtype=float)
        left, right = edges[:-1], edges[1:]  # a constant column: one closed bin [v, v]
        point = right <= np.nextafter(left, np.inf)
        inner = pd.DataFrame({"bin": np.arange(1, len(edges)), "left": left, "right": right,
                              "point": point, "reference": ref_share[1:-1],
                              "current": cur_share[1:-1]})
        if len(inner) >= 2 and point[-1] and not point[-2] and inner["reference"].iloc[-2] > 0:
            # A continuous column's top value closes its tail bins with a bin of its own,
            # [v, nextafter(v)]: drawn as the end of the bin before it, not as a value bar.
            inner.loc[inner.index[-2], ["right", "reference", "current"]] += (
                inner.iloc[-1][["right", "reference", "current"]].to_numpy()
                - [inner["right"].iloc[-2], 0.0, 0.0])
            inner = inner.iloc[:-1]
        # Bins neither side has a value in (between two point values, or the closed bin
        # after the top one) would only draw empty slots.
        inner = inner[(inner["reference"] > 0) | (inner["current"] > 0)]
        inner.insert(4, "label", bin_labels(inner["left"].to_numpy(),
                                            inner["right"].to_numpy(),
                                            inner["point"].to_numpy()))
        bins = inner.melt(id_vars=["bin", "left", "right", "point", "label"],
                          value_vars=["reference", "current"], var_name="which",
                          value_name="share")
        outside = {"below range": (float(ref_share[0]), float(cur_share[0])),
                   "above range": (float(ref_share[-1]), float(cur_share[-1]))}
        return bins, outside
    categories = [str(c) for c in reference.categories]
    bins = pd.concat([
        pd.DataFrame({"category": categories, "which": "reference", "share": ref_share[:-1]}),
        pd.DataFrame({"category": categories, "which": "current", "share": cur_share[:-1]})],
        ignore_index=True)
    return bins, {"unseen categories": (float(ref_share[-1]), float(cur_share[-1]))}

