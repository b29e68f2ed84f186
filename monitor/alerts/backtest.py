"""Replay a metric's alert rules over a history of its values.

Each (rule, segment) walks its windows in time order from an empty position, through
:func:`monitor.alerts.walk.walk` — the same walk, history and lifecycle the live stages
use, with each window's count of events — so the stages fire what the backtest predicts.
The result is one row per alert episode: when it fired, when it resolved (if it did),
and the value that fired it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from monitor.alerts.explain import explained
from monitor.alerts.rules import Rule
from monitor.alerts.walk import Position, Window, walk
from monitor.label_maturity import mature_prefix
from monitor.spec import MetricSpec

EPISODE_COLUMNS = [
    "metric", "rule", "severity", "segment", "field", "fired_window_start",
    "fired_window_end", "resolved_window_start", "windows_firing", "value", "bound", "detail",
]


@dataclass
class _Episode:
    rule: Rule
    segment: str
    start: datetime
    end: datetime
    value: float
    bound: float
    detail: str
    resolved: datetime | None = None
    windows: int = 1


def alert_episodes(metric: MetricSpec, values: pd.DataFrame,
                   as_of: datetime | None = None) -> pd.DataFrame:
    """The alert episodes ``metric``'s rules fire over ``values`` (values-file columns).

    A metric joined to labels is judged on the windows mature at ``as_of`` (by default
    the end of its last window), as live evaluation judges them
    (:func:`monitor.label_maturity.mature_prefix`)."""
    episodes: list[_Episode] = []
    mine = values[values["metric"] == metric.name]
    if metric.labels is not None:
        mine = mature_values(metric, mine, as_of)
    for segment, in_segment in mine.groupby("segment", sort=True):
        fields_of = {start: dict(zip(rows["field"], rows["value"].astype("float64"),
                                     strict=True))
                     for start, rows in in_segment.groupby("window_start", sort=False)}
        for rule in metric.alerts:
            series = in_segment[in_segment["field"] == rule.field].sort_values("window_start")
            episodes.extend(_replay(metric, rule, str(segment), series, fields_of))
    rows = [
        (metric.name, e.rule.title, e.rule.severity, e.segment, e.rule.field, e.start, e.end,
         e.resolved, e.windows, e.value, e.bound, e.detail)
        for e in episodes
    ]
    frame = pd.DataFrame(rows, columns=EPISODE_COLUMNS)
    return frame.sort_values(["fired_window_start", "rule", "segment"], kind="stable").reset_index(
        drop=True
    )


def mature_values(metric: MetricSpec, values: pd.DataFrame, as_of: datetime | None
                  ) -> pd.DataFrame:
    """The ``values`` of each segment's mature prefix of windows at ``as_of`` (by default
    the end of the last window) of a metric joined to labels."""
    assert metric.labels is not None
    if values.empty:
        return values
    if as_of is None:
        as_of = values["window_end"].max()
    horizon = timedelta(microseconds=metric.labels.horizon_ns // 1_000)
    coverage = values[values["field"] == "label_coverage"].sort_values("window_start")
    keep = []
    for segment, windows in coverage.groupby("segment", sort=False):
        ends = list(zip(windows["window_end"], windows["value"].astype("float64"), strict=True))
        mature = mature_prefix(metric.labels.mature_at, horizon, ends, as_of)
        keep += [(segment, start) for start in windows["window_start"].iloc[:mature]]
    chosen = pd.MultiIndex.from_tuples(keep, names=["segment", "window_start"])
    at = pd.MultiIndex.from_frame(values[["segment", "window_start"]])
    return values[at.isin(chosen)]


def _replay(metric: MetricSpec, rule: Rule, segment: str, series: pd.DataFrame,
            fields_of: dict[Any, dict[str, float]]) -> list[_Episode]:
    starts = list(series["window_start"])
    counts = (series["count"].astype("int64").tolist() if "count" in series
              else [None] * len(series))
    windows: list[Window] = list(zip(starts, series["window_end"],
                                     series["value"].astype("float64"), counts, strict=True))
    walked = walk(rule, Position(), [], windows)
    index = {start: i for i, start in enumerate(starts)}
    episodes: list[_Episode] = []
    current: _Episode | None = None
    for found in walked.steps:
        if found.transition == "firing":
            count = counts[index[found.window_start]]
            detail = explained(metric, rule.field or "", found,
                               fields_of.get(found.window_start, {}), count)
            current = _Episode(rule, segment, found.window_start, found.window_end, found.value,
                               found.check.bound, detail)
            current.windows = len(starts) - index[found.window_start]
            episodes.append(current)
        elif found.transition == "resolved" and current is not None:
            current.resolved = found.window_start
            current.windows = index[found.window_start] - index[current.start]
            current = None
    return episodes
