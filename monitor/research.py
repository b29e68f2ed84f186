"""The research stage: a metric computed ad hoc on a DataFrame or a file, and a backtest of
its alert rules on history.

>>> import metrics
>>> from monitor import Monitor
>>> mon = Monitor()
>>> _ = mon.stream("home", schema={"latency_ms": "float"})
>>> latency = mon.metric("latency", "home", metrics.mean("latency_ms"), window="1h")
>>> events = pd.DataFrame({"ts": ["2026-01-01T00:10:00Z", "2026-01-01T00:50:00Z"],
...                        "latency_ms": [100.0, 300.0]})
>>> evaluate(latency, events)[["segment", "window_start", "field", "value", "count"]]
  segment              window_start field  value  count
0       * 2026-01-01 00:00:00+00:00  mean  200.0      2
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from metrics.drift import ReferenceProfile
from monitor.alerts.backtest import alert_episodes
from monitor.engine import Engine
from monitor.references import References, bind, fit_reference
from monitor.spec import MetricSpec
from monitor.storage.records import WindowResult, window_results
from monitor.values import MetricValue, values_frame

log = logging.getLogger(__name__)

ReferenceLike = ReferenceProfile | pd.DataFrame | str | Path | None


@dataclass
class ResearchResult:
    values: pd.DataFrame
    rejects: pd.DataFrame  # row, reason (and excerpt for rows that did not parse)
    events: int  # events offered, rejected ones included
    metric: MetricSpec  # as computed: its reference profile bound in
    windows: list[WindowResult]  # values and states as a stage stores them; ``values`` too


def run(metric: MetricSpec, events: pd.DataFrame, reference: ReferenceLike = None,
        references: References | None = None) -> ResearchResult:
    """Validate ``events`` against the metric's stream and compute its values."""
    references = references or _references(metric, reference)
    bound = bind(metric, references)
    clean, rejects = metric.stream.schema.validate(events)
    if len(rejects):
        log.warning("metric %s: %d of %d events rejected (%s)", metric.name, len(rejects),
                    len(events), summarize_reasons(rejects))
    engine = Engine([bound])
    engine.update(clean)
    # Valued once, as batch values its windows: the values returned are the floats a
    # recorded run stores (valuing again added a quarter to a recorded run of quantiles).
    windows = window_results(bound, engine.partials)
    return ResearchResult(values_frame(_research_values(bound.name, windows)), rejects,
                          len(events), bound, windows)


def evaluate(
    metric: MetricSpec, events: pd.DataFrame, reference: ReferenceLike = None
) -> pd.DataFrame:
    """The metric's values over ``events``, one row per (segment, window, field)."""
    return run(metric, events, reference).values


def backtest(
    metric: MetricSpec, events: pd.DataFrame, reference: ReferenceLike = None
) -> pd.DataFrame:
    """The alert episodes the metric's rules would have fired over ``events``."""
    return alert_episodes(metric, evaluate(metric, events, reference))


def summarize_reasons(rejects: pd.DataFrame, top: int = 10) -> str:
    counts = rejects["reason"].value_counts()
    shown = [f"{n} {reason}" for reason, n in counts.head(top).items()]
    if len(counts) > top:
        shown.append(f"{int(counts.iloc[top:].sum())} other")
    return "; ".join(shown)


def _research_values(metric: str, windows: list[WindowResult]) -> list[MetricValue]:
    values: list[MetricValue] = []
    for window in windows:
        start, end = pd.Timestamp(window.window_start), pd.Timestamp(window.window_end)
        values.extend(MetricValue(metric, "research", window.segment, start, end, field, value,
                                  window.rows) for field, value in window.values.items())
    return values


def _references(metric: MetricSpec, reference: Any) -> References:
    name = metric.aggregate.reference_name()
    if reference is None or name is None:
        return References()
    if isinstance(reference, ReferenceProfile):
        return References(profiles={name: reference})
    if isinstance(reference, pd.DataFrame):
        profile = fit_reference(reference, metric.stream.schema,
                                list(metric.aggregate.columns()), name,
                                metric.aggregate.reference_calibrations())
        return References(profiles={name: profile})
    return References(paths={name: Path(reference)})
