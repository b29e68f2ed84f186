"""Tails page: the quantiles of a tails metric over time, a band from P50 to P99 (or the
metric's own lowest and highest quantiles) with a line per quantile."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import streamlit as st

from dashboard.charts import quantile_of, tails_chart
from dashboard.context import (
    fmt,
    md,
    pick_metric_of_kind,
    pick_stored_range,
    query_param,
    require_data,
)
from monitor.spec import OVERALL

TAILS_KINDS = frozenset({"quantiles"})


def render() -> None:
    queries = require_data()
    st.title("Tails")
    definition = pick_metric_of_kind(queries, TAILS_KINDS, "Tails metric",
                                     "No tails metric is registered (metrics.quantiles).",
                                     key="tails_metric")
    if definition is None:
        return
    name = definition.name
    stored = pick_stored_range(queries, name, definition.version, key="tails_range")
    if stored is None:
        return
    span, segments, fields = stored.span, stored.segments, stored.fields
    quantiles = sorted((f for f in fields if not math.isnan(quantile_of(f))), key=quantile_of)
    if not quantiles:
        st.info("No quantiles in this time range; pick a longer one.")
        return
    stages = queries.values.stages_with_values(name, definition.version)
    left, middle, right = st.columns(3)
    with left:
        wanted = query_param("segment")
        segment = st.selectbox("Segment", segments, key=f"tails_segment:{name}",
                               index=segments.index(wanted) if wanted in segments else 0)
    with middle:
        default_stage = definition.stage if definition.stage in stages else stages[-1]
        stage = st.selectbox("Stage", stages, index=stages.index(default_stage),
                             key=f"tails_stage:{name}")
    with right:
        log = st.toggle("Log scale", value=False, key="tails_log")
    series = queries.values.series(name, definition.version, span, window=definition.window,
                                   fields=quantiles, segments=[segment or OVERALL],
                                   stages=[stage or default_stage])
    if series.empty:
        st.info("No values for this segment and stage in the range.")
        return
    low, high = band_edges(quantiles)
    st.markdown(f"Band: **{md(low)}** to **{md(high)}** · segment {md(segment)} · stage {stage}")
    st.altair_chart(tails_chart(series, low, high, log=log), width="stretch")
    st.table(tail_summary(series, quantiles))


def band_edges(quantiles: list[str]) -> tuple[str, str]:
    """P50 to P99 when the metric has them, else its lowest and highest quantiles.

    >>> band_edges(["p50", "p95", "p99", "p99.9"]), band_edges(["p90", "p99.9"])
    (('p50', 'p99'), ('p90', 'p99.9'))
    """
    low = "p50" if "p50" in quantiles else quantiles[0]
    high = "p99" if "p99" in quantiles else quantiles[-1]
    return low, high


def tail_summary(series: pd.DataFrame, quantiles: list[str]) -> pd.DataFrame:
    """Per quantile: the latest value, the median and the worst over the range."""
    rows = []
    for field in quantiles:
        values = series[series["field"] == field].sort_values("window_start")
        if values.empty:
            continue
        worst = values.iloc[int(np.nanargmax(values["high"].to_numpy()))]
        rows.append({"quantile": field, "latest": fmt(float(values["value"].iloc[-1])),
                     "median": fmt(float(values["value"].median())),
                     "max": fmt(float(worst["high"])),
                     "max at (UTC)": f"{worst['window_start']:%Y-%m-%d %H:%M}"})
    return pd.DataFrame(rows)
