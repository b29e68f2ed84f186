"""The engine every stage shares: event chunks in, per (metric, segment, window) states out.

It takes validated events of one stream (see :mod:`monitor.schema`), runs each metric's
per-event function, splits the rows by window and segment, and updates one partial state
per (metric, segment, window). Research feeds it a whole DataFrame, batch feeds it chunks
from a table, streaming feeds it micro-batches — the stored values come out the same
because states merge exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from metrics.base import State
from monitor.errors import DefinitionError, MetricComputeError
from monitor.registry import check_per_event_result
from monitor.spec import OVERALL, MetricSpec
from monitor.values import MetricValue

NULL_LABEL = "<null>"

PartialKey = tuple[str, str, int]  # (metric, segment, window start in ns since epoch)


@dataclass
class Partial:
    """The state of one (metric, segment, window) and how many events it absorbed."""

    state: State
    rows: int = 0

    def merge(self, other: Partial) -> None:
        self.state.merge(other.state)
        self.rows += other.rows


class Engine:
    """Running states for a set of metrics, all fed from one stream's events."""

    def __init__(self, metrics: Iterable[MetricSpec]) -> None:
        self.metrics = {m.name: m for m in metrics}
        streams = {m.stream.name for m in self.metrics.values()}
        if len(streams) > 1:
            raise ValueError(f"an engine reads one stream; got {', '.join(sorted(streams))}")
        self.partials: dict[PartialKey, Partial] = {}

    def update(self, events: pd.DataFrame) -> None:
        """Absorb validated events (event time as UTC datetimes)."""
        for name in self.metrics:
            self.update_metric(name, events)

    def update_metric(self, name: str, events: pd.DataFrame) -> list[PartialKey]:
        """Absorb validated events into one metric's states; the keys it touched."""
        if events.empty:
            return []
        metric = self.metrics[name]
        touched = []
        for key, rows in self._split(metric, events):
            partial = self.partials.get(key)
            if partial is None:
                partial = self.partials[key] = Partial(metric.aggregate.new_state())
            partial.state.update(rows)
            partial.rows += len(rows)
            touched.append(key)
        return touched

    def values(self, stage: str) -> list[MetricValue]:
        """The values of every partial, one record per field."""
        return [
            value
            for key, partial in sorted(self.partials.items())
            for value in value_records(self.metrics[key[0]], key, partial, stage)
        ]

    # -- splitting -----------------------------------------------------------------------

    def _split(
        self, metric: MetricSpec, events: pd.DataFrame
    ) -> Iterator[tuple[PartialKey, pd.DataFrame]]:
        time = metric.stream.time
        frame = _input_columns(metric, events)
        times_ns = events[time].to_numpy(dtype="datetime64[ns]").view(np.int64)
        window_starts, window_codes = np.unique(
            metric.windows.starts_ns(times_ns), return_inverse=True
        )
        yield from _groups(metric.name, frame, window_starts, window_codes, OVERALL_LABELS)
        if metric.segment_by:
            labels, segment_codes = _segment_codes(events, metric.segment_by)
            codes = window_codes.astype(np.int64) * len(labels) + segment_codes
            yield from _groups(metric.name, frame, window_starts, codes, labels)


OVERALL_LABELS = [OVERALL]


def _input_columns(metric: MetricSpec, events: pd.DataFrame) -> pd.DataFrame:
    """The columns the aggregate reads, with the per-event function's output added."""
    columns = list(metric.aggregate.columns())
    if metric.per_event is None:
        return events[columns]
    subject = f"metric {metric.name!r}"
    try:
        derived = metric.per_event.function(events)
        derived = check_per_event_result(
            subject, derived, len(events), metric.aggregate.columns()[metric.name]
        )
    except DefinitionError as err:
        raise MetricComputeError(metric.name, err.problem) from None
    except Exception as err:  # the user's function: name it in the error
        raise MetricComputeError(
            metric.name, f"per-event function {metric.per_event.path} raised "
            f"{type(err).__name__}: {err}"
        ) from err
    frame = events[[c for c in columns if c != metric.name]].copy()
    frame[metric.name] = derived.to_numpy()
    return frame


def _segment_codes(events: pd.DataFrame, columns: tuple[str, ...]) -> tuple[list[str], np.ndarray]:
    """A code per row for its combination of segment values, and each code's label."""
    codes = np.zeros(len(events), dtype=np.int64)
    uniques_per_column: list[tuple[str, list[str]]] = []
    for column in columns:
        column_codes, uniques = pd.factorize(events[column], use_na_sentinel=False)
        names = [NULL_LABEL if _is_null(u) else _label_value(u) for u in uniques]
        codes = codes * len(names) + column_codes
        uniques_per_column.append((column, names))
    labels = [""]
    for column, names in uniques_per_column:
        labels = [f"{prefix},{column}={n}".lstrip(",") for prefix in labels for n in names]
    return labels, codes


def _is_null(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def _label_value(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _groups(
    metric: str,
    frame: pd.DataFrame,
    window_starts: np.ndarray,
    codes: np.ndarray,
    labels: list[str],
) -> Iterator[tuple[PartialKey, pd.DataFrame]]:
    per_window = len(labels)
    present = np.unique(codes)
    if len(present) == 1:  # one group: no copy needed
        code = int(present[0])
        yield (metric, labels[code % per_window], int(window_starts[code // per_window])), frame
        return
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], present)
    for i, code in enumerate(present.tolist()):
        stop = bounds[i + 1] if i + 1 < len(bounds) else len(order)
        rows = frame.take(order[bounds[i] : stop])
        yield (metric, labels[code % per_window], int(window_starts[code // per_window])), rows


def value_records(
    metric: MetricSpec, key: PartialKey, partial: Partial, stage: str
) -> list[MetricValue]:
    _, segment, start_ns = key
    start = pd.Timestamp(start_ns, unit="ns", tz="UTC")
    end = pd.Timestamp(start_ns + metric.windows.width_ns, unit="ns", tz="UTC")
    values = metric.aggregate.value(partial.state)
    return [
        MetricValue(metric.name, stage, segment, start, end, field, float(values[field]),
                    partial.rows)
        for field in metric.aggregate.fields()
    ]
