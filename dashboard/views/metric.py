"""Metric page: its time series per segment, thresholds and alert markers, every stage
overlaid (parity at a glance), and its stage history. ``?metric=NAME`` picks the metric;
``&segment=`` and ``&stage=`` (as alert links carry) preselect those."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from dashboard.charts import series_chart
from dashboard.context import (
    aggregate_kind,
    fmt,
    md,
    pick_one,
    pick_stored_range,
    query_param,
    require_data,
    settings,
)
from monitor.alerts.rules import Rule, Threshold, rule_from_dict
from monitor.performance_pairs import ESTIMATE_KIND
from monitor.spec import OVERALL
from monitor.storage.dashboard.overview import headline_field
from monitor.values import STAGES

MAX_SEGMENTS = 10


def render() -> None:
    queries = require_data()
    definitions = queries.catalog.definitions()
    if not definitions:
        st.info("No metric is registered yet.")
        return
    name = pick_one("Metric", [d.name for d in definitions], param="metric", key="metric")
    st.query_params["metric"] = name
    definition = next(d for d in definitions if d.name == name)
    st.title(name)
    scrub = settings().scrub
    st.caption(f"stage **{definition.stage}** · owner {definition.owner or '—'} · window "
               f"{definition.window} · version {definition.version}")
    if definition.description:
        st.markdown(scrub(definition.description))
    if aggregate_kind(definition) == ESTIMATE_KIND:
        st.markdown(f"[Beside the realized values, with its band →](performance?"
                    f"{urlencode({'metric': name})})")
    _series(definition.name, definition.version, definition.window,
            rules_of(definition.spec), headline_field(definition))
    st.subheader("Stage history")
    history = queries.catalog.stage_history(name)
    st.table(pd.DataFrame([{"at (UTC)": f"{c.at:%Y-%m-%d %H:%M}", "version": c.version,
                            "from": c.from_stage or "—", "to": c.to_stage, "by": c.by,
                            "reason": scrub(c.reason)} for c in history]))


def _series(name: str, version: int, window: str, rules: Sequence[Rule],
            headline: str | None) -> None:
    queries = require_data()
    stored = pick_stored_range(queries, name, version, key="metric_range")
    if stored is None:
        return
    span, segments, fields = stored.span, stored.segments, stored.fields
    if not fields:
        st.info("No values in this time range; pick a longer one.")
        return
    first = headline if headline in fields else fields[0]
    chosen_fields = st.multiselect("Fields", fields, default=[first], key=f"fields:{name}")
    wanted = query_param("segment")
    default_segments = [s for s in (OVERALL, wanted) if s in segments] or segments[:1]
    chosen_segments = st.multiselect(f"Segments (up to {MAX_SEGMENTS})", segments,
                                     default=default_segments, max_selections=MAX_SEGMENTS,
                                     key=f"segments:{name}")
    series = queries.values.series(name, version, span, window=window, fields=chosen_fields,
                                   segments=chosen_segments)
    if series.empty:
        st.info("Nothing to plot: pick a field and a segment.")
        return
    if int(series["windows"].max()) > 1:
        st.caption(f"Each point is the mean of up to {int(series['windows'].max())} windows; "
                   "the band spans their min and max.")
    events = queries.alerts.events(metric=name, span=span, transitions=("firing", "resolved"))
    for field in chosen_fields:
        shown = series[series["field"] == field]
        st.markdown(f"#### {md(field)}")
        st.altair_chart(series_chart(shown, thresholds(rules, field),
                                     markers(events, rules, field, chosen_segments),
                                     title=field), width="stretch")
    parity = parity_table(series)
    if not parity.empty:
        st.subheader("Parity between stages")
        st.table(parity)
    stages = sorted(set(series["stage"]), key=STAGES.index)
    st.caption("Stages shown: " + ", ".join(stages) + " (dashes: research dotted, batch "
               "solid, streaming dashed)")
    if not events.empty:
        st.subheader("Alert transitions in this range")
        scrub = settings().scrub
        st.dataframe(events.assign(detail=events["detail"].map(scrub))[
            ["window_start", "stage", "rule", "segment", "transition", "value", "bound",
             "severity"]], hide_index=True)


def rules_of(spec: Mapping[str, object]) -> list[Rule]:
    found = []
    for data in spec.get("alerts") or ():  # type: ignore[attr-defined]
        try:
            found.append(rule_from_dict(dict(data)))
        except (TypeError, ValueError):  # a rule kind this version does not know
            continue
    return found


def thresholds(rules: Sequence[Rule], field: str) -> pd.DataFrame:
    """Fixed bounds of the threshold rules on ``field``."""
    rows = []
    for rule in rules:
        if isinstance(rule, Threshold) and rule.field == field:
            rows += [{"rule": rule.title, "bound": bound}
                     for bound in (rule.above, rule.below) if bound is not None]
    return pd.DataFrame(rows, columns=["rule", "bound"])


def markers(events: pd.DataFrame, rules: Sequence[Rule], field: str,
            segments: Sequence[str]) -> pd.DataFrame:
    """Firing and resolved transitions of the rules on ``field``, on shown segments."""
    titles = {rule.title for rule in rules if rule.field == field}
    if events.empty or not titles:
        return pd.DataFrame(columns=["window_start", "value", "transition", "rule", "segment"])
    shown = events[events["rule"].isin(titles) & events["segment"].isin(list(segments))]
    return shown[["window_start", "value", "transition", "rule", "segment"]]


def parity_table(series: pd.DataFrame) -> pd.DataFrame:
    """Per pair of stages: the points both have and how far apart their values are."""
    stages = [s for s in STAGES if s in set(series["stage"])]
    if len(stages) < 2:
        return pd.DataFrame()
    wide = series.pivot_table(index=["segment", "field", "window_start"], columns="stage",
                              values="value", aggfunc="first")
    rows = []
    for a, b in combinations(stages, 2):
        both = wide[[a, b]].dropna()
        diff = (both[a] - both[b]).abs()
        rows.append({"stages": f"{a} vs {b}", "shared points": len(both),
                     "max |difference|": fmt(float(diff.max())) if len(diff) else "—",
                     "verdict": "identical" if len(diff) and float(diff.max()) == 0.0
                     else ("no overlap" if not len(diff) else "differ")})
    return pd.DataFrame(rows)
