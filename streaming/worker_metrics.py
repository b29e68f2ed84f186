"""A worker's health and figures: what ``/healthz``, ``/readyz`` and ``/metrics`` serve.

The counters come from the processors' processes (see :mod:`streaming.figures` for how
and why over the pipe); the per-partition gauges are computed when scraped, against the
wall clock, so a partition whose watermark stops moving shows a lag that grows.

*Watermark* here is the one the database stores for the partition (``stream_checkpoints.
watermark``, what ``monitor stream status`` shows): how far the partition lets windows
close, i.e. its event watermark, or the wall clock minus the idle timeout while it has no
messages. So an idle partition lags by about the idle timeout and is not "behind", while
a worker that cannot keep up lags more and more (idle partitions do not advance while the
consumer is behind). The lag in messages needs the broker's end offsets, which the
embedded broker (Tansu) reports wrongly (DESIGN.md): it is served only when asked for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from streaming.figures import Figures, PartitionMarks

# /healthz fails when the worker's event loop has not beaten for this long (it beats every
# HEARTBEAT_S; Faust's own loop stalls beyond a few seconds only when something is wrong).
HEARTBEAT_S = 1.0
LOOP_STALE_S = 30.0
# Store calls take milliseconds to seconds; an outage retry shows in the top buckets.
STORE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str | None
    lags: Mapping[tuple[str, int], float | None]  # per (topic, partition), None: no mark yet

    def as_json(self, ready_lag_s: float) -> dict[str, Any]:
        return {"ready": self.ready, "reason": self.reason, "ready_lag_s": ready_lag_s,
                "partitions": [{"topic": topic, "partition": partition, "lag_s": lag}
                               for (topic, partition), lag in sorted(self.lags.items())]}


@dataclass
class _Partition:
    marks: PartitionMarks
    moved_at: float  # wall clock when this worker saw the watermark move (or loaded it)


class WorkerHealth:
    """One worker's registry (its own, not prometheus_client's global one) and probes.

    ``ready_lag_s``: /readyz answers 503 while a partition's lag is larger.
    ``offset_lag``: also serve the lag in messages, from the consumer's high-water marks
    (only on brokers that report them right: not Tansu).
    """

    def __init__(self, ready_lag_s: float, *, offset_lag: bool = False,
                 wall_clock: Callable[[], float] = time.time,
                 loop_stale_s: float = LOOP_STALE_S) -> None:
        if ready_lag_s <= 0:
            raise ValueError(f"ready_lag_s must be more than 0, not {ready_lag_s}")
        self.ready_lag_s = ready_lag_s
        self.offset_lag = offset_lag
        self.wall_clock = wall_clock
        self.loop_stale_s = loop_stale_s
        self._lock = threading.Lock()  # figures arrive on the processors' caller threads
        self._partitions: dict[str, dict[int, _Partition]] = {}
        self._highwaters: dict[tuple[str, int], int] = {}
        self._assigned: int | None = None  # partitions the last rebalance gave (None: none yet)
        self._problems: dict[str, list[str]] = {}  # per topic: versions it cannot compute
        self._beat = wall_clock()
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # process_start_time_seconds: restarts
        PlatformCollector(registry=self.registry)
        self.absorbed = Counter(
            "monitor_events_absorbed", "Events absorbed into the stored states (committed "
            "with their partition's offset; replays skipped by offset are not counted).",
            ["topic", "partition"], registry=self.registry)
        self.dead_letters = Counter(
            "monitor_dead_letters", "Messages or events set aside as dead letters, by "
            "reason (committed with the offset; as the STREAM.dead_letters metric counts).",
            ["topic", "reason"], registry=self.registry)
        self.windows_closed = Counter(
            "monitor_windows_closed", "Windows whose final values this worker stored "
            "(corrections of a closed window included).", ["topic", "metric"],
            registry=self.registry)
        self.store_seconds = Histogram(
            "monitor_store_seconds", "Duration of the processor's database transactions: "
            "load (a partition assigned), store (a micro-batch or a tick), marks (a look "
            "for windows to close), close (closing windows). Failed ones included.",
            ["topic", "operation"], buckets=STORE_BUCKETS, registry=self.registry)
        self.processor_starts = Counter(
            "monitor_processor_starts", "Processor processes this worker started. A "
            "processor that dies ends its worker (exit code 3), so restarts are the "
            "supervisor's: they show as process_start_time_seconds changing.", ["topic"],
            registry=self.registry)
        self.registry.register(_PartitionCollector(self))

    # -- what the worker reports ---------------------------------------------------------

    def processor_sink(self, topic: str) -> Callable[[Figures], None]:
        """Where a newly started processor of ``topic`` sends its figures (counted as a
        start)."""
        self.processor_starts.labels(topic).inc()
        return lambda figures: self.record(topic, figures)

    def record(self, topic: str, figures: Figures) -> None:
        for partition, events in figures.absorbed.items():
            self.absorbed.labels(topic, str(partition)).inc(events)
        for reason, count in figures.dead_letters.items():
            self.dead_letters.labels(topic, reason).inc(count)
        for metric, windows in figures.windows_closed.items():
            self.windows_closed.labels(topic, metric).inc(windows)
        for operation, seconds in figures.store_seconds:
            self.store_seconds.labels(topic, operation).observe(seconds)
        if figures.partitions is not None:
            self._update_partitions(topic, figures.partitions)
        if figures.problems is not None:
            with self._lock:
                self._problems[topic] = figures.problems

    def _update_partitions(self, topic: str, now_owned: Mapping[int, PartitionMarks]) -> None:
        now = self.wall_clock()
        with self._lock:
            before = self._partitions.get(topic, {})
            current = {}
            for partition, marks in now_owned.items():
                seen = before.get(partition)
                if seen is None or seen.marks.mark_ns != marks.mark_ns:
                    seen = _Partition(marks, now)
                current[partition] = _Partition(marks, seen.moved_at)
            self._partitions[topic] = current

    def beat(self) -> None:
        """The event loop is alive (called on it every HEARTBEAT_S)."""
        self._beat = self.wall_clock()

    def note_highwaters(self, highwaters: Mapping[tuple[str, int], int]) -> None:
        with self._lock:
            self._highwaters = dict(highwaters)

    # -- the probes ------------------------------------------------------------------------

    def liveness(self) -> tuple[bool, str | None]:
        silent = self.wall_clock() - self._beat
        if silent > self.loop_stale_s:
            return False, f"the event loop has not run for {silent:.0f} s"
        return True, None

    def note_assignment(self, partitions: int) -> None:
        """The group's last rebalance assigned this worker ``partitions`` partitions (0: a
        standby)."""
        self._assigned = partitions

    def readiness(self) -> Readiness:
        lags = self.lags()
        with self._lock:
            problems = [p for found in self._problems.values() for p in found]
        if problems:  # a metric in streaming that nobody computes here: its windows wait
            return Readiness(False, "; ".join(problems), lags)
        if not lags:
            if self._assigned == 0:  # more workers than partitions: ready to take some over
                return Readiness(True, "a standby: the group assigned this worker no "
                                 "partitions", lags)
            return Readiness(False, "no partitions assigned", lags)
        unmarked = [tp for tp, lag in sorted(lags.items()) if lag is None]
        if unmarked:
            return Readiness(False, f"no watermark yet for {_names(unmarked)} (a partition "
                             "without messages gets one after the idle timeout)", lags)
        behind = sorted((tp for tp, lag in lags.items()
                         if lag is not None and lag > self.ready_lag_s),
                        key=lambda tp: -(lags[tp] or 0.0))
        if behind:
            worst = lags[behind[0]] or 0.0
            return Readiness(False, f"{_names(behind)} behind by more than "
                             f"{self.ready_lag_s:g} s (the furthest {worst:.0f} s)", lags)
        return Readiness(True, None, lags)

    def lags(self) -> dict[tuple[str, int], float | None]:
        """Per owned (topic, partition): wall clock minus its stored watermark, seconds."""
        now = self.wall_clock()
        return {tp: None if p.marks.mark_ns is None else now - p.marks.mark_ns / 1e9
                for tp, p in self._owned()}

    def _owned(self) -> Iterator[tuple[tuple[str, int], _Partition]]:
        with self._lock:
            found = [((topic, partition), state)
                     for topic, partitions in sorted(self._partitions.items())
                     for partition, state in sorted(partitions.items())]
        yield from found

    def owned(self) -> list[tuple[str, int]]:
        return [tp for tp, _ in self._owned()]

    def offset_lags(self) -> dict[tuple[str, int], int]:
        """Messages after the stored offset, per owned partition whose high-water mark
        is known (empty unless ``offset_lag``)."""
        if not self.offset_lag:
            return {}
        with self._lock:
            highwaters = dict(self._highwaters)
        return {tp: offset_lag(highwaters[tp], p.marks.offset) for tp, p in self._owned()
                if tp in highwaters}


def offset_lag(highwater: int, stored_offset: int) -> int:
    """Messages not yet stored: the high-water mark is the offset the next message gets,
    and everything up to ``stored_offset`` is stored (-1: nothing)."""
    return max(highwater - stored_offset - 1, 0)


def _names(partitions: list[tuple[str, int]]) -> str:
    return ", ".join(f"{topic}[{partition}]" for topic, partition in partitions)


class _PartitionCollector(Collector):
    """The per-partition gauges, computed at each scrape."""

    def __init__(self, health: WorkerHealth) -> None:
        self.health = health

    def collect(self) -> Iterator[GaugeMetricFamily]:
        health = self.health
        now = health.wall_clock()
        labels = ["topic", "partition"]
        owned = GaugeMetricFamily(
            "monitor_partitions_owned", "Partitions this worker owns.", labels=["topic"])
        watermark = GaugeMetricFamily(
            "monitor_partition_watermark_timestamp_seconds", "The partition's stored "
            "watermark (Unix time): its event watermark, or the wall clock minus the idle "
            "timeout while it has no messages.", labels=labels)
        lag = GaugeMetricFamily(
            "monitor_partition_lag_seconds", "Event-time lag: the wall clock minus the "
            "partition's stored watermark (about the idle timeout when it is idle).",
            labels=labels)
        age = GaugeMetricFamily(
            "monitor_partition_watermark_age_seconds", "Seconds since the partition's stored "
            "watermark last moved (or since this worker loaded it).", labels=labels)
        offset = GaugeMetricFamily(
            "monitor_partition_stored_offset", "The highest offset stored (-1: none).",
            labels=labels)
        per_topic: dict[str, int] = {}
        for (topic, partition), state in health._owned():
            key = [topic, str(partition)]
            per_topic[topic] = per_topic.get(topic, 0) + 1
            offset.add_metric(key, state.marks.offset)
            age.add_metric(key, now - state.moved_at)
            if state.marks.mark_ns is not None:
                watermark.add_metric(key, state.marks.mark_ns / 1e9)
                lag.add_metric(key, now - state.marks.mark_ns / 1e9)
        for topic, count in sorted(per_topic.items()):
            owned.add_metric([topic], count)
        ready = GaugeMetricFamily("monitor_ready", "1 when /readyz answers 200.")
        ready.add_metric([], 1.0 if health.readiness().ready else 0.0)
        yield from (owned, watermark, lag, age, offset, ready)
        if health.offset_lag:
            messages = GaugeMetricFamily(
                "monitor_partition_lag_messages", "Messages after the stored offset, from "
                "the consumer's high-water mark. Served with --offset-lag only: right on "
                "Kafka, wrong on the embedded broker (Tansu), whose end offsets are wrong.",
                labels=labels)
            for (topic, partition), count in sorted(health.offset_lags().items()):
                messages.add_metric([topic, str(partition)], count)
            yield messages
