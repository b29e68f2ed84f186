"""Replay a metric's alert rules over a history of its values.

Each (rule, segment) walks its windows in time order, with the values of the earlier
windows as history, through the same lifecycle the live stages use. The result is one row
per alert episode: when it fired, when it resolved (if it did), and the value that fired it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from monitor.alerts.lifecycle import AlertState, step
from monitor.alerts.rules import Rule
from monitor.spec import MetricSpec

EPISODE_COLUMNS = [
    "metric", "rule", "severity", "segment", "field", "fired_window_start",
    "fired_window_end", "resolved_window_start", "windows_firing", "value", "bound", "detail",
]


@dataclass
class _Episode:
    rule: Rule
    segment: str
    start: pd.Timestamp
    end: pd.Timestamp
    value: float
    bound: float
    detail: str
    resolved: pd.Timestamp | None = None
    windows: int = 1


def alert_episodes(metric: MetricSpec, values: pd.DataFrame) -> pd.DataFrame:
    """The alert episodes ``metric``'s rules fire over ``values`` (values-file columns)."""
    episodes: list[_Episode] = []
    mine = values[values["metric"] == metric.name]
    for segment, in_segment in mine.groupby("segment", sort=True):
        for rule in metric.alerts:
            series = in_segment[in_segment["field"] == rule.field].sort_values("window_start")
            episodes.extend(_replay(rule, str(segment), series))
    rows = [
        (metric.name, e.rule.title, e.rule.severity, e.segment, e.rule.field, e.start, e.end,
         e.resolved, e.windows, e.value, e.bound, e.detail)
        for e in episodes
    ]
    frame = pd.DataFrame(rows, columns=EPISODE_COLUMNS)
    return frame.sort_values(["fired_window_start", "rule", "segment"], kind="stable").reset_index(
        drop=True
    )


def _replay(rule: Rule, segment: str, series: pd.DataFrame) -> list[_Episode]:
    state = AlertState()
    history: list[float] = []
    episodes: list[_Episode] = []
    current: _Episode | None = None
    for start, end, value in zip(
        series["window_start"], series["window_end"], series["value"], strict=True
    ):
        check = rule.check(history, float(value))
        state, transition = step(state, check, rule.for_windows)
        if transition == "firing":
            current = _Episode(rule, segment, start, end, float(value), check.bound, check.detail)
            episodes.append(current)
        elif transition == "resolved" and current is not None:
            current.resolved = start
            current = None
        elif current is not None and state.status == "firing":
            current.windows += 1
        history.append(float(value))
        if len(history) > rule.history_needed:
            del history[: len(history) - rule.history_needed]
    return episodes
