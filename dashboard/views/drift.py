"""Drift page: the drift statistics per window, and reference against current histograms
per column, from the stored reference profile and the windows' stored states (counts over
the reference bins, merged over the chosen windows)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import streamlit as st

from dashboard.charts import histogram_chart, series_chart
from dashboard.context import fmt, md, pick_metric_of_kind, pick_stored_range, require_data
from dashboard.views.metric import rules_of, thresholds
from metrics.base import aggregate_from_dict
from metrics.drift import ReferenceProfile
from metrics.drift.columns import ColumnProfile, NumericProfile
from metrics.drift.state import BinCountsState
from monitor.spec import OVERALL
from monitor.storage.dashboard_records import TimeRange
from monitor.storage.records import MetricDefinition

DRIFT_KINDS = frozenset({"psi", "jensenshannon", "hellinger", "chi2", "ks", "wasserstein",
                         "drift"})
FLAG_FIELDS = ("n_drifted", "share_drifted")


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
    latest, span, segments, fields = stored.latest, stored.span, stored.segments, stored.fields
    if not fields:
        st.info("No values in this time range; pick a longer one.")
        return
    segment = st.selectbox("Segment", segments, key=f"drift_segment:{name}") or OVERALL
    stages = queries.stages_with_values(name, definition.version)
    stage = definition.stage if definition.stage in stages else stages[-1]

    st.subheader("Drift statistics per window")
    scores = [f for f in fields if not f.endswith(".drifted") and f not in FLAG_FIELDS
              and f != "p_value" and not f.endswith(".p_value")]
    rules = rules_of(definition.spec)
    series = queries.series(name, definition.version, span, window=definition.window,
                            fields=scores + [f for f in FLAG_FIELDS if f in fields],
                            segments=[segment], stages=[stage])
    for field in [*scores, *[f for f in FLAG_FIELDS if f in fields]]:
        shown = series[series["field"] == field]
        if not shown.empty:
            st.markdown(f"#### {md(field)}")
            st.altair_chart(series_chart(shown, thresholds(rules, field), title=field),
                            width="stretch")

    st.subheader("Reference against current")
    profile = queries.profile(str(aggregate.get("reference")), aggregate.get("profile_id"))
    if profile is None:
        st.warning("The reference profile this version was computed with is not stored.")
        return
    column = st.selectbox("Column", [c for c in columns if c in profile], key="drift_column")
    scope = st.radio("Current", ["latest window", "the whole time range"], horizontal=True,
                     key="drift_scope")
    window_span = (TimeRange(latest, latest + pd.Timedelta(seconds=1))
                   if scope == "latest window" else span)
    states = queries.states(name, definition.version, stage, window_span, segment)
    if not states or column is None:
        st.info("No stored window states for this segment and range.")
        return
    counts = merged_counts(definition, profile, [s.state for s in states], column)
    bins, outside = histogram_bins(profile.column(column), counts)
    numeric = isinstance(profile.column(column), NumericProfile) and "left" in bins
    by_quantile = numeric and st.radio(
        "Bins", ["by value", "by reference quantile"], horizontal=True,
        key="drift_bins") == "by reference quantile"
    st.altair_chart(histogram_chart(bins, numeric=numeric, by_quantile=by_quantile),
                    width="stretch")
    st.caption(f"{len(states)} window(s), {int(counts.sum()):,} values · "
               + " · ".join(f"{k}: reference {fmt(r)}, current {fmt(c)}"
                            for k, (r, c) in outside.items()))


def merged_counts(definition: MetricDefinition, profile: ReferenceProfile,
                  states: Sequence[bytes], column: str) -> np.ndarray:
    """The column's counts over the reference bins, merged over the stored states."""
    aggregate = aggregate_from_dict(dict(definition.spec["aggregate"]))  # type: ignore[call-overload]
    aggregate = aggregate.bind_reference(profile)
    merged = aggregate.new_state()
    if not isinstance(merged, BinCountsState):
        raise TypeError(f"{definition.name} is not a drift metric")
    for data in states:
        state = aggregate.state_from_bytes(data)
        if isinstance(state, BinCountsState):
            merged.merge(state)
    return np.asarray(merged.column(column).counts, dtype=np.int64)


def histogram_bins(reference: ColumnProfile, current: np.ndarray
                   ) -> tuple[pd.DataFrame, dict[str, tuple[float, float]]]:
    """Shares per bin of the reference and the current counts, long (``which``), and
    the shares outside the reference bins (below, above, unseen categories).

    >>> col = NumericProfile.fit(np.array([1.0, 2.0, 3.0, 4.0]), bins=2)
    >>> bins, outside = histogram_bins(col, np.array([1, 0, 2, 1]))
    >>> bins[bins["which"] == "current"]["share"].tolist(), outside["above range"]
    ([0.0, 0.5], (0.0, 0.25))
    """
    ref = reference.reference_counts().astype(float)
    cur = current.astype(float)
    ref_share = ref / ref.sum() if ref.sum() else ref
    cur_share = cur / cur.sum() if cur.sum() else cur
    if isinstance(reference, NumericProfile):
        edges = np.asarray(reference.edges, dtype=float)
        if len(edges) >= 2 and np.all(np.diff(edges) > 0):
            inner = pd.DataFrame({"bin": np.arange(1, len(edges)), "left": edges[:-1],
                                  "right": edges[1:]})
            bins = pd.concat([inner.assign(which="reference", share=ref_share[1:-1]),
                              inner.assign(which="current", share=cur_share[1:-1])],
                             ignore_index=True)
        else:  # a constant reference column: one point bin
            labels = [f"= {edges[0]:.4g}"]
            bins = pd.DataFrame({"category": labels * 2, "which": ["reference", "current"],
                                 "share": [ref_share[1], cur_share[1]]})
        outside = {"below range": (float(ref_share[0]), float(cur_share[0])),
                   "above range": (float(ref_share[-1]), float(cur_share[-1]))}
        return bins, outside
    categories = [str(c) for c in reference.categories]
    bins = pd.concat([
        pd.DataFrame({"category": categories, "which": "reference", "share": ref_share[:-1]}),
        pd.DataFrame({"category": categories, "which": "current", "share": cur_share[:-1]})],
        ignore_index=True)
    return bins, {"unseen categories": (float(ref_share[-1]), float(cur_share[-1]))}

