"""Alerts page: active alerts, their history, silences and delivery status from the
outbox. Alert messages link here with ``?metric=&segment=&stage=`` filters."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from dashboard.charts import bar_chart
from dashboard.context import fmt, md, query_param, require_data, settings

HISTORY_LIMIT = 300


def render() -> None:
    queries = require_data()
    scrub = settings().scrub
    st.title("Alerts")
    metric, segment, stage = (query_param(p) for p in ("metric", "segment", "stage"))
    if metric is not None:
        where = " · ".join(f"{k} **{md(scrub(v))}**" for k, v in
                           (("metric", metric), ("segment", segment), ("stage", stage)) if v)
        left, right = st.columns([3, 1])
        left.markdown(f"Showing {where}")
        right.page_link("screens/metric.py", label=f"open {metric}", icon=":material/show_chart:",
                        query_params={k: v for k, v in (("metric", metric),
                                                        ("segment", segment),
                                                        ("stage", stage)) if v})
        st.page_link("screens/alerts.py", label="show every metric", icon=":material/arrow_back:")

    st.subheader("Active")
    active = [a for a in queries.alerts.active(metric)
              if (segment is None or a.key.segment == segment)
              and (stage is None or a.key.stage == stage)]
    if active:
        st.table(pd.DataFrame([{
            "status": a.status, "metric": a.key.metric, "segment": a.key.segment,
            "rule": a.key.rule, "stage": a.key.stage, "severity": a.severity,
            "value": fmt(a.value), "threshold": fmt(a.bound),
            "since (UTC)": f"{a.active_since:%Y-%m-%d %H:%M}" if a.active_since else "—",
            "detail": scrub(a.detail)} for a in active]))
    else:
        st.success("Nothing is firing or pending.", icon=":material/check_circle:")

    st.subheader("History")
    events = queries.alerts.events(metric=metric, limit=HISTORY_LIMIT)
    if segment is not None:
        events = events[events["segment"] == segment]
    if stage is not None:
        events = events[events["stage"] == stage]
    if events.empty:
        st.caption("No transitions recorded.")
    else:
        st.caption(f"The latest {len(events)} transitions, newest window first.")
        st.dataframe(events.assign(detail=events["detail"].map(scrub)).drop(columns="version"),
                     hide_index=True)

    st.subheader("Silences")
    now = datetime.now(UTC)
    silences = queries.alerts.silences(now)
    if silences:
        st.table(pd.DataFrame([{
            "id": s.id, "active": "yes" if s.active(now) else "ended",
            "matches": scrub(", ".join(f"{k}={v}" for k, v in s.matchers().items())),
            "from (UTC)": f"{s.starts_at:%Y-%m-%d %H:%M}" if s.starts_at else "—",
            "until (UTC)": f"{s.ends_at:%Y-%m-%d %H:%M}" if s.ends_at else "—",
            "by": scrub(s.created_by), "reason": scrub(s.reason)} for s in silences]))
    else:
        st.caption("No silences.")

    st.subheader("Delivery")
    counts = queries.alerts.delivery_counts()
    if counts.empty:
        st.caption("Nothing was queued for delivery yet.")
        return
    counts = counts.assign(delivery=counts["channel"] + " " + counts["status"])
    st.altair_chart(bar_chart(counts, "delivery", "count", color="status"),
                    width="stretch")
    deliveries = queries.alerts.recent_deliveries()
    if deliveries:
        st.markdown("Latest deliveries")
        st.dataframe(pd.DataFrame([{
            "channel": d.channel, "status": d.status, "attempts": d.attempts,
            "kind": d.notification.kind, "metric": d.notification.alert.metric,
            "segment": d.notification.alert.segment, "rule": d.notification.alert.rule,
            "sent at": d.sent_at, "last error": scrub(d.last_error or "")}
            for d in deliveries]), hide_index=True)
