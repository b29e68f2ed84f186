"""Our side of bench/drift_calibration.py: the public drift report, window by window.

Everything goes through what a user calls: ``ReferenceProfile.fit``, ``drift(columns,
profile)`` with its defaults (``method="auto"``), ``new_state(); update(frame);
value(state)``, and the ``"{column}.drifted"`` fields. Across segments, the report's window
pass (:func:`window_values`, the one place that calls it) values every segment of a window
together, so its correction covers every (segment, column) test of the window.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from bench.drift import report_values
from metrics.drift import BinCountsState, Drift, ReferenceProfile, drift
from monitor.segments import segment_label

__all__ = ["correction_in_use", "drifted", "fit_report", "frame", "report_values",
           "segment_name", "segment_values", "state", "window_values"]

Values = dict[str, float]


def frame(columns: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """A window as a user's frame: float64 columns and, for labels, pandas' ``str`` dtype."""
    return pd.DataFrame(dict(columns))


def fit_report(reference: Mapping[str, np.ndarray], kinds: Mapping[str, str], name: str) -> Drift:
    """A profile fitted on the reference (each column's kind stated, as the peers are told)
    and the default report over its columns."""
    profile = ReferenceProfile.fit(
        frame(reference), list(kinds), name=name,
        numeric=[c for c, k in kinds.items() if k == "numeric"],
        categorical=[c for c, k in kinds.items() if k == "categorical"],
    )
    return drift(list(kinds), profile)


def state(report: Drift, window: pd.DataFrame) -> BinCountsState:
    """A new state of the report, updated with one window."""
    counts = report.new_state()
    counts.update(window)
    return counts


def drifted(values: Values, columns: Mapping[str, str] | list[str]) -> int:
    """How many of ``columns`` the values flag."""
    return sum(values[f"{c}.drifted"] == 1.0 for c in columns)


def segment_name(index: int) -> str:
    return segment_label({"segment": f"s{index:02d}"})


def window_values(report: Drift, states: Mapping[str, BinCountsState]) -> dict[str, Values]:
    """Every segment's values of one window, as every stage computes them: the report's
    window pass (``Aggregate.window_values``: issue 13's correction over every (segment,
    column) p-value of the window). Reports from before it (to compare with older commits)
    value each segment on its own."""
    if getattr(report, "window_values", None) is None:
        return {segment: report.value(state) for segment, state in states.items()}
    values: dict[str, Values] = report.window_values(states)
    return values


def segment_values(report: Drift, states: Mapping[str, BinCountsState]) -> dict[str, Values]:
    """Each segment valued on its own (the correction over its columns only)."""
    return {segment: report.value(state) for segment, state in states.items()}


def correction_in_use(report: Drift) -> str:
    if getattr(report, "window_values", None) is None:
        return "none: this Drift has no window_values (each segment's own flags)"
    return (f"Drift.window_values, correction={getattr(report, 'correction', '?')!r}, "
            f"alpha={getattr(report, 'alpha', '?')!r}")
