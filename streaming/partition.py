"""One source partition's share of the streaming stage: partial states, offset, watermark.

Pure: no Kafka, no database. A worker keeps one :class:`PartitionState` per partition it
owns. Events arrive in offset order; each message offset is absorbed at most once (the
offset stored with the states says how far they go), and the event-time watermark is the
highest event time seen so far on the partition (advanced by wall clock while it is idle).

An event is *late* for a metric when its window ended, plus the metric's allowed
lateness, at or before the partition's *event watermark* before it. The watermark is not
simply the highest event time seen: one event from a device with a wrong clock would then
make every valid event after it late (an event stamped 20 hours ahead dropped a quarter
of a replay). It is the highest event time once the ``outliers`` highest are set aside
(the (outliers + 1)-th highest; :func:`running_watermarks`), and an event time counts at
most as the wall clock when it was absorbed (plus a lead, 0 unless a replay compressed in
time asks for one): a watermark never passes the wall clock, and a few events far ahead
of their partition do not move it. The rule looks at this
partition's events only (and the wall clock when they arrive), so a replay of events
from the past decides exactly the same way.

While a partition is idle, its *mark* (how far it lets windows close everywhere) follows
the wall clock instead, so a quiet partition does not hold every window open. Events it
receives after that are judged by their own event times as always, so nothing is lost to
a pause; but an event whose window (end plus lateness) its idle mark had passed when it
came is a *correction*, whether or not another worker has closed the window yet: it is
kept in a partial of its own (:attr:`PartitionState.corrections`, stored as such), which
a close merges into the window only after its first value. So a window's first value
(the one its alert rules judge) holds exactly what each partition absorbed before its
own mark passed the window — a fact stored with the partition's checkpoint — and never
depends on when another worker's tick came (the rebalance race: an idle partition that
resumed within a tick of a close was in the first value or in a correction by luck).
Once the idle mark passes a window, the partition's other partials of it are complete:
they are stored, and kept only in the database.
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
OUTLIERS = 2  # event times of a partition set aside by its watermark (see the docstring)
NO_TIME = np.iinfo(np.int64).min


@dataclass
class Checkpoint:
    """What is durably stored for a partition: how far its states go."""

    offset: int = NO_OFFSET
    watermark_ns: int | None = None  # the event watermark (see the module's docstring)
    events: int = 0
    idle_mark_ns: int | None = None  # how far it lets windows close (at least the above)
    top_ns: tuple[int, ...] = ()  # the highest event times absorbed (capped), descending

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
    events: int = 0
    idle_mark_ns: int | None = None
    outliers: int = OUTLIERS
    # the outliers + 1 highest event times absorbed (capped by the wall clock), descending
    top_ns: tuple[int, ...] = ()
    dirty: set[PartialKey] = field(default_factory=set)
    # partials whose rows are in the database (loaded or stored since): if one of them is
    # gone at the next store, a worker closed its window meanwhile (see state_store)
    stored_keys: set[PartialKey] = field(default_factory=set)
    # partials of events that came after the idle mark passed their window (see the module)
    corrections: set[PartialKey] = field(default_factory=set)
    moved: bool = False  # offset or watermark changed since the last store
    last_event_at: float = 0.0  # wall clock (monotonic) of the last message seen

    @classmethod
    def restore(cls, topic: str, partition: int,
                metrics: Iterable[MetricSpec] | Mapping[str, MetricSpec],
                checkpoint: Checkpoint, partials: Mapping[PartialKey, Partial],
                now: float, outliers: int = OUTLIERS,
                corrections: Iterable[PartialKey] = ()) -> PartitionState:
        """The stored state; ``corrections`` says which of ``partials`` are corrections."""
        engine = Engine(metrics)
        engine.partials.update(partials)
        top = checkpoint.top_ns
        if not top and checkpoint.watermark_ns is not None:  # stored before the top was
            top = (checkpoint.watermark_ns,) * (outliers + 1)
        state = cls(topic, partition, engine, checkpoint, checkpoint.offset,
                    checkpoint.events, checkpoint.idle_mark_ns, outliers,
                    top[:outliers + 1], stored_keys=set(partials),
                    corrections=set(corrections) & set(partials), last_event_at=now)
        state._let_go_of_complete()
        return state

    @property
    def metrics(self) -> dict[str, MetricSpec]:
        return self.engine.metrics

    def is_new(self, offset: int) -> bool:
        return offset > self.offset

    @property
    def watermark_ns(self) -> int | None:
        """The event watermark: the (outliers + 1)-th highest event time absorbed."""
        return self.top_ns[self.outliers] if len(self.top_ns) > self.outliers else None

    def late_for(self, events: pd.DataFrame, time: str, now_ns: int
                 ) -> dict[str, np.ndarray]:
        """Per metric, which of ``events`` (this partition's, in offset order, arriving
        when no watermark may pass ``now_ns``: the wall clock plus the lead) are late."""
        if events.empty:
            return {}
        times = _ns(events[time])
        before = running_watermarks(self.top_ns, np.minimum(times, now_ns), self.outliers)
        late = {}
        for name, metric in self.metrics.items():
            ends = metric.windows.starts_ns(times) + metric.windows.width_ns
            late[name] = ends + metric.lateness_ns <= before
        return late

    def absorb(self, events: pd.DataFrame, time: str, late: Mapping[str, np.ndarray],
               through_offset: int, now_ns: int) -> None:
        """Add this partition's events (offset order, arriving at wall clock ``now_ns``) to
        the states, except where ``late``; everything up to ``through_offset`` then counts
        as absorbed."""
        if not events.empty:
            after = self._after_idle_mark(events, time, late)
            if after:  # corrections (see the module): partials of their own
                self.dirty.update(self.engine.update(events, skip={
                    name: after[name] | late[name] if name in late else after[name]
                    for name in after}))
                correcting = self.engine.update(events, skip={
                    name: ~after[name] for name in self.metrics})
                self.dirty.update(correcting)
                self.corrections.update(correcting)
            else:
                self.dirty.update(self.engine.update(events, skip=late))
            self.top_ns = highest(self.top_ns, np.minimum(_ns(events[time]), now_ns),
                                  self.outliers + 1)
            self.events += len(events)
        if through_offset > self.offset:
            self.offset = through_offset
            self.moved = True

    def _after_idle_mark(self, events: pd.DataFrame, time: str,
                         late: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Per metric, which of ``events`` (not ``late``) are in windows the idle mark has
        passed; empty when there are none (the usual case: the idle mark is behind the
        event watermark, which makes such events late, or they are newer)."""
        idle = self.idle_mark_ns
        if idle is None or (self.watermark_ns is not None and idle <= self.watermark_ns):
            return {}
        times = _ns(events[time])
        if times.min() >= idle:
            return {}
        after = {}
        for name, metric in self.metrics.items():
            ends = metric.windows.starts_ns(times) + metric.windows.width_ns
            flags = ends + metric.lateness_ns <= idle
            if name in late:
                flags &= ~late[name]
            after[name] = flags
        return after if any(flags.any() for flags in after.values()) else {}

    @property
    def mark_ns(self) -> int | None:
        return mark(self.watermark_ns, self.idle_mark_ns)

    def advance_idle(self, now_ns: int, step_ns: int = IDLE_STEP_NS) -> bool:
        """Move the mark up to ``now_ns`` (the wall clock minus the idle timeout), in steps
        of at least ``step_ns`` so an idle partition is not rewritten every tick; not while
        it holds partials it has not stored (they were absorbed before the mark moved, and
        are kept apart from the corrections that may come after it)."""
        mark = self.mark_ns
        if self.dirty or (mark is not None and mark + step_ns > now_ns):
            return False
        self.idle_mark_ns = now_ns
        self.moved = True
        self._let_go_of_complete()
        return True

    def _let_go_of_complete(self) -> None:
        """Forget the partials (not corrections) of windows the idle mark passed: they are
        stored (the mark moves only when nothing is unstored) and complete (what comes for
        them now is a correction); the close reads them from the database."""
        if self.idle_mark_ns is None:
            return
        for name, metric in self.metrics.items():
            passed = self.idle_mark_ns - metric.lateness_ns - metric.windows.width_ns
            complete = [key for key in self.engine.partials if key[0] == name
                        and key[2] <= passed and key not in self.corrections]
            for key in complete:
                del self.engine.partials[key]
                self.stored_keys.discard(key)

    def stored(self) -> None:
        """The current states, offset and watermark are durable now."""
        self.checkpoint = Checkpoint(self.offset, self.watermark_ns, self.events,
                                     self.idle_mark_ns, self.top_ns)
        self.stored_keys |= self.dirty
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
            self.stored_keys.discard(key)
            self.corrections.discard(key)
        return len(gone)


