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
from monitor.alerts.backtest import alert_episodes, mature_values
from monitor.engine import Engine, FailedEvents
from monitor.label_join import LabelCounts
from monitor.label_stage import LabelsLike, joined_events
from monitor.references import References, bind, fit_reference
from monitor.spec import MetricSpec
from monitor.storage.records import WindowResult, window_results
from monitor.values import MetricValue, values_frame

log = logging.getLogger(__name__)

ReferenceLike = ReferenceProfile | pd.DataFrame | str | Path | None


@dataclass
class ResearchResult:
    values: pd.DataFrame
    # row, reason (and excerpt for rows that did not parse); the events a per-event
    # function failed on too, with a reason naming the metric (monitor.engine.derive)
    rejects: pd.DataFrame
    events: int  # events offered, rejected ones included
    metric: MetricSpec  # as computed: its reference profile bound in
    windows: list[WindowResult]  # values and states as a stage stores them; ``values`` too
    # A metric joined to labels: what became of the labels, the labels refused (row,
    # reason) and the time its windows' maturity is judged at (see ``as_of`` of run()).
    label_counts: LabelCounts | None = None
    label_rejects: pd.DataFrame | None = None
    as_of: pd.Timestamp | None = None

    def maturity(self) -> pd.DataFrame:
        """For a metric joined to labels, one row per (segment, window): its label
        coverage and whether alert rules judge it as of :attr:`as_of` (``mature``: in the
        segment's mature prefix, see :mod:`monitor.label_maturity`)."""
        if self.metric.labels is None:
            raise ValueError(f"metric {self.metric.name!r} is not joined to labels")
        coverage = self.values[self.values["field"] == "label_coverage"]
        judged = mature_values(self.metric, coverage, self.as_of)
        frame = coverage[["segment", "window_start", "window_end", "value"]].rename(
            columns={"value": "label_coverage"})
        return frame.assign(mature=frame.index.isin(judged.index)).reset_index(drop=True)


def run(metric: MetricSpec, events: pd.DataFrame, reference: ReferenceLike = None,
        references: References | None = None, *, labels: LabelsLike = None,
        as_of: pd.Timestamp | None = None) -> ResearchResult:
    """Validate ``events`` against the metric's stream and compute its values.

    A metric declared with ``labels=`` needs its label events: a DataFrame or a file
    (JSON lines, CSV, Parquet; a glob). They are validated against the label stream and
    joined to the predictions (:mod:`monitor.label_join`). ``as_of`` is when the
    windows' maturity is judged (alerts wait for mature windows); by default the end of
    the data, the latest prediction or label time.
    """
    references = references or _references(metric, reference)
    bound = bind(metric, references)
    clean, rejects = metric.stream.schema.validate(events)
    if len(rejects):
        log.warning("metric %s: %d of %d events rejected (%s)", metric.name, len(rejects),
                    len(events), summarize_reasons(rejects))
    engine = Engine([bound])
    joined = joined_events(bound, clean, labels)
    engine.update(clean if joined is None else joined.events)
    if failed := engine.take_failed():
        rejects = pd.concat([rejects, failed_rejects(events, rejects, failed)],
                            ignore_index=True)
    # Valued once, as batch values its windows: the values returned are the floats a
    # recorded run stores (valuing again added a quarter to a recorded run of quantiles).
    windows = window_results(bound, engine.partials)
    values = values_frame(_research_values(bound.name, windows))
    if joined is None:
        return ResearchResult(values, rejects, len(events), bound, windows)
    if as_of is None:
        as_of = joined.end
    return ResearchResult(values, rejects, len(events), bound, windows, joined.counts,
                          joined.rejects, as_of)


def evaluate(
    metric: MetricSpec, events: pd.DataFrame, reference: ReferenceLike = None, *,
    labels: LabelsLike = None,
) -> pd.DataFrame:
    """The metric's values over ``events``, one row per (segment, window, field); a metric
    joined to labels needs ``labels`` (a DataFrame or a file), see :func:`run`."""
    return run(metric, events, reference, labels=labels).values


def backtest(
    metric: MetricSpec, events: pd.DataFrame, reference: ReferenceLike = None, *,
    labels: LabelsLike = None, as_of: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """The alert episodes the metric's rules would have fired over ``events``.

    A metric joined to labels is judged only on its windows mature at ``as_of`` (by
    default the end of the data), as the live stages judge them (see
    :mod:`monitor.label_maturity`)."""
    result = run(metric, events, reference, labels=labels, as_of=as_of)
    return alert_episodes(metric, result.values, as_of=result.as_of)


def failed_rejects(events: pd.DataFrame, rejects: pd.DataFrame,
                   failed: list[FailedEvents]) -> pd.DataFrame:
    """The events a per-event function failed on as rejects (``row``: the event's index
    label in ``events``; ``reason`` names the metric and says what the function did):
    they are left out of that metric, as a stage's dead letters are."""
    valid = events.index[~events.index.isin(rejects["row"])]  # the validated events' rows
    found = pd.concat([pd.DataFrame({"row": valid[f.rows], "reason": f.reasons()})
                       for f in failed], ignore_index=True)
    log.warning("%d events left out of a metric: %s", len(found), summarize_reasons(found))
    return found


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
