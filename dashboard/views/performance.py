"""Performance page: an estimate of performance (``metrics.estimated_performance``) per
window with its band of 3 sampling errors, and the value realized from the labels drawn on
the same chart as they arrive, with each window's label coverage — a chart per segment.

Which metric realizes an estimate follows :mod:`monitor.performance_pairs`: a label-joined
``metrics.auc`` on the same stream, label, score and window realizes ``estimated_roc_auc``
by itself; a label-joined accuracy, precision or recall is drawn when the reader declares
it (its prediction column is then taken to be the score at or above the threshold).
``?metric=NAME`` picks the estimate, ``&segment=`` a segment to show.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.context import md, pick_metric_of_kind, pick_stored_range, query_param, require_data
from dashboard.performance_chart import BAND_SD, estimate_chart
from dashboard.views.metric import rules_of, thresholds
from metrics.estimation.expected import METRICS
from monitor.performance_pairs import (
    ESTIMATE_KIND,
    REALIZED_FIELDS,
    PerformancePair,
    estimate_of,
    sampling_error_field,
)
from monitor.spec import OVERALL
from monitor.storage.dashboard.queries import DashboardQueries

MAX_SEGMENTS = 6
ESTIMATED_FIELDS = [f"estimated_{m}" for m in METRICS]  # not their sampling errors


def render() -> None:
    queries = require_data()
    st.title("Estimated and realized performance")
    definition = pick_metric_of_kind(
        queries, frozenset({ESTIMATE_KIND}), "Estimate",
        "No estimate of performance is registered (metrics.estimated_performance).",
        key="performance_metric")
    if definition is None:
        return
    name = definition.name
    st.query_params["metric"] = name
    estimate = estimate_of(definition.spec)
    if estimate is not None:
        st.caption(f"score **{md(estimate.score)}** against label **{md(estimate.label)}**, "
                   f"positive at score ≥ {estimate.threshold:g} · window {definition.window} "
                   f"· stage {definition.stage}. The band spans ±{BAND_SD} sampling errors; a "
                   "stored sampling error is one standard deviation.")
    stored = pick_stored_range(queries, name, definition.version, key="performance_range")
    if stored is None:
        return
    fields = [f for f in ESTIMATED_FIELDS if f in stored.fields]
    if not fields:
        st.info("No estimates in this time range; pick a longer one.")
        return
    pairs = [p for p in queries.performance.pairs() if p.estimate == name]
    left, middle, right = st.columns(3)
    with left:
        field = str(st.selectbox("Estimated field", fields, key=f"performance_field:{name}",
                                 index=fields.index("estimated_roc_auc")
                                 if "estimated_roc_auc" in fields else 0))
    with middle:
        pair = _realized(queries, name, field, pairs)
    stages = queries.performance.stages(name, pair)
    with right:
        stage = str(st.selectbox("Stage", stages, key=f"performance_stage:{name}"))
    wanted = query_param("segment")
    segments = st.multiselect(f"Segments (up to {MAX_SEGMENTS})", stored.segments,
                              default=[s for s in (OVERALL, wanted) if s in stored.segments]
                              or stored.segments[:1], max_selections=MAX_SEGMENTS,
                              key=f"performance_segments:{name}")
    frame = queries.performance.side_by_side(name, field, stored.span, stage=stage,
                                             segments=segments, pair=pair)
    if frame.empty:
        st.info("Nothing to plot: pick a segment.")
        return
    if int(frame["windows"].max()) > 1:
        st.caption(f"Each point is the mean of up to {int(frame['windows'].max())} windows.")
    bounds = thresholds(rules_of(definition.spec), field)
    realized = f"{pair.realized}: {pair.realized_field}" if pair else None
    for segment in segments:
        shown = frame[frame["segment"] == segment]
        st.markdown(f"#### {md(segment)}")
        st.altair_chart(estimate_chart(shown, estimated=field, realized=realized,
                                       bounds=bounds), width="stretch")
        st.caption(_coverage_note(shown, pair))


def _realized(queries: DashboardQueries, name: str, field: str,
              pairs: list[PerformancePair]) -> PerformancePair | None:
    """The pair drawn for ``field``: the automatic one, or one the reader declares."""
    automatic = next((p for p in pairs if p.estimated_field == field), None)
    if automatic is not None:
        st.markdown(f"Realized by **{md(automatic.realized)}** (same stream, label, score "
                    "and window)")
        return automatic
    kind = next((k for k, (_, f) in REALIZED_FIELDS.items() if f == field), None)
    if kind is None:
        st.markdown(f"No labelled metric realizes {md(field)}.")
        return None
    declarable = queries.performance.declarable(name)
    candidates = {p.realized: p for p in queries.performance.pairs(
        dict.fromkeys(declarable, name)) if p.declared and p.estimated_field == field}
    choice = st.selectbox("Realized by (declared)", ["—", *candidates],
                          key=f"performance_declared:{name}:{field}",
                          help="A labelled metric whose prediction column is the score at "
                               "or above the estimate's threshold.")
    return candidates.get(str(choice))


def _coverage_note(shown: pd.DataFrame, pair: PerformancePair | None) -> str:
    if pair is None:
        return "Realized values appear once a labelled metric realizes this estimate."
    labelled = shown[shown["realized"].notna()]
    if labelled.empty:
        return "No labels have arrived for these windows yet."
    last = labelled.iloc[-1]
    waiting = int((shown["window_start"] > last["window_start"]).sum())
    return (f"Labelled up to the window of {last['window_start']:%Y-%m-%d %H:%M} UTC "
            f"(coverage {last['label_coverage']:.0%}); {waiting} later window(s) still "
            f"wait for labels. Field {sampling_error_field(pair.estimated_field)} holds 1 SD.")
