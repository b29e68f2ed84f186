"""The streaming stage for one stream, without Kafka: messages in, stored values out.

The Faust worker (:mod:`streaming.worker`) feeds it micro-batches of raw messages and
calls :meth:`StreamProcessor.tick` on a timer; tests can drive it directly. For each
micro-batch:

1. :meth:`~StreamProcessor.prepare` skips messages at or below each partition's absorbed
   offset (replays after a crash or a rebalance), decodes and validates the rest, and
   decides which events are late. It changes nothing, so the worker can first deliver the
   dead letters to their topic;
2. :meth:`~StreamProcessor.absorb` adds the good events to the per-partition states;
3. :meth:`~StreamProcessor.store` writes every changed partial, the partitions' offsets
   and watermarks, and the dead-letter counts in one transaction. Only then does the
   worker acknowledge the messages, so Kafka's committed offset never runs ahead of the
   database.

:meth:`~StreamProcessor.tick` advances idle partitions' watermarks by wall clock and
finalizes: a window whose end plus lateness every partition's stored watermark has
passed gets the merge of its partials stored as the streaming value (one transaction
with the removal of the partials and the alert evaluation hook).

The processor keeps its states through two ports (:mod:`streaming.ports`): a
:class:`~streaming.ports.PartitionStore` and a :class:`~streaming.ports.WindowSink`, both
implemented over the results database by :class:`streaming.sql_store.SqlStreamStore`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from metrics.expectations import BOOKKEEPING_PREFIX, UNKNOWN_FIELDS
from monitor.engine import FailedEvents
from monitor.spec import MetricSpec, StreamSpec
from monitor.stage_switch import COMMIT_WITHIN
from monitor.storage.outages import describe_error, is_outage
from monitor.storage.records import WindowResult
from monitor.targets import Target
from monitor.windows import utc_from_ns
from streaming.codec import MAX_MESSAGE_BYTES
from streaming.dead_letter_tally import DeadLetterTally
from streaming.messages import (
    LATE,
    OFFSET,
    PARTITION,
    DecodedBatch,
    RawMessage,
    Rejected,
    decode_messages,
    fresh_only,
)
from streaming.partition import OUTLIERS, PartitionState, in_offset_order
from streaming.plan import Interval, PlannedVersion, PlanSource, key_for, within_spans
from streaming.ports import (
    AfterFinal,
    CheckpointConflict,
    Cutoff,
    Marks,
    PartitionStore,
    StoredPartition,
    StreamStore,
    WindowSink,
)
from streaming.raw_on_demand import positions

log = logging.getLogger(__name__)

STAGE = "streaming"
UNSTORABLE = "unstorable"  # a dead letter's reason: the database refused to store it


@dataclass(frozen=True)
class StreamSettings:
    idle_timeout_s: float = 10.0  # a partition without messages this long advances by clock
    # Events further ahead of the wall clock are dead-lettered: a device clock may be a few
    # minutes off; an event stamped further ahead is more likely wrong than early. (Was a
    # day: such events then made valid ones late, see streaming.partition.)
    max_future_s: float = 900.0
    max_message_bytes: int = MAX_MESSAGE_BYTES
    # the highest event times of a partition that its watermark sets aside (see
    # streaming.partition): so many devices with wrong clocks cannot make valid events late
    watermark_outliers: int = OUTLIERS
    # How far a partition's watermark may run ahead of the wall clock: 0, so devices whose
    # clocks run fast cannot close a window that is still filling; a replay compressed in
    # time (the demo's) runs ahead on purpose and needs more.
    watermark_lead_s: float = 0.0
    # How often the catalog is read for stage changes (see streaming.plan), and the switch
    # lead (MONITOR_SWITCH_LEAD): a change applies from the first window boundary at least
    # that long after it, and the processor absorbs nothing that far past its last read.
    lifecycle_poll_s: float = 5.0
    switch_lead_s: float = 900.0

    def __post_init__(self) -> None:
        if self.watermark_lead_s < 0:
            raise ValueError(f"watermark_lead_s must be 0 or more, not {self.watermark_lead_s}")
        if self.watermark_outliers < 0:
            raise ValueError(f"watermark_outliers must be 0 or more, not "
                             f"{self.watermark_outliers}")


LOOK_INTERVAL_S = 1.0  # see StreamProcessor._worth_a_look


@dataclass
class Prepared:
    """A micro-batch decided but not yet applied."""

    messages: Sequence[RawMessage]
    events: dict[int, pd.DataFrame]  # per partition, in offset order
    late: dict[int, dict[str, np.ndarray]]  # what each metric leaves out: late, or outside
    # its streaming spans (streaming.plan)
    through: dict[int, int]  # per partition, the highest offset of the batch
    cap_ns: int  # no watermark passes it: the wall clock when prepared, plus the lead
    rejected: list[Rejected] = field(default_factory=list)
    skipped: int = 0  # messages at or below the stored offsets
    # Events a metric's per-event function failed on (monitor.engine.derive), found as
    # they are absorbed: dead letters counted and sampled with the batch's store, then
    # sent to the topic after it (at most once, as the messages the database refused)
    failed: list[Rejected] = field(default_factory=list)


@dataclass
class Finalized:
    metric: str
    windows: list[WindowResult]


class StreamProcessor:
    def __init__(self, store: StreamStore, stream: StreamSpec, topic: str, partitions: int,
                 targets: Sequence[Target], settings: StreamSettings | None = None, *,
                 after_final: AfterFinal | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], pd.Timestamp] = lambda: pd.Timestamp.now(tz="UTC"),
                 plan_source: PlanSource | None = None) -> None:
        if any(t.metric.stream.name != stream.name for t in targets):
            raise ValueError(f"every metric of a processor reads stream {stream.name!r}")
        self.partition_store: PartitionStore = store
        self.window_sink: WindowSink = store
        self.stream = stream
        self.topic = topic
        self.partitions = partitions
        self.targets = {t.metric.name: (t.metric, t.version) for t in targets}
        self.versions = {name: version for name, (_, version) in self.targets.items()}
        self.settings = settings or StreamSettings()
        self.after_final = after_final
        self.clock = clock
        self.wall_clock = wall_clock
        self.owned: dict[int, PartitionState] = {}
        self.dead_letter_metric = f"{stream.name}.dead_letters"
        self._letters = DeadLetterTally(topic, lambda: self.wall_clock())
        # A micro-batch prepared and not yet stored (the Faust worker's lock keeps ticks
        # out of that span; a caller driving the processor itself may tick inside it).
        self._in_flight = False
        self._backlog_until = 0.0  # monotonic time until which the consumer counts as behind
        self._looked_at = -math.inf  # when tick last looked for windows to close...
        self._looked_marks: tuple[int | None, ...] = ()  # ...and the owned marks then
        # Following the catalog (streaming.plan): without a plan source, the targets are
        # computed for every window. Keys are the engines' (a name, or name@vN).
        self.plan_source = plan_source
        self.spans: dict[str, tuple[Interval, ...]] = {}
        self.unservable: dict[tuple[str, int], str] = {}  # versions it cannot compute
        self._horizon_ns: int | None = None  # no event at or after it before a new read
        self._read_at = -math.inf  # monotonic time of the last read of the catalog
        if plan_source is not None and self.settings.max_future_s > self.settings.switch_lead_s:
            raise ValueError(
                f"max_future_s ({self.settings.max_future_s:g}) may not exceed switch_lead_s "
                f"({self.settings.switch_lead_s:g}): a stage change could not be seen before "
                "the events its boundary applies to")

    @property
    def metrics(self) -> list[MetricSpec]:
        return [metric for metric, _ in self.targets.values()]

    @property
    def keyed_metrics(self) -> dict[str, MetricSpec]:
        """The metrics under their keys in the engines (see :func:`streaming.plan.key_for`)."""
        return {key: metric for key, (metric, _) in self.targets.items()}

    # -- ownership -----------------------------------------------------------------------

    def assign(self, partitions: Iterable[int]) -> None:
        """Load the stored states of partitions this worker now owns."""
        stored = self.partition_store.load_partitions(self.topic, partitions, self.targets)
        for partition, found in stored.items():
            self.owned[partition] = self._restore(partition, found)

    def revoke(self, partitions: Iterable[int]) -> None:
        """Forget partitions another worker owns now (their states are stored)."""
        for partition in partitions:
            self.owned.pop(partition, None)

    def _restore(self, partition: int, stored: StoredPartition) -> PartitionState:
        checkpoint, partials, corrections = stored
        log.info("%s[%d]: resuming after offset %d with %d open partial states",
                 self.topic, partition, checkpoint.offset, len(partials))
        return PartitionState.restore(self.topic, partition, self.keyed_metrics, checkpoint,
                                      partials, self.clock(), self.settings.watermark_outliers,
                                      corrections)

    def _state(self, partition: int) -> PartitionState:
        state = self.owned.get(partition)
        if state is None:  # a message before the assignment callback: load it now
            self.assign([partition])
            state = self.owned[partition]
        return state

    # -- micro-batches -------------------------------------------------------------------

    def note_backlog(self) -> None:
        """The consumer is behind (its last micro-batch was full): a partition missing from
        the batches now is waiting in line, not idle, until the backlog is gone."""
        self._backlog_until = self.clock() + self.settings.idle_timeout_s

    def prepare(self, messages: Sequence[RawMessage], decoded: DecodedBatch | None = None,
                marked: bool = False) -> Prepared:
        """Decide a micro-batch (changing nothing). ``decoded``: all of ``messages``
        decoded already (the head by the Faust process, see :mod:`streaming.pre_decode`,
        the rest by the processor's, :mod:`streaming.split_decode`), with the
        unknown-fields mark if ``marked``; the replays' events and rejects are dropped
        from it, and it is decoded again from ``messages`` if it lacks a mark wanted now.
        Only the messages' positions are read otherwise: ``messages`` may be a
        :class:`~streaming.raw_on_demand.RawOnDemand`, whose bytes are fetched when read."""
        now = self.clock()
        self._in_flight = True
        fresh: list[int] = []  # indices in messages
        through: dict[int, int] = {}
        absorbed: dict[int, int] = {}  # per partition of the batch, its absorbed offset
        # Positions only: the messages' bytes are fetched (streaming.raw_on_demand) only if
        # they are decoded here.
        for index, (partition, offset) in enumerate(positions(messages)):
            state = self._state(partition)
            state.last_event_at = now
            absorbed.setdefault(partition, state.offset)
            if state.is_new(offset):
                fresh.append(index)
                through[partition] = max(through.get(partition, -1), offset)
        wall = self.wall_clock()
        max_time = wall + pd.Timedelta(seconds=self.settings.max_future_s)
        mark = self.wants_unknown_mark
        if decoded is None or (mark and not marked):
            raw = list(messages)
            batch = decode_messages([raw[index] for index in fresh], self.stream.schema,
                                    max_bytes=self.settings.max_message_bytes,
                                    max_time=max_time, mark_unknown=mark)
        else:
            batch = fresh_only(decoded, absorbed)
            if not mark and UNKNOWN_FIELDS in batch.events.columns:
                batch = DecodedBatch(batch.events.drop(columns=UNKNOWN_FIELDS), batch.rejected)
        cap_ns = wall.value + int(self.settings.watermark_lead_s * 1e9)
        prepared = Prepared(messages, {}, {}, through, cap_ns, list(batch.rejected),
                            len(messages) - len(fresh))
        time_field = self.stream.time
        if not batch.events.empty:
            self._before_absorbing(int(batch.events[time_field].max().value))
        for key, events in batch.events.groupby(PARTITION, sort=True):
            partition = int(key)  # type: ignore[arg-type]
            events = in_offset_order(events)
            late = skip = self.owned[partition].late_for(events, time_field, cap_ns)
            if self.spans:
                late, skip = within_spans(self.keyed_metrics, self.spans,
                                          _times_ns(events[time_field]), late)
            prepared.events[partition] = events
            prepared.late[partition] = skip
            prepared.rejected.extend(late_letters(events, late))
        return prepared

    @property
    def wants_unknown_mark(self) -> bool:
        """Whether a metric judges unknown fields (decoding marks them only then)."""
        return any(m.aggregate.judges_unknown_fields() for m in self.metrics)

    def absorb(self, prepared: Prepared) -> None:
        failed: list[Rejected] = []
        for partition, offset in prepared.through.items():
            state = self.owned[partition]
            events = prepared.events.get(partition)
            if events is None:
                events = prepared_empty(self.stream)
            state.absorb(events, self.stream.time, prepared.late.get(partition, {}), offset,
                         prepared.cap_ns)
            failed += failed_letters(events, state.engine.take_failed())
        prepared.failed = failed
        # one call: a message's letters are numbered in one order on every replay
        self._letters.add([*prepared.rejected, *failed])

    def handle(self, messages: Sequence[RawMessage]) -> Prepared:
        """prepare, absorb and store in one go (no dead-letter topic in between)."""
        prepared = self.prepare(messages)
        self.absorb(prepared)
        return self.store_or_reload(prepared)

    def store_or_reload(self, prepared: Prepared, attempts: int = 3) -> Prepared:
        """:meth:`store`; on a conflict, reload the partitions and apply the batch again."""
        for _ in range(attempts):
            try:
                self.store()
                self._done(prepared)
                return prepared
            except CheckpointConflict as err:
                log.warning("%s; reloading its stored state", err)
                self._letters.clear()
                self.assign(list(self.owned))
                prepared = self.prepare(prepared.messages)
                self.absorb(prepared)
        self.store()
        self._done(prepared)
        return prepared

    def store_isolating(self, prepared: Prepared) -> list[Rejected]:
        """Store ``prepared`` after its store failed with an error that waiting cannot
        cure, setting aside the messages the database refuses: their dead letters
        (reason :data:`UNSTORABLE`), which are counted and sampled like any other.

        Without this, one value the database cannot hold stalled its partition forever:
        every retry of the micro-batch failed the same way. The states are reloaded, then
        the messages are stored in halves, then quarters... down to single messages. A
        message is refused only if storing it alone fails while storing its place without
        it (its offset, its dead letter) succeeds; when that fails too the problem is not
        the message, and the error is raised with the stored state reloaded (the caller
        retries; :meth:`prepare` again first).
        """
        self.reload()
        refused: list[Rejected] = []
        self._store_halving(list(prepared.messages), refused)
        self._done(prepared)
        return refused

    def _store_halving(self, messages: list[RawMessage], refused: list[Rejected]) -> None:
        try:
            self.handle(messages)
            return
        except Exception as err:
            if is_outage(err):
                raise
            self.reload()
            if len(messages) > 1:
                half = len(messages) // 2
                self._store_halving(messages[:half], refused)
                self._store_halving(messages[half:], refused)
                return
            error = err
        [message] = messages
        letter = Rejected(message.partition, message.offset, UNSTORABLE,
                          f"the database refused to store it: {describe_error(error)}",
                          message.value or b"", message.key)
        instead = Prepared([message], {}, {}, {message.partition: message.offset},
                           self.wall_clock().value, [letter])
        self.absorb(instead)
        try:
            self.store_or_reload(instead)
        except Exception:
            self.reload()
            raise error from None
        log.error("%s[%d]: offset %d set aside: %s", self.topic, message.partition,
                  message.offset, letter.detail)
        refused.append(letter)

    def reload(self) -> None:
        """Forget what is not stored: reload every owned partition's stored state."""
        self._letters.clear()
        self.assign(list(self.owned))
        self._in_flight = False

    def _done(self, prepared: Prepared) -> None:
        """A micro-batch is stored. Its partitions were busy, not idle, until now."""
        now = self.clock()
        for partition in {partition for partition, _ in positions(prepared.messages)}:
            if partition in self.owned:
                self.owned[partition].last_event_at = now
        self._in_flight = False

    def store(self) -> int:
        """Write what changed since the last store in one transaction; partitions written."""
        # In partition order: two transactions locking checkpoint rows in the same order
        # cannot deadlock.
        pending = [s for _, s in sorted(self.owned.items()) if s.needs_store]
        if not pending and not self._letters:
            return 0
        self.partition_store.store_partitions(
            pending, self.versions, count_metric=self.dead_letter_metric, stage=STAGE,
            counts=dict(self._letters.counts), samples=self._letters.samples)
        for state in pending:
            state.stored()
        self._letters.clear()
        return len(pending)

    # -- the clock -----------------------------------------------------------------------

    def tick(self) -> list[Finalized]:
        """Advance idle partitions, store, and finalize the windows every partition passed."""
        idle_ns = int(self.settings.idle_timeout_s * 1e9)
        now = self.clock()
        wall_ns = self.wall_clock().value
        # While a micro-batch is in flight or the consumer is behind, a partition that sent
        # nothing lately may just be queued: advancing it by the clock would close windows
        # before its events arrive (they would come in later as corrections, and alerts
        # would judge incomplete windows). Idleness is judged only when the worker keeps up.
        if not self._in_flight and now >= self._backlog_until:
            for state in self.owned.values():
                if now - state.last_event_at >= self.settings.idle_timeout_s:
                    state.advance_idle(wall_ns - idle_ns)
        self.store()
        if (self.plan_source is not None and not self._in_flight
                and now - self._read_at >= self.settings.lifecycle_poll_s):
            self.follow()
        if not self._worth_a_look(now):
            return []
        return self.finalize()

    def _worth_a_look(self, now: float) -> bool:
        """Whether this tick should look for windows to close: when a mark of this worker
        moved since the last look (the worker whose partition passes a window last is the
        one that sees it close), else once every LOOK_INTERVAL_S in case another worker's
        look failed. Each look is two queries, ten times a second otherwise.

        While the consumer is behind (see :meth:`note_backlog`) its marks move with every
        micro-batch, and looking after each closed about one window at a time: in
        bench/stream.py (a backlog of 1-minute windows) closing took a sixth of the
        processor's time, mostly the closing transaction's fixed queries (marks, the
        alerts' bookkeeping). Behind, it looks once every LOOK_INTERVAL_S and closes
        what is due by then together: the same windows and values, a second later at most
        — a worker that is behind stores them late anyway. Once it keeps up, it looks
        whenever a mark moves, as before, so the close delay is unchanged."""
        marks = tuple(state.mark_ns for _, state in sorted(self.owned.items()))
        if ((marks == self._looked_marks or now < self._backlog_until)
                and now - self._looked_at < LOOK_INTERVAL_S):
            return False
        self._looked_marks, self._looked_at = marks, now
        return True

    def finalize(self) -> list[Finalized]:
        """Store the windows every partition has passed. A cheap look first (the marks and
        each metric's earliest open window): most ticks close nothing, and the closing
        transaction locks the checkpoints that every worker's store updates."""
        marks = self.window_sink.marks(self.topic)
        self._retire_finished(marks)
        if not self._due(marks):
            return []
        due_cutoffs: dict[str, int] = {}

        def due(marks: Marks) -> dict[str, Cutoff]:  # asked with the marks locked
            due_cutoffs.update(self._due(marks))
            return {name: Cutoff(*self.targets[name], utc_from_ns(cutoff_ns))
                    for name, cutoff_ns in due_cutoffs.items()}

        closed = self.window_sink.close_windows(self.topic, due, STAGE, self.after_final)
        finalized = [Finalized(name, results) for name, results in closed.items()]
        for item in finalized:  # committed: what was closed is counted in the database
            for state in self.owned.values():
                state.evict(item.metric, due_cutoffs[item.metric])
        return finalized

    def _due(self, stored: Marks) -> dict[str, int]:
        """Per metric with a window to close, the cutoff (window ends at or before it are
        final); forgets in memory what is final already."""
        checkpoints = stored.checkpoints
        marks = [checkpoints[p].mark_ns if p in checkpoints else None
                 for p in range(self.partitions)]
        if any(mark is None for mark in marks):
            return {}
        low = min(mark for mark in marks if mark is not None)
        earliest = stored.earliest_open_ends
        due = {}
        for name, (metric, version) in self.targets.items():
            cutoff_ns = low - metric.lateness_ns
            cutoff_ns -= cutoff_ns % 1000  # the database keeps microseconds
            first = earliest.get((metric.name, version))
            first_ns = None if first is None else pd.Timestamp(first).value
            if first_ns is not None and first_ns <= cutoff_ns:
                due[name] = cutoff_ns
            # Windows ending before the earliest stored partial were closed (by any
            # worker): their states here are counted already. The others wait for their
            # closing transaction, which deletes their stored partials.
            below = cutoff_ns if first_ns is None else min(cutoff_ns, first_ns - 1)
            for state in self.owned.values():
                state.evict(name, below)
        return due

    # -- following the catalog (see streaming.plan) ----------------------------------------

    def follow(self, force: bool = False) -> None:
        """Read the catalog (the whole plan only when the stage history changed, or with
        ``force``) and apply it; the horizon moves to this read's start plus the lead, less
        the time a change may take to commit (:data:`monitor.stage_switch.COMMIT_WITHIN`)."""
        if self.plan_source is None:
            return
        started_ns = self.wall_clock().value
        planned = self.plan_source.read(force or self._horizon_ns is None)
        if planned is not None:
            self.apply_plan(planned)
        self._horizon_ns = (started_ns + int(self.settings.switch_lead_s * 1e9)
                            - COMMIT_WITHIN.value)
        self._read_at = self.clock()

    def _before_absorbing(self, latest_ns: int) -> None:
        """The exactly-once guard: an event at or after the horizon may belong to a change
        this processor has not seen; read the catalog first."""
        if self.plan_source is not None and (self._horizon_ns is None
                                             or latest_ns >= self._horizon_ns):
            self.follow()

    def apply_plan(self, planned: Sequence[PlannedVersion]) -> None:
        """Add the versions whose spans are new here, move the ends of the others' (a
        version leaves once its windows are closed: :meth:`_retire_finished`)."""
        running = {(metric.name, version): key
                   for key, (metric, version) in self.targets.items()}
        finished: Marks | None = None
        unservable = {}
        for item in planned:
            key = running.get(item.ident)
            if key is not None:
                if self.spans.get(key) != item.spans:
                    log.info("%s: %s version %d now streams windows %s", self.topic,
                             item.name, item.version, describe_spans(item.spans))
                self.spans[key] = item.spans
                continue
            if item.end_ns is not None:  # ended: only if its last windows are still open
                finished = finished or self.window_sink.marks(self.topic)
                if self._is_finished(item.name, item.version, item.end_ns, item.lateness_ns,
                                     finished):
                    continue
            if item.metric is None:
                unservable[item.ident] = item.problem or "cannot be computed here"
                if item.ident not in self.unservable:
                    log.error("%s: %s", self.topic, unservable[item.ident])
                continue
            self._add(item, item.metric)
        self.unservable = unservable

    def _add(self, item: PlannedVersion, metric: MetricSpec) -> None:
        """Start computing a version: its states as stored (another worker may have
        absorbed for it on partitions this one owns now), else empty."""
        key = key_for(item.name, item.version, self.targets)
        target = {key: (metric, item.version)}
        stored = self.partition_store.load_partitions(self.topic, list(self.owned), target)
        self.targets[key] = (metric, item.version)
        self.versions[key] = item.version
        self.spans[key] = item.spans
        for partition, state in self.owned.items():
            state.engine.metrics[key] = metric
            partials = stored[partition].partials if partition in stored else {}
            state.engine.partials.update(partials)
            state.stored_keys |= set(partials)
        log.info("%s: streaming %s version %d for windows %s", self.topic, item.name,
                 item.version, describe_spans(item.spans))

    def _retire_finished(self, marks: Marks) -> None:
        """Let go of the versions whose spans ended and whose windows are all closed."""
        for key, (metric, version) in list(self.targets.items()):
            spans = self.spans.get(key)
            end_ns = spans[-1][1] if spans else None
            if end_ns is None or not self._is_finished(metric.name, version, end_ns,
                                                       metric.lateness_ns, marks):
                continue
            if any(k[0] == key for state in self.owned.values() for k in state.engine.partials):
                continue  # closed in the database, not yet evicted here: next look
            for state in self.owned.values():
                del state.engine.metrics[key]
            del self.targets[key], self.versions[key], self.spans[key]
            log.info("%s: %s version %d stopped: its windows before %s are closed",
                     self.topic, metric.name, version, utc_from_ns(end_ns))

    def _is_finished(self, name: str, version: int, end_ns: int, lateness_ns: int,
                     marks: Marks) -> bool:
        """Whether every window of a version before ``end_ns`` is closed: every partition
        has passed it (plus the metric's lateness) and none of its partials is stored."""
        checkpoints = marks.checkpoints
        known = [checkpoints[p].mark_ns for p in range(self.partitions) if p in checkpoints]
        if len(known) < self.partitions or any(mark is None for mark in known):
            return False
        low = min(mark for mark in known if mark is not None)
        return (low - lateness_ns >= end_ns
                and (name, version) not in marks.earliest_open_ends)


def describe_spans(spans: Sequence[Interval]) -> str:
    return ", ".join(f"from {utc_from_ns(start):%Y-%m-%d %H:%M:%S}"
                     + ("" if end is None else f" until {utc_from_ns(end):%Y-%m-%d %H:%M:%S}")
                     for start, end in spans)


def _times_ns(times: pd.Series) -> np.ndarray:
    return times.to_numpy(dtype="datetime64[ns]").view(np.int64)


def prepared_empty(stream: StreamSpec) -> pd.DataFrame:
    return pd.DataFrame({stream.time: pd.Series(dtype="datetime64[ns, UTC]"),
                         OFFSET: pd.Series(dtype=np.int64)})


def event_lines(events: pd.DataFrame, rows: np.ndarray) -> list[str]:
    """The JSON lines of some of ``events`` as a dead letter keeps them: their fields,
    without the columns the worker adds (partition, offset, the unknown-fields mark)."""
    bookkeeping = [c for c in events.columns if str(c).startswith(BOOKKEEPING_PREFIX)]
    return events.iloc[rows].drop(columns=bookkeeping).to_json(
        orient="records", lines=True, date_format="iso").splitlines()


def failed_letters(events: pd.DataFrame, failed: Sequence[FailedEvents]) -> list[Rejected]:
    """The events per-event functions failed on (positions in ``events``) as dead letters,
    one per event and metric, the reason naming the metric."""
    if not failed:
        return []
    partitions = events[PARTITION].to_numpy()
    offsets = events[OFFSET].to_numpy()
    letters = []
    for f in failed:
        records = event_lines(events, f.rows)
        letters += [Rejected(int(partitions[row]), int(offsets[row]), f.reason, problem,
                             record.encode())
                    for row, problem, record in zip(f.rows.tolist(), f.problems, records,
                                                    strict=True)]
    return letters


def late_letters(events: pd.DataFrame, late: dict[str, np.ndarray]) -> list[Rejected]:
    if not late:
        return []
    names = list(late)
    matrix = np.column_stack([late[n] for n in names])
    rows = np.flatnonzero(matrix.any(axis=1))
    if not len(rows):
        return []
    partitions = events[PARTITION].to_numpy()
    offsets = events[OFFSET].to_numpy()
    records = event_lines(events, rows)
    return [
        Rejected(int(partitions[row]), int(offsets[row]), LATE,
                 "too late for the closed window of "
                 + ", ".join(n for n, flags in zip(names, matrix[row], strict=True) if flags),
                 record.encode())
        for row, record in zip(rows.tolist(), records, strict=True)
    ]
