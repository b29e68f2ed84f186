"""Assertions page: every assertion's latest window, then one assertion's violation rate
per window (thresholds and alerts marked) and the violating events its newest windows
sampled, with their kept fields, to read or download as the export's JSON lines.
``?metric=NAME`` picks the assertion; ``&segment=`` and ``&stage=`` preselect those."""

from __future__ import annotations

import shlex
from datetime import timedelta

import pandas as pd
import streamlit as st

from dashboard import assertion_table
from dashboard.assertion_table import Shown, newest_within
from dashboard.charts import series_chart
from dashboard.context import (
    fmt,
    md,
    pick_one,
    pick_stored_range,
    query_param,
    require_data,
    settings,
)
from dashboard.views.metric import markers, rules_of, thresholds
from metrics.base import Aggregate
from monitor.assertion_examples import violation_fields
from monitor.assertion_export import iso_utc, stored_assertion
from monitor.spec import OVERALL
from monitor.storage.dashboard.queries import DashboardQueries
from monitor.storage.dashboard.records import TimeRange
from monitor.storage.records import MetricDefinition

MAX_SEGMENTS = 10
WINDOW_CHOICES = (1, 6, 24, 168)  # how many of the newest windows to list examples of


def render() -> None:
    queries = require_data()
    scrub = settings().scrub
    st.title("Assertions")
    found = assertions(queries.catalog.definitions())
    if not found:
        st.info("No assertion is registered (metrics.assertion(..., id=...)).")
        return
    st.subheader("Latest window of each assertion")
    st.caption("The overall segment of each assertion's newest window in its own stage.")
    st.dataframe(latest_table(queries, found), hide_index=True)

    name = pick_one("Assertion", [d.name for d, _ in found], param="metric",
                    key="assertion_metric")
    definition, aggregate = next((d, a) for d, a in found if d.name == name)
    st.header(name)
    st.caption(f"stage **{definition.stage}** · owner {md(definition.owner or '—')} · "
               f"window {definition.window} · version {definition.version}")
    if definition.description:
        st.markdown(md(scrub(definition.description)))
    stored = pick_stored_range(queries, name, definition.version, key="assertion_range")
    if stored is None:
        return
    stages = queries.values.stages_with_values(name, definition.version)
    left, right = st.columns([1, 2])
    with left:
        wanted_stage = query_param("stage")
        default = wanted_stage if wanted_stage in stages else (
            definition.stage if definition.stage in stages else stages[-1])
        stage = str(st.selectbox("Stage", stages, index=stages.index(default),
                                 key=f"assertion_stage:{name}"))
    with right:
        wanted = query_param("segment")
        segments = [s for s in (OVERALL, wanted) if s in stored.segments] or stored.segments[:1]
        chosen = st.multiselect(f"Segments (up to {MAX_SEGMENTS})", stored.segments,
                                default=segments, max_selections=MAX_SEGMENTS,
                                key=f"assertion_segments:{name}")
    _rate_chart(queries, definition, violation_fields(aggregate)[1], stored.span, stage,
                chosen)
    _examples(queries, definition, aggregate, stored.span, stage, chosen)


def assertions(definitions: list[MetricDefinition]
               ) -> list[tuple[MetricDefinition, Aggregate]]:
    """The registered assertions (with labels or without) and their stored aggregates."""
    found = []
    for definition in definitions:
        try:
            found.append((definition, stored_assertion(definition)))
        except (KeyError, TypeError, ValueError):  # no assertion, or a kind unknown here
            continue
    return found


def latest_table(queries: DashboardQueries,
                 found: list[tuple[MetricDefinition, Aggregate]]) -> pd.DataFrame:
    """The newest overall window of each assertion: its violations (violating keys, for a
    consistency check) and their rate."""
    rows = []
    for d, aggregate in found:
        count, rate = violation_fields(aggregate)
        latest = queries.values.latest_window(d.name, d.version)
        stages = queries.values.stages_with_values(d.name, d.version)
        stage = d.stage if d.stage in stages else (stages[-1] if stages else d.stage)
        window = None if latest is None else queries.values.latest_values(
            d.name, d.version, stage, OVERALL,
            TimeRange(latest - timedelta(days=90), latest + timedelta(seconds=1)))
        values = {} if window is None else window.values
        rows.append({
            "assertion": d.name, "stage": stage,
            "latest window (UTC)": "—" if window is None
            else f"{window.window_start:%Y-%m-%d %H:%M}",
            "events": None if window is None else window.count,
            "violations": fmt(values.get(count, float("nan"))),
            "violation rate": fmt(values.get(rate, float("nan"))),
            "max severity": fmt(values.get("max_severity", float("nan")))})
    return pd.DataFrame(rows)


def _rate_chart(queries: DashboardQueries, definition: MetricDefinition, rate: str,
                span: TimeRange, stage: str, segments: list[str]) -> None:
    name = definition.name
    series = queries.values.series(name, definition.version, span, window=definition.window,
                                   fields=[rate], segments=segments, stages=[stage])
    st.subheader("Violation rate per window")
    if series.empty:
        st.info("No violation rate to plot: pick a segment, or a longer range.")
        return
    if int(series["windows"].max()) > 1:
        st.caption(f"Each point is the mean of up to {int(series['windows'].max())} windows; "
                   "the band spans their min and max.")
    rules = rules_of(definition.spec)
    events = queries.alerts.events(metric=name, span=span, transitions=("firing", "resolved"))
    events = events[events["stage"] == stage] if not events.empty else events
    st.altair_chart(series_chart(series, thresholds(rules, rate),
                                 markers(events, rules, rate, segments), title=rate),
                    width="stretch")


def _examples(queries: DashboardQueries, definition: MetricDefinition, aggregate: Aggregate,
              span: TimeRange, stage: str, segments: list[str]) -> None:
    name, version = definition.name, definition.version
    st.subheader("Latest sampled violations")
    windows = int(st.selectbox("Of the newest windows", WINDOW_CHOICES, index=2,
                               key=f"assertion_windows:{name}"))
    limit = assertion_table.MAX_EXAMPLES
    states, cut = newest_within(aggregate, queries.assertions.latest_states(
        name, version, stage, span, segments, windows), limit)
    shown = Shown(name, version, stage, aggregate, states)
    scrub = settings().scrub
    table = shown.table(scrub)
    if table.empty:
        st.success("No violation was sampled in these windows.",
                   icon=":material/check_circle:")
        return
    n_windows = len({s.window_start for s in states})
    st.caption(f"{len(table)} sampled violations of {n_windows} windows, newest first; each "
               "window keeps at most k of its violating events (the same ones in every "
               "stage)." + (f" Only the newest {n_windows} windows are listed: older ones "
                            f"would pass {limit:,} rows." if cut else ""))
    st.dataframe(table, hide_index=True)
    st.download_button(f"Download these {len(table)} examples (JSON lines)",
                       shown.jsonl(scrub), file_name=f"{name}-{stage}.jsonl",
                       mime="application/x-ndjson", key=f"assertion_download:{name}")
    first = min(s.window_start for s in states)
    last = max(s.window_end for s in states)
    command = ["monitor", "assertions", "export", name, "--stage", stage, "--version",
               str(version), "--since", iso_utc(first), "--until", iso_utc(last)]
    for segment in segments:
        command += ["--segment", segment]
    st.caption("The same lines from the command line:")
    st.code(scrub(shlex.join([*command, "--out", f"{name}.jsonl"])), language="bash",
            wrap_lines=True)
