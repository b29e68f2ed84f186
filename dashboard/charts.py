"""Charts: pure functions from the queries' frames to Altair charts (or SVG for sparklines).

No Streamlit and no database here, so the drawing is tested apart from the pages. Times
are shown in UTC, like the windows they are.

>>> svg = sparkline_svg([1.0, 3.0, float("nan"), 2.0])
>>> svg.startswith("<svg") and svg.count("<polyline") == 2  # a gap where a value is missing
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from dashboard.drift_windows import VERDICTS

UTC_AXIS = alt.Axis(format="%b %d %H:%M", title="window start (UTC)", labelOverlap=True)
UTC_SCALE = alt.Scale(type="utc")
STAGE_DASH = alt.Scale(domain=["research", "batch", "streaming"],
                       range=[[2, 2], [1, 0], [6, 3]])
HISTOGRAM_COLORS = alt.Scale(domain=["reference", "current"], range=["#9aa5b1", "#d62728"])
VERDICT_COLORS = alt.Scale(domain=list(VERDICTS),
                           range=["#d62728", "#ff7f0e", "#9aa5b1", "#e0e0e0"])
# The y axes of a column's stacked charts take the same width, so their x axes line up.
Y_AXIS_WIDTH = 64
P_FLOOR = 1e-12  # p-values are drawn no lower: a tail this far out needs no resolution
TRANSITION_COLORS = alt.Scale(domain=["firing", "resolved", "pending", "cleared"],
                              range=["#d62728", "#2ca02c", "#ff7f0e", "#7f7f7f"])


def sparkline_svg(values: Sequence[float], width: int = 140, height: int = 28) -> str:
    """An inline SVG line of ``values`` (oldest first); missing values leave a gap."""
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return f'<svg width="{width}" height="{height}"></svg>'
    low, high = min(finite), max(finite)
    spread = (high - low) or 1.0
    step = width / max(len(values) - 1, 1)
    runs: list[list[str]] = [[]]
    for i, value in enumerate(values):
        if math.isnan(value):
            runs.append([])
            continue
        y = height - 2 - (value - low) / spread * (height - 4)
        runs[-1].append(f"{i * step:.1f},{y:.1f}")
    lines = "".join(
        f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{" ".join(r)}"/>'
        for r in runs if r)
    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'role="img">{lines}</svg>')


def series_chart(series: pd.DataFrame, thresholds: pd.DataFrame | None = None,
                 markers: pd.DataFrame | None = None, *, title: str = "") -> alt.LayerChart:
    """Lines per segment (colour) and stage (dash), a min-max band where points are
    buckets of windows, threshold rules and alert markers.

    ``series`` has the columns of :data:`monitor.storage.dashboard.values.SERIES_COLUMNS`;
    ``thresholds`` has ``rule`` and ``bound``; ``markers`` has ``window_start``, ``value``,
    ``transition``, ``rule`` and ``segment``.
    """
    base = alt.Chart(series).encode(
        x=alt.X("window_start:T", axis=UTC_AXIS, scale=UTC_SCALE),
        color=alt.Color("segment:N", title="segment"),
    )
    tooltip = [alt.Tooltip("window_start:T", format="%Y-%m-%d %H:%M", title="window (UTC)"),
               "stage:N", "segment:N", alt.Tooltip("value:Q", format=".4g"), "windows:Q"]
    line = base.mark_line(point=len(series) <= 200, strokeWidth=1.6).encode(
        y=alt.Y("value:Q", title=title or "value", scale=alt.Scale(zero=False)),
        strokeDash=alt.StrokeDash("stage:N", scale=STAGE_DASH, title="stage"),
        detail="stage:N", tooltip=tooltip)
    layers: list[alt.Chart] = []
    if len(series) and int(series["windows"].max()) > 1:
        layers.append(base.mark_area(opacity=0.15).encode(y="low:Q", y2="high:Q",
                                                          detail="stage:N"))
    layers.append(line)
    if thresholds is not None and len(thresholds):
        layers.append(alt.Chart(thresholds).mark_rule(color="#d62728", strokeDash=[4, 4])
                      .encode(y="bound:Q", tooltip=["rule:N", "bound:Q"]))
    if markers is not None and len(markers):
        layers.append(alt.Chart(markers).mark_point(size=90, filled=True, shape="triangle-up")
                      .encode(x=alt.X("window_start:T", scale=UTC_SCALE),
                              y="value:Q",
                              color=alt.Color("transition:N", scale=TRANSITION_COLORS,
                                              title="alert"),
                              tooltip=["transition:N", "rule:N", "segment:N",
                                       alt.Tooltip("window_start:T", format="%Y-%m-%d %H:%M"),
                                       alt.Tooltip("value:Q", format=".4g")]))
    return alt.layer(*layers).resolve_scale(color="independent").properties(height=280)


def drift_statistic_chart(windows: pd.DataFrame, *, title: str, floor: float | None
                          ) -> alt.LayerChart:
    """A column's drift statistic per window, a point per window coloured by its verdict
    (drifted in red) and the effect floor as a dashed line.

    ``windows`` is a :func:`dashboard.drift_windows.column_windows` frame; ``floor`` is
    None when the minimum effect is not on this statistic (chi-square's total variation).
    The charts of one column (this, :func:`p_value_chart`, :func:`count_chart`) have the
    same windows and y axes of one width, so their x axes line up.
    """
    data = windows.assign(statistic=windows["statistic"].where(
        np.isfinite(windows["statistic"])))
    x = alt.X("window_start:T", axis=alt.Axis(title=None, labels=False, ticks=False),
              scale=UTC_SCALE)
    tooltip = [alt.Tooltip("window_start:T", format="%Y-%m-%d %H:%M", title="window (UTC)"),
               alt.Tooltip("statistic:Q", format=".4g", title=title),
               alt.Tooltip("p_adjusted:Q", format=".3g", title="adjusted p"),
               alt.Tooltip("count:Q", format=",.0f"), "verdict:N", "windows:Q"]
    y = alt.Y("statistic:Q", title=title, scale=alt.Scale(zero=True),
              axis=alt.Axis(minExtent=Y_AXIS_WIDTH, maxExtent=Y_AXIS_WIDTH))
    layers: list[alt.Chart] = []
    if len(data) and int(data["windows"].max()) > 1:
        layers.append(alt.Chart(data).mark_area(opacity=0.15, color="#1f77b4").encode(
            x=x, y="low:Q", y2="high:Q"))
    layers.append(alt.Chart(data).mark_line(color="#1f77b4", strokeWidth=1.4).encode(x=x, y=y))
    layers.append(alt.Chart(data).mark_point(filled=True, opacity=0.9, size=40).encode(
        x=x, y=y, tooltip=tooltip,
        color=alt.Color("verdict:N", scale=VERDICT_COLORS, title=None,
                        legend=alt.Legend(orient="top", labelLimit=0))))
    if floor is not None:
        rule = pd.DataFrame({"floor": [floor], "label": [f"effect floor {floor:g}"]})
        layers.append(alt.Chart(rule).mark_rule(color="#d62728", strokeDash=[4, 4]).encode(
            y="floor:Q", tooltip=["label:N"]))
        layers.append(alt.Chart(rule).mark_text(align="right", dx=-2, dy=-6, color="#d62728",
                                                fontSize=11).encode(
            x=alt.value("width"), y="floor:Q", text="label:N"))
    return alt.LayerChart(layer=layers, height=220)


def p_value_chart(windows: pd.DataFrame, *, alpha: float) -> alt.LayerChart:
    """The p-value and the adjusted p-value per window on a log axis, with ``alpha``: a
    window below the line is beyond sampling noise. Values under :data:`P_FLOOR` are drawn
    on it (the tooltip has the value)."""
    long = windows.melt(id_vars=["window_start", "verdict"],
                        value_vars=["p_value", "p_adjusted"], var_name="p", value_name="raw")
    long["p"] = long["p"].map({"p_value": "p-value", "p_adjusted": "adjusted p"})
    long["drawn"] = long["raw"].clip(lower=P_FLOOR)
    x = alt.X("window_start:T", axis=alt.Axis(title=None, labels=False, ticks=False),
              scale=UTC_SCALE)
    lines = alt.Chart(long).mark_line(strokeWidth=1.3, point=len(windows) <= 200).encode(
        x=x, y=alt.Y("drawn:Q", title="p (log)", scale=alt.Scale(type="log"),
                     axis=alt.Axis(format="~g", minExtent=Y_AXIS_WIDTH,
                                   maxExtent=Y_AXIS_WIDTH)),
        color=alt.Color("p:N", title=None, legend=alt.Legend(orient="top"), scale=alt.Scale(
            domain=["adjusted p", "p-value"], range=["#1f77b4", "#aec7e8"])),
        tooltip=[alt.Tooltip("window_start:T", format="%Y-%m-%d %H:%M", title="window (UTC)"),
                 "p:N", alt.Tooltip("raw:Q", format=".3g", title="value"), "verdict:N"])
    rule = pd.DataFrame({"alpha": [alpha], "label": [f"α = {alpha:g}"]})
    line = alt.Chart(rule).mark_rule(color="#d62728", strokeDash=[4, 4]).encode(y="alpha:Q")
    text = alt.Chart(rule).mark_text(align="right", dx=-2, dy=-6, color="#d62728",
                                     fontSize=11).encode(x=alt.value("width"), y="alpha:Q",
                                                         text="label:N")
    return alt.LayerChart(layer=[lines, line, text], height=170)


def count_chart(windows: pd.DataFrame) -> alt.Chart:
    """Events per window (the mean per window where a point is several)."""
    data = windows[["window_start", "count"]].rename(columns={"count": "events"})
    return alt.Chart(data).mark_area(interpolate="step-after", opacity=0.45,
                                     color="#7f7f7f").encode(
        x=alt.X("window_start:T", axis=UTC_AXIS, scale=UTC_SCALE),
        y=alt.Y("events:Q", title="count", axis=alt.Axis(
            format="~s", minExtent=Y_AXIS_WIDTH, maxExtent=Y_AXIS_WIDTH)),
        tooltip=[alt.Tooltip("window_start:T", format="%Y-%m-%d %H:%M", title="window (UTC)"),
                 alt.Tooltip("events:Q", format=",.0f")],
    ).properties(height=130)


def tails_chart(frame: pd.DataFrame, low: str, high: str, *, log: bool = False
                ) -> alt.LayerChart:
    """A band from quantile ``low`` to ``high`` with a line per quantile.

    ``frame`` is long: ``window_start``, ``field`` (p50, p95, ...) and ``value``.
    """
    wide = frame.pivot_table(index="window_start", columns="field", values="value",
                             aggfunc="mean").reset_index()
    scale = alt.Scale(type="log" if log else "linear", zero=False)
    x = alt.X("window_start:T", axis=UTC_AXIS, scale=UTC_SCALE)
    band = alt.Chart(wide).mark_area(opacity=0.2, color="#1f77b4").encode(
        x=x, y=alt.Y(f"{_quoted(low)}:Q", scale=scale, title="value"),
        y2=f"{_quoted(high)}:Q")
    lines = alt.Chart(frame).mark_line(strokeWidth=1.5).encode(
        x=x, y=alt.Y("value:Q", scale=scale),
        color=alt.Color("field:N", title="quantile", sort=sorted(frame["field"].unique(),
                                                                 key=_quantile_order)),
        tooltip=[alt.Tooltip("window_start:T", format="%Y-%m-%d %H:%M"), "field:N",
                 alt.Tooltip("value:Q", format=".4g")])
    return alt.LayerChart(layer=[band, lines], height=300)


def histogram_chart(bins: pd.DataFrame, *, numeric: bool, by_quantile: bool = False
                    ) -> alt.Chart | alt.LayerChart | alt.VConcatChart:
    """Reference against current shares per bin.

    Numeric ``bins``: ``bin`` (1, 2, ...), ``left``, ``right``, ``point``, ``label``,
    ``share`` and ``which`` (reference/current). A point bin holds one value (``[v,
    nextafter(v))``): those are drawn as grouped bars, one per value, in value order. The
    other bins are drawn by value as densities over the value axis (quantile bins have
    unequal widths), on a log axis when the values are positive and span more than two
    decades; a column with both gets the two, one above the other. ``by_quantile`` draws one
    equal-width bar per reference bin instead, the reference as a step line (flat for
    quantile bins). Categorical: ``category``, ``share`` and ``which``, as grouped bars.
    """
    tooltip = ["which:N", alt.Tooltip("left:Q", format=".4g"),
               alt.Tooltip("right:Q", format=".4g"), alt.Tooltip("share:Q", format=".2%")]
    if numeric and by_quantile:
        current = alt.Chart(bins[bins["which"] == "current"]).mark_bar(color="#d62728").encode(
            x=alt.X("bin:Q", title="reference quantile bin"),
            y=alt.Y("share:Q", axis=alt.Axis(format="%"), title="share"), tooltip=tooltip)
        reference = alt.Chart(bins[bins["which"] == "reference"]).mark_line(
            interpolate="step-after", color="#555").encode(x="bin:Q", y="share:Q",
                                                           tooltip=tooltip)
        return alt.LayerChart(layer=[current, reference], height=260)
    if not numeric:
        return _grouped_bars(bins, "category", sort="-y")
    # Point bins, and the bins between them that the reference never had a value in,
    # are shares of single values or of gaps: bars. The rest are densities over values.
    reference_share = bins[bins["which"] == "reference"].set_index("bin")["share"]
    bars = bins["point"] | bins["bin"].map(reference_share).eq(0)
    points, spread = bins[bars], bins[~bars]
    if spread.empty:
        return _grouped_bars(points, "label", sort=_value_order(points), title="value")
    if points.empty:
        return _densities(spread, tooltip)
    # Both: the point values (a zero-inflated column's zeros, a default value) beside the
    # density of the rest; a point has no width, so it cannot share the density's axis.
    # One above the other: Streamlit stretches a simple vconcat to the page's width.
    return alt.vconcat(
        _grouped_bars(points, "label", sort=_value_order(points),
                      title="values with a bin of their own").properties(height=180),
        _densities(spread, tooltip).properties(title="the other values"),
    ).resolve_scale(color="shared")


def _grouped_bars(bins: pd.DataFrame, category: str, *, sort: str | list[str],
                  title: str | None = None) -> alt.Chart:
    chart = alt.Chart(bins).mark_bar().encode(
        x=alt.X(f"{category}:N", title=title, sort=sort, axis=alt.Axis(labelAngle=0)),
        xOffset="which:N", y=alt.Y("share:Q", axis=alt.Axis(format="%")),
        color=alt.Color("which:N", scale=HISTOGRAM_COLORS, title=None),
        tooltip=["which:N", f"{category}:N", alt.Tooltip("share:Q", format=".2%")],
    )
    return chart.properties(height=260)


def _densities(bins: pd.DataFrame, tooltip: list[Any]) -> alt.Chart:
    log = bool(len(bins)) and float(bins["left"].min()) > 0 and \
        float(bins["right"].max()) / float(bins["left"].min()) > 100
    widths = (np.log10(bins["right"]) - np.log10(bins["left"])) if log else \
        bins["right"] - bins["left"]
    data = bins.assign(density=bins["share"] / widths, floor=0.0)
    # Rectangles from 0 up: a bar with x and x2 would lie on its side.
    return alt.Chart(data).mark_rect(opacity=0.55).encode(
        x=alt.X("left:Q", title="value (log scale)" if log else "value",
                scale=alt.Scale(type="log" if log else "linear")),
        x2="right:Q",
        y=alt.Y("density:Q", title="share per decade" if log else "share per unit"),
        y2="floor:Q", color=alt.Color("which:N", scale=HISTOGRAM_COLORS, title=None),
        tooltip=tooltip,
    ).properties(height=260)


def _value_order(points: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(points.sort_values("left")["label"]))


def bar_chart(frame: pd.DataFrame, category: str, count: str, color: str | None = None
              ) -> alt.Chart:
    encoding = {"y": alt.Y(f"{category}:N", sort="-x", title=None),
                "x": alt.X(f"{count}:Q", title=count),
                "tooltip": [f"{category}:N", f"{count}:Q"]}
    if color is not None:
        encoding["color"] = alt.Color(f"{color}:N")
    # Streamlit fits the whole chart, axes and titles included, into the height.
    return alt.Chart(frame).mark_bar().encode(**encoding).properties(
        height=70 + 32 * frame[category].nunique())


def _quoted(field: str) -> str:
    """A field name for an Altair shorthand (dots would mean nesting)."""
    return field.replace(".", "\\.")


def quantile_of(field: str) -> float:
    """The quantile a tails field names: ``p99.9`` is 0.999 (NaN for other fields).

    >>> [quantile_of(f) for f in ("p5", "p50", "p99.9", "count")]
    [0.05, 0.5, 0.999, nan]
    """
    try:
        return float(Decimal(field[1:]).scaleb(-2)) if field.startswith("p") else math.nan
    except ArithmeticError:  # not a number after the p
        return math.nan


def _quantile_order(field: str) -> float:
    found = quantile_of(field)
    return math.inf if math.isnan(found) else found
