"""Overview: every metric with its stage, owner, last value, alert status and a sparkline;
firing alerts on top.

The table is plain HTML (escaped): one DOM row per metric with an inline SVG sparkline
renders at once for fifty metrics, where fifty chart widgets would not.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from urllib.parse import urlencode

import streamlit as st

from dashboard.charts import sparkline_svg
from dashboard.context import STATUS_BADGES, STATUS_COLORS, fmt, md, require_data, settings
from monitor.storage.alert_states import StoredAlert
from monitor.storage.dashboard.records import MetricOverview

TABLE_STYLE = """<style>
table.monitor-overview {border-collapse: collapse; width: 100%; font-size: 0.9rem}
table.monitor-overview th {text-align: left; border-bottom: 2px solid #ddd; padding: 4px 8px}
table.monitor-overview td {border-bottom: 1px solid #eee; padding: 4px 8px;
                           vertical-align: middle}
table.monitor-overview td.num {text-align: right; font-variant-numeric: tabular-nums}
</style>"""


def render() -> None:
    st.title("domain-monitor")
    queries = require_data()
    metrics = queries.overview.metrics()
    firing = queries.alerts.active()
    _firing_alerts([a for a in firing if a.status == "firing"])
    counts = {status: sum(m.status == status for m in metrics) for status in STATUS_BADGES}
    columns = st.columns(4)
    for column, status in zip(columns, ("firing", "pending", "ok", "no data"), strict=True):
        column.metric(STATUS_BADGES[status], counts[status])
    st.subheader(f"Metrics ({len(metrics)})")
    st.markdown(TABLE_STYLE + overview_table(metrics, settings().scrub),
                unsafe_allow_html=True)
    others = queries.dead_letters.count_metrics()
    if others:
        st.caption("Also stored: " + ", ".join(md(name) for name in others)
                   + " (see Dead letters)")


def _firing_alerts(alerts: Sequence[StoredAlert]) -> None:
    if not alerts:
        st.success("No alert is firing.", icon=":material/check_circle:")
        return
    st.subheader(f":red[●] Firing alerts ({len(alerts)})")
    for alert in alerts[:20]:
        key = alert.key
        since = f"{alert.active_since:%Y-%m-%d %H:%M} UTC" if alert.active_since else "—"
        cols = st.columns([3, 2])
        cols[0].markdown(
            f"**{md(key.metric)}** [{md(key.segment)}] {md(key.rule)} · "
            f"{alert.severity} · {key.stage} · value {fmt(alert.value)} vs "
            f"{fmt(alert.bound)} · since {since}")
        cols[1].page_link("screens/metric.py", label=f"open {key.metric}",
                          icon=":material/show_chart:",
                          query_params={"metric": key.metric, "segment": key.segment,
                                        "stage": key.stage})
    if len(alerts) > 20:
        st.caption(f"... and {len(alerts) - 20} more on the Alerts page")


def overview_table(metrics: Sequence[MetricOverview],
                   scrub: Callable[[object], str] = str) -> str:
    """The overview as an HTML table; every text is escaped."""
    head = "".join(f"<th>{h}</th>" for h in ("status", "metric", "stage", "owner", "window",
                                             "last value", "last window (UTC)",
                                             "recent windows"))
    rows = []
    for m in metrics:
        link = "metric?" + urlencode({"metric": m.name})
        value = "—" if m.headline is None else f"{m.headline} = {fmt(m.last_value)}"
        shown = m.stage if m.value_stage in (None, m.stage) else f"{m.stage} (values: " \
                                                                   f"{m.value_stage})"
        last = f"{m.last_window_start:%Y-%m-%d %H:%M}" if m.last_window_start else "—"
        cells = [
            f'<span style="color:{STATUS_COLORS.get(m.status, "#000")}">●</span> '
            f"{html.escape(m.status)}",
            f'<a href="{html.escape(link)}" target="_self" title="{_attr(scrub(m.description))}">'
            f"{html.escape(m.name)}</a>",
            html.escape(shown), html.escape(m.owner or "—"), html.escape(m.window),
            f'<span class="num">{html.escape(value)}</span>', html.escape(last),
            sparkline_svg(m.sparkline),
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (f'<table class="monitor-overview"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def _attr(text: object) -> str:
    return html.escape(str(text)[:300], quote=True)
