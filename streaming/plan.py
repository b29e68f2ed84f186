"""Which metric versions a stream processor computes, and for which windows: its plan.

The catalog says it (:mod:`monitor.stage_switch`): a metric version is computed in
streaming for the windows whose start lies in one of its *streaming spans*, from the
``effective_from`` of its promotion to that of its demotion (or of the version taking
over from it). A processor follows the catalog while it runs
(:meth:`streaming.processor.StreamProcessor.follow`): it reads the plan again when the
stage history changed, at least every ``lifecycle_poll_s``, and applies it without a
restart: a version whose span opens is added with empty states; one whose span ended
keeps absorbing (late events) for the windows before the end, stops counting those after
it, and leaves the processor once those windows are closed. Two versions of one metric
alive at once are kept apart by the key each has in the processor's engines (the name,
or ``name@vN`` for a second one), mapped back to (name, version) where states are stored.

Exactly once across a switch: the catalog puts the boundary of every change at least the
switch lead (``MONITOR_SWITCH_LEAD``) after the change, and commits a change within
``COMMIT_WITHIN`` of the time it records, so a read of the catalog that started at
wall-clock time K has seen every change whose boundary is before K + lead −
COMMIT_WITHIN. That is the processor's *horizon*: it absorbs no event at or after it
before reading the catalog again. Events further ahead of the wall clock than ``--max-future`` are
dead-lettered, which is why that setting may not exceed the lead.

Pure: the catalog is read through :class:`PlanSource`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from monitor.spec import MetricSpec

Interval = tuple[int, int | None]  # [start, end) of window starts, ns; end None: open


@dataclass(frozen=True)
class PlannedVersion:
    """A metric version with streaming spans, as this worker can compute it: ``metric``
    bound to the version's reference profile, or None with the ``problem`` that stops it
    (the worker's code computes another definition)."""

    name: str
    version: int
    spans: tuple[Interval, ...]  # in time order
    metric: MetricSpec | None
    lateness_ns: int  # its windows' allowed lateness: when its last ones may close
    problem: str | None = None

    @property
    def ident(self) -> tuple[str, int]:
        return self.name, self.version

    @property
    def end_ns(self) -> int | None:
        """Where its last span ends (None while it is open)."""
        return self.spans[-1][1]


class PlanSource(Protocol):
    """The catalog as a processor reads it."""

    def read(self, force: bool = False) -> Sequence[PlannedVersion] | None:
        """Every version of the stream's metrics with streaming spans; None when the stage
        history did not change since the last read that answered (and not ``force``)."""
        ...


def inside_spans(metric: MetricSpec, spans: Sequence[Interval], times_ns: np.ndarray
                 ) -> np.ndarray:
    """Which events (by event time) fall in windows of ``metric`` that ``spans`` cover."""
    starts = metric.windows.starts_ns(times_ns)
    inside = np.zeros(len(times_ns), dtype=bool)
    for start_ns, end_ns in spans:
        covered = starts >= start_ns
        if end_ns is not None:
            covered &= starts < end_ns
        inside |= covered
    return inside


def within_spans(metrics: Mapping[str, MetricSpec], spans: Mapping[str, Sequence[Interval]],
                 times_ns: np.ndarray, late: Mapping[str, np.ndarray]
                 ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per metric key: the events late for it that its spans cover (its dead letters), and
    the events it leaves out (late, or outside its spans). A key without spans covers
    every window."""
    late_inside: dict[str, np.ndarray] = {}
    skip: dict[str, np.ndarray] = {}
    first_ns, last_ns = (int(times_ns.min()), int(times_ns.max())) if len(times_ns) else (0, 0)
    for key, metric in metrics.items():
        flags = late.get(key)
        if key not in spans:
            if flags is not None:
                late_inside[key] = skip[key] = flags
            continue
        if covers_all(metric, spans[key], first_ns, last_ns):  # the common case: no mask
            if flags is not None:
                late_inside[key] = skip[key] = flags
            continue
        inside = inside_spans(metric, spans[key], times_ns)
        late_inside[key] = inside if flags is None else flags & inside
        skip[key] = ~inside if flags is None else flags | ~inside
    return late_inside, skip


def covers_all(metric: MetricSpec, spans: Sequence[Interval], first_ns: int, last_ns: int
               ) -> bool:
    """Whether one of ``spans`` covers the windows of every event time from ``first_ns``
    to ``last_ns``."""
    width = metric.windows.width_ns
    first, last = first_ns // width * width, last_ns // width * width
    return any(first >= start and (end is None or last < end) for start, end in spans)


def key_for(name: str, version: int, taken: Mapping[str, object]) -> str:
    """The key of a metric version in a processor's engines: its name, unless another
    version of it holds that key (the old one, until its windows close)."""
    return name if name not in taken else f"{name}@v{version}"
