"""The chart of an estimate of performance beside its realized value, for one segment.

The estimate per window is a line inside a band of ``BAND_SD`` sampling errors either side
(a stored sampling error is one standard deviation of the realized value around the
estimate, so about 99.7% of realized values should fall inside when the estimate's
assumptions hold); the realized value, once labels arrive, is a second line with a point
per window; the label coverage of each window is drawn as grey bars on a second axis
(right, 0-100%) and is in the hover of every point. Pure: frames in, an Altair chart out.

>>> import pandas as pd
>>> frame = pd.DataFrame({
...     "segment": "*", "window_start": pd.to_datetime(["2026-03-02T00:00Z", "2026-03-02T01:00Z"]),
...     "estimate": [0.8, 0.75], "sampling_error": [0.01, 0.01], "realized": [0.79, None],
...     "label_coverage": [0.95, 0.0], "labelled": [95.0, 0.0], "predictions": [100.0, 100.0],
...     "windows": [1, 1]})
>>> layers = estimate_chart(frame, estimated="estimated_roc_auc", realized="click_auc: auc")
>>> [list(d) for d in chart_frames(frame)]  # doctest: +NORMALIZE_WHITESPACE
[['window_start', 'estimate', 'sampling_error', 'low', 'high', 'label_coverage', 'labelled',
  'predictions', 'windows', 'series'],
 ['window_start', 'realized', 'label_coverage', 'labelled', 'predictions', 'windows',
  'series']]
>>> chart_frames(frame)[0]["low"].round(2).tolist(), len(chart_frames(frame)[1])
([0.77, 0.72], 1)
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from dashboard.charts import UTC_AXIS, UTC_SCALE

BAND_SD = 3  # the band spans this many sampling errors (standard deviations) either side
ESTIMATE_COLOR = "#1f77b4"
REALIZED_COLOR = "#ff7f0e"
COVERAGE_COLOR = "#9aa5b1"
COUNTS = ["label_coverage", "labelled", "predictions", "windows"]


def chart_frames(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The estimate's rows with their band (``low``, ``high``) and the realized rows (those
    with a realized value), from a :meth:`PerformanceQueries.side_by_side` frame."""
    estimated = frame[frame["estimate"].notna()]
    band = BAND_SD * estimated["sampling_error"]
    estimated = estimated[["window_start", "estimate", "sampling_error"]].assign(
        low=estimated["estimate"] - band, high=estimated["estimate"] + band,
        **{c: estimated[c] for c in COUNTS}, series="estimated")
    realized = frame[frame["realized"].notna()]
    realized = realized[["window_start", "realized", *COUNTS]].assign(series="realized")
    return estimated.reset_index(drop=True), realized.reset_index(drop=True)


def estimate_chart(frame: pd.DataFrame, *, estimated: str, realized: str | None,
                   bounds: pd.DataFrame | None = None) -> alt.LayerChart:
    """The estimate (field ``estimated``) with its band, the realized values (``realized``
    names them in the legend; None when no metric realizes this estimate), the label
    coverage on a right-hand axis, and ``bounds`` (``rule``, ``bound``: threshold rules
    on the estimate) as dashed red lines."""
    estimates, realizations = chart_frames(frame)
    x = alt.X("window_start:T", axis=UTC_AXIS, scale=UTC_SCALE)
    y = alt.Y("value:Q", title=estimated, scale=alt.Scale(zero=False))
    when = alt.Tooltip("window_start:T", format="%Y-%m-%d %H:%M", title="window (UTC)")
    coverage_tips = [alt.Tooltip("label_coverage:Q", format=".1%", title="label coverage"),
                     alt.Tooltip("labelled:Q", format=",.0f"),
                     alt.Tooltip("predictions:Q", format=",.0f")]
    names = ["estimated"] + ([realized] if realized else [])
    color = alt.Color("series:N", title=None, legend=alt.Legend(orient="top"),
                      scale=alt.Scale(domain=names,
                                      range=[ESTIMATE_COLOR, REALIZED_COLOR][:len(names)]))
    estimate_data = estimates.rename(columns={"estimate": "value"})
    values: list[alt.Chart] = [
        alt.Chart(estimate_data).mark_area(opacity=0.18, color=ESTIMATE_COLOR).encode(
            x=x, y=alt.Y("low:Q", title=estimated, scale=alt.Scale(zero=False)), y2="high:Q"),
        alt.Chart(estimate_data).mark_line(strokeWidth=1.8, point=len(estimates) <= 200)
        .encode(x=x, y=y, color=color, tooltip=[
            when, alt.Tooltip("value:Q", format=".4f", title="estimate"),
            alt.Tooltip("sampling_error:Q", format=".4f", title="sampling error (1 SD)"),
            alt.Tooltip("low:Q", format=".4f", title=f"−{BAND_SD} SD"),
            alt.Tooltip("high:Q", format=".4f", title=f"+{BAND_SD} SD"), *coverage_tips]),
    ]
    if realized and len(realizations):
        realized_data = realizations.assign(series=realized).rename(
            columns={"realized": "value"})
        values.append(alt.Chart(realized_data).mark_line(strokeWidth=1.8, point=True).encode(
            x=x, y=y, color=color, tooltip=[
                when, alt.Tooltip("value:Q", format=".4f", title="realized"),
                *coverage_tips]))
    if bounds is not None and len(bounds):
        values.append(alt.Chart(bounds).mark_rule(color="#d62728", strokeDash=[4, 4])
                      .encode(y="bound:Q", tooltip=["rule:N", "bound:Q"]))
    coverage = alt.Chart(estimate_data).mark_bar(opacity=0.25, color=COVERAGE_COLOR).encode(
        x=x, y=alt.Y("label_coverage:Q", title="label coverage",
                     scale=alt.Scale(domain=[0, 1]),
                     axis=alt.Axis(format="%", orient="right")),
        tooltip=[when, *coverage_tips])
    return alt.layer(coverage, alt.layer(*values)).resolve_scale(y="independent").properties(
        height=300)
