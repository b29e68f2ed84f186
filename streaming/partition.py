"""One source partition's share of the streaming stage: partial states, offset, watermark.

Pure: no Kafka, no database. A worker keeps one :class:`PartitionState` per partition it
owns. Events arrive in offset order; each message offset is absorbed at most once (the
offset stored with the states says how far they go), and the event-time watermark is the
highest event time seen so far on the partition (advanced by wall clock while it is idle).

An event is *late* for a metric when its window ended, plus the metric's allowed
lateness, at or before the highest event time of the partition before it. The rule looks
at this partition's events only, so replaying the partition decides exactly the same way.

While a partition is idle, its *mark* (how far it lets windows close everywhere) follows
the wall clock instead, so a quiet partition does not hold every window open. Events it
receives after that are judged by their own event times as always; if their window was
closed in the meantime, their partial is merged into the stored window later (a
correction), so nothing is lost to a pause.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from monitor.engine import Engine, Partial, PartialKey
from monitor.spec import MetricSpec
from streaming.messages import OFFSET

NO_OFFSET = -1
IDLE_STEP_NS = 1_000_000_000


@dataclass
class Checkpoint:
    """What is durably stored for a partition: how far its states go."""

    offset: int = NO_OFFSET
    watermark_ns: int | None = None  # the highest event time absorbed
    events: int = 0
    idle_mark_ns: int | None = None  # how far it lets windows close (at least the above)

    @property
    def mark_ns(self) -> int | None:
        return mark(self.watermark_ns, self.idle_mark_ns)


@dataclass
class PartitionState:
    topic: str
    partition: int
    engine: Engine
    checkpoint: Checkpoint = field(default_factory=Checkpoint)  # as stored
    offset: int = NO_OFFSET  # highest offset absorbed in memory
    watermark_ns: int | None = None  # highest event time absorbed
    events: int = 0
    idle_mark_ns: int | None = None
    dirty: set[PartialKey] = field(default_factory=set)
    moved: bool = False  # offset or watermark changed since the last store
    last_event_at: float = 0.0  # wall clock (monotonic) of the last message seen

    @classmethod
    def restore(cls, topic: str, partition: int, metrics: Iterable[MetricSpec],
                checkpoint: Checkpoint, partials: Mapping[PartialKey, Partial],
                now: float) -> PartitionState:
        engine = Engine(metrics)
        engine.partials.update(partials)
        return cls(topic, partition, engine, checkpoint, checkpoint.offset,
                   checkpoint.watermark_ns, checkpoint.events, checkpoint.idle_mark_ns,
                   last_event_at=now)

    @property
    def metrics(self) -> dict[str, MetricSpec]:
        return self.engine.metrics

    def is_new(self, offset: int) -> bool:
        return offset > self.offset

    def late_for(self, events: pd.DataFrame, time: str) -> dict[str, np.ndarray]:
        """Per metric, which of ``events`` (this partition's, in offset order) are late."""
        if events.empty:
            return {}
        times = _ns(events[time])
        floor = np.iinfo(np.int64).min if self.watermark_ns is None else self.watermark_ns
        before = np.maximum.accumulate(np.concatenate(([floor], times)))[:-1]
        late = {}
        for name, metric in self.metrics.items():
            ends = metric.windows.starts_ns(times) + metric.windows.width_ns
            late[name] = ends + metric.lateness_ns <= before
        return late

    def absorb(self, events: pd.DataFrame, time: str, late: Mapping[str, np.ndarray],
               through_offset: int) -> None:
        """Add this partition's events (offset order) to the states, except where ``late``;
        everything up to ``through_offset`` then counts as absorbed."""
        if not events.empty:
            self.dirty.update(self.engine.update(events, skip=late))
            top = int(_ns(events[time]).max())
            self.watermark_ns = top if self.watermark_ns is None else max(self.watermark_ns,
                                                                          top)
            self.events += len(events)
        if through_offset > self.offset:
            self.offset = through_offset
            self.moved = True

    @property
    def mark_ns(self) -> int | None:
        return mark(self.watermark_ns, self.idle_mark_ns)

    def advance_idle(self, now_ns: int, step_ns: int = IDLE_STEP_NS) -> bool:
        """Move the mark up to ``now_ns`` (the wall clock minus the idle timeout), in steps
        of at least ``step_ns`` so an idle partition is not rewritten every tick."""
        mark = self.mark_ns
        if mark is not None and mark + step_ns > now_ns:
            return False
        self.idle_mark_ns = now_ns
        self.moved = True
        return True

    def stored(self) -> None:
        """The current states, offset and watermark are durable now."""
        self.checkpoint = Checkpoint(self.offset, self.watermark_ns, self.events,
                                     self.idle_mark_ns)
        self.dirty.clear()
        self.moved = False

    @property
    def needs_store(self) -> bool:
        return self.moved or bool(self.dirty)

    def evict(self, metric: str, until_ns: int) -> int:
        """Forget ``metric``'s partials of windows that end by ``until_ns`` (they are final)."""
        width = self.metrics[metric].windows.width_ns
        gone = [key for key in self.engine.partials
                if key[0] == metric and key[2] + width <= until_ns]
        for key in gone:
            del self.engine.partials[key]
            self.dirty.discard(key)
        return len(gone)


def mark(watermark_ns: int | None, idle_mark_ns: int | None) -> int | None:
    """How far a partition lets windows close: its event watermark, or its idle mark when
    that is further (None before either exists)."""
    marks = [m for m in (watermark_ns, idle_mark_ns) if m is not None]
    return max(marks) if marks else None


def in_offset_order(events: pd.DataFrame) -> pd.DataFrame:
    offsets = events[OFFSET].to_numpy()
    if len(offsets) < 2 or bool((np.diff(offsets) >= 0).all()):
        return events
    return events.iloc[np.argsort(offsets, kind="stable")]


def _ns(times: pd.Series) -> np.ndarray:
    return times.to_numpy(dtype="datetime64[ns]").view(np.int64)