def mark(watermark_ns: int | None, idle_mark_ns: int | None) -> int | None:
    """How far a partition lets windows close: its event watermark, or its idle mark when
    that is further (None before either exists)."""
    marks = [m for m in (watermark_ns, idle_mark_ns) if m is not None]
    return max(marks) if marks else None


def running_watermarks(top_ns: tuple[int, ...], times: np.ndarray, outliers: int
                       ) -> np.ndarray:
    """Before each of ``times`` (in arrival order), the (outliers + 1)-th highest of
    ``top_ns`` (the highest times before them, descending) and the times before it;
    :data:`NO_TIME` while there are not that many.

    Vectorised: the k-th highest after each time is the running maximum of
    min((k-1)-th highest before it, the time), level by level from the running maximum.

    >>> hour = 3_600 * 10**9
    >>> times = np.array([1, 2, 90, 3, 4, 5]) * hour   # one event 3 days ahead
    >>> (running_watermarks((), times, outliers=0) // hour).tolist()[1:]   # the plain max
    [1, 2, 90, 90, 90]
    >>> (running_watermarks((), times, outliers=2) // hour).tolist()[3:]   # not moved by it
    [1, 2, 3]
    """
    k = outliers + 1
    n = len(times)
    level_before = np.full(n + 1, np.iinfo(np.int64).max)  # the 0-th highest: no bound
    for index in range(k):
        start = top_ns[index] if index < len(top_ns) else NO_TIME
        after = np.maximum.accumulate(
            np.concatenate(([start], np.minimum(level_before[:-1], times))))
        level_before = after  # this level before each time (and after the last)
    return level_before[:-1]


def highest(top_ns: tuple[int, ...], times: np.ndarray, count: int) -> tuple[int, ...]:
    """The ``count`` highest of ``top_ns`` and ``times``, descending."""
    if not len(times):
        return top_ns
    candidates = np.concatenate((np.asarray(top_ns, dtype=np.int64), times))
    if len(candidates) > count:
        candidates = np.partition(candidates, len(candidates) - count)[-count:]
    return tuple(int(t) for t in np.sort(candidates)[::-1])


def in_offset_order(events: pd.DataFrame) -> pd.DataFrame:
    offsets = events[OFFSET].to_numpy()
    if len(offsets) < 2 or bool((np.diff(offsets) >= 0).all()):
        return events
    return events.iloc[np.argsort(offsets, kind="stable")]


def _ns(times: pd.Series) -> np.ndarray:
    return times.to_numpy(dtype="datetime64[ns]").view(np.int64)
