"""Plain records that cross the storage ports. No I/O; times are tz-aware UTC datetimes.

A stage hands the store one :class:`WindowResult` per (segment, window) — its serialized
state and its values — and the store writes all of them in one transaction.

>>> import metrics
>>> import pandas as pd
>>> from monitor.engine import Engine
>>> from monitor.spec import MetricSpec, StreamSpec
>>> from monitor.schema import Schema
>>> stream = StreamSpec("home", Schema.parse({"latency_ms": "float"}))
>>> spec = MetricSpec("latency", stream, metrics.mean("latency_ms"), window="1h")
>>> engine = Engine([spec])
>>> events = pd.DataFrame({"ts": pd.to_datetime(["2026-03-01T10:05Z", "2026-03-01T10:40Z"]),
...                        "latency_ms": [100.0, 300.0]})
>>> touched = engine.update(events)
>>> [window] = window_results(spec, engine.partials)
>>> window.segment, window.window_start.isoformat(), window.rows, dict(window.values)
('*', '2026-03-01T10:00:00+00:00', 2, {'mean': 200.0})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from monitor.partials import Partial, PartialKey, partial_values
from monitor.spec import MetricSpec
from monitor.values import STAGES
from monitor.windows import utc_from_ns


@dataclass(frozen=True)
class WindowResult:
    """What a stage stores for one (segment, window) of a metric: its values and its state.

    ``values`` maps each field to its value (NaN allowed); every value row gets ``rows`` as
    its count, as :func:`monitor.engine.value_records` does. ``state`` is
    ``state.to_bytes()``, or None for a stage that keeps no state.
    """

    segment: str
    window_start: datetime
    window_end: datetime
    rows: int
    values: Mapping[str, float]
    state: bytes | None = None


@dataclass(frozen=True)
class MetricSlice:
    """One metric's windows of a batch slice, stored with the end of its run ``run_id``."""

    metric: MetricSpec
    version: int
    windows: Sequence[WindowResult]
    run_id: int


@dataclass(frozen=True)
class StoredState:
    """A serialized state read back; ``metric.aggregate.state_from_bytes(state)`` revives it."""

    segment: str
    window_start: datetime
    window_end: datetime
    state: bytes
    rows: int


@dataclass(frozen=True)
class MetricDefinition:
    """One registered version of a metric; the current version is the highest."""

    name: str
    version: int
    spec_id: str
    spec: Mapping[str, object]
    owner: str | None
    description: str
    window: str
    stage: str
    created_at: datetime


@dataclass(frozen=True)
class StageChange:
    """A metric version moving between stages; ``from_stage`` is None at registration.

    ``effective_from``, for a change into or out of streaming, is the start of the first
    window it applies to there (see :mod:`monitor.stage_switch`); None for the others.
    """

    metric: str
    version: int
    from_stage: str | None
    to_stage: str
    at: datetime
    by: str
    reason: str
    effective_from: datetime | None = None


@dataclass(frozen=True)
class RecordedResearchRun:
    """What recording a research run stored: the definition it registered under (a new
    version if the metric's definition changed), the one current before it (None if the
    metric was new), the value rows written, and the id of the latest profile stored under
    the run's reference name once the run's own was saved (None without a reference)."""

    definition: MetricDefinition
    previous: MetricDefinition | None
    values_written: int
    latest_profile_id: str | None


@dataclass(frozen=True)
class BatchRun:
    """One batch run of a metric over ``[window_start, window_end)``."""

    id: int
    metric: str
    metric_version: int
    window_start: datetime
    window_end: datetime
    status: str  # "running", then "succeeded" or "failed"
    rows_read: int
    windows_written: int
    error: str | None
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class DeadLetter:
    """Input a stage could not use, with why; the payload is cut to an excerpt when stored.

    ``key`` identifies the input within its source — the same input read again gets the
    same key (the batch stage: a hash of the row; streaming: topic/partition/offset/index)
    — so a retry, a rerun or a replay stores it once. None: stored every time it is written.
    """

    source: str
    reason: str
    payload: str | bytes
    created_at: datetime | None = None  # None: when it is written
    key: str | None = None


def window_results(
    metric: MetricSpec, partials: Mapping[PartialKey, Partial]
) -> list[WindowResult]:
    """``metric``'s partials (every segment of each window, merged) as window results, by
    segment then window: values from :func:`monitor.partials.partial_values`, states
    serialized."""
    width = metric.windows.width_ns
    valued = partial_values(metric, partials)
    results = []
    for key in sorted(valued):
        _, segment, start_ns = key
        partial = partials[key]
        results.append(WindowResult(
            segment=segment,
            window_start=utc_from_ns(start_ns),
            window_end=utc_from_ns(start_ns + width),
            rows=partial.rows,
            values=valued[key],
            state=partial.state.to_bytes(),
        ))
    return results


def check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
