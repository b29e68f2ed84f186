"""The streaming stage of metrics joined to labels, without Kafka: prediction and label
messages in, stored values out, revised as labels land.

The design is the one :mod:`monitor.label_join` sets out ("How streaming will reuse
this"). A window cannot be valued from what one worker has seen, because labels keep
coming for a horizon after it closes, and from other partitions. So this processor
keeps no window state in memory: it only *holds* rows, and values windows from the
database with :func:`monitor.label_join.join_labels`, the function research and batch
use.

- **Holding.** Each micro-batch of predictions or labels is decoded and validated against
  its stream; its rows are held (:class:`~streaming.label_ports.HeldStore`) in the
  transaction that stores the checkpoints (offset, watermark) of the partitions it came
  from, so a replayed message (at or below the stored offset) is skipped and nothing is
  held twice. A label with a null or empty id, or a value its schema refuses, is a dead
  letter with its reason; so is a late prediction or label (below).
- **Closing.** A window closes when every prediction partition's mark has passed its end
  plus the metric's lateness, as in :mod:`streaming.processor`: it is valued from its held
  predictions and the held labels with their ids, and stored (its label coverage tells
  how far its labels came). Its rows stay held.
- **Revising.** A prediction or a label that lands for a closed window makes the store
  that holds it value the window again from everything held and upsert it, in the same
  transaction (the rule picks the same label whatever the arrival order, so a duplicate
  or a redelivered label cannot count twice).
- **Forgetting.** Once every label partition's mark has passed a window's end plus the
  horizon plus the lateness, no label can change it: its predictions are deleted, and the
  labels stamped too early for any window left. Rows held are bounded by the horizon.

**Partitions.** Predictions and labels of one id may come from different partitions of
different topics, owned by different workers; nothing needs them co-partitioned. A
worker never looks for the counterpart of a row in memory: windows are valued from the
database, with every row held before the valuing transaction (the store's locks make the
closing transaction and the revising stores take turns, see
:mod:`streaming.label_store`), so two workers cannot both miss each other's rows, after
a rebalance or a replay either. Each source's checkpoints are kept apart from the plain
stream processor's (:func:`join_sources`), so both can read the prediction topic.

**Lateness.** A prediction is late when its window's end plus the lateness is at or
before its partition's watermark before it (as in :mod:`streaming.partition`). A label
is late when the earliest window it could join (the one holding ``label time -
horizon``) ended, plus the horizon and the lateness, at or before its partition's
watermark: that window may have been forgotten already. Give label streams that arrive
out of order a lateness that covers it. A label or prediction that reaches a partition
only after the partition was advanced by the clock (idle) may find its window forgotten:
it is then held and forgotten at the next purge, without changing any value.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from monitor.engine import Engine
from monitor.label_join import id_problems, join_labels
from monitor.spec import MetricSpec, StreamSpec
from monitor.storage.records import WindowResult, window_results
from monitor.targets import Target
from monitor.windows import utc_from_ns
from streaming.dead_letter_tally import DeadLetterTally
from streaming.held_rows import event_numbers, event_payloads, held_frame, id_text
from streaming.label_ports import (
    HeldLabel,
    HeldPrediction,
    HeldStore,
    HeldWindow,
    JoinCutoff,
    JoinMarks,
    MetricHeld,
)
from streaming.messages import OFFSET, PARTITION, RawMessage, Rejected, decode_messages
from streaming.partition import PartitionState, in_offset_order, running_watermarks
from streaming.ports import AfterFinal, CheckpointConflict
from streaming.processor import (
    LOOK_INTERVAL_S,
    STAGE,
    Finalized,
    StreamSettings,
    late_letters,
    prepared_empty,
)

log = logging.getLogger(__name__)

PREDICTIONS = "predictions"
LABELS = "labels"
NO_ID = "no_id"  # a dead letter's reason: a label whose id is null or empty
JOIN_DEAD_LETTERS = ".label_join.dead_letters"  # STREAM + this counts what the join refused


def join_sources(prediction_topic: str, label_topic: str) -> tuple[str, str]:
    """The names the join's checkpoints are stored under, for its prediction partitions
    and its label partitions: apart from the plain processor's, which uses the topic."""
    return (f"{prediction_topic} predictions joined to {label_topic}",
            f"{label_topic} labels joined to {prediction_topic}")


@dataclass
class JoinSide:
    name: str  # PREDICTIONS or LABELS
    stream: StreamSpec
    topic: str
    source: str  # the checkpoints' name (join_sources)
    partitions: int
    owned: dict[int, PartitionState] = field(default_factory=dict)


@dataclass
class JoinPrepared:
    """A micro-batch of one side decided but not yet applied."""

    side: str
    messages: Sequence[RawMessage]
    events: dict[int, pd.DataFrame]  # per partition, in offset order
    late: dict[int, dict[str, np.ndarray]]
    through: dict[int, int]
    cap_ns: int
    rejected: list[Rejected] = field(default_factory=list)
    skipped: int = 0


class LabelJoinProcessor:
    """The metrics of one prediction stream joined to one label stream (see the module)."""

    def __init__(self, store: HeldStore, predictions: StreamSpec, labels: StreamSpec,
                 prediction_partitions: int, label_partitions: int,
                 targets: Sequence[Target], settings: StreamSettings | None = None, *,
                 after_final: AfterFinal | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], pd.Timestamp] = lambda: pd.Timestamp.now(tz="UTC"),
                 ) -> None:
        for t in targets:
            source = t.metric.labels
            if t.metric.stream.name != predictions.name or source is None \
                    or source.stream.name != labels.name:
                raise ValueError(f"metric {t.metric.name!r} is not one of stream "
                                 f"{predictions.name!r} joined to labels of {labels.name!r}")
        if predictions.topic is None or labels.topic is None:
            raise ValueError("both streams of a label join need their topic")
        sources = join_sources(predictions.topic, labels.topic)
        self.sides = {
            PREDICTIONS: JoinSide(PREDICTIONS, predictions, predictions.topic, sources[0],
                                  prediction_partitions),
            LABELS: JoinSide(LABELS, labels, labels.topic, sources[1], label_partitions),
        }
        self.held_store = store
        self.targets = {t.metric.name: (t.metric, t.version) for t in targets}
        self.settings = settings or StreamSettings()
        self.after_final = after_final
        self.clock = clock
        self.wall_clock = wall_clock
        # Apart from the plain processor's STREAM.dead_letters: both may read one topic.
        self.dead_letter_metrics = {name: f"{side.stream.name}{JOIN_DEAD_LETTERS}"
                                    for name, side in self.sides.items()}
        self._letters = {name: DeadLetterTally(side.topic, lambda: self.wall_clock())
                         for name, side in self.sides.items()}
        self._held = self._nothing_held()
        self._in_flight = False
        self._backlog_until = 0.0
        self._looked_at = -math.inf
        self._looked_marks: tuple[int | None, ...] = ()

    @property
    def metrics(self) -> list[MetricSpec]:
        return [metric for metric, _ in self.targets.values()]

    @property
    def sources(self) -> list[str]:
        return [side.source for side in self.sides.values()]

    def _nothing_held(self) -> dict[str, MetricHeld]:
        return {name: MetricHeld(metric, version)
                for name, (metric, version) in self.targets.items()}

    # -- ownership -----------------------------------------------------------------------

    def assign(self, side: str, partitions: Iterable[int]) -> None:
        """Load the stored checkpoints of partitions of ``side`` this worker now owns."""
        join_side = self.sides[side]
        stored = self.held_store.load_checkpoints(join_side.source, partitions)
        now = self.clock()
        for partition, checkpoint in stored.items():
            log.info("%s[%d] (%s of a label join): resuming after offset %d", join_side.topic,
                     partition, side, checkpoint.offset)
            join_side.owned[partition] = PartitionState.restore(
                join_side.source, partition, [], checkpoint, {}, now,
                self.settings.watermark_outliers)

    def revoke(self, side: str, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self.sides[side].owned.pop(partition, None)

    def _state(self, side: JoinSide, partition: int) -> PartitionState:
        state = side.owned.get(partition)
        if state is None:
            self.assign(side.name, [partition])
            state = side.owned[partition]
        return state

    # -- micro-batches -------------------------------------------------------------------

    def note_backlog(self) -> None:
        self._backlog_until = self.clock() + self.settings.idle_timeout_s

    def prepare(self, side: str, messages: Sequence[RawMessage]) -> JoinPrepared:
        join_side = self.sides[side]
        now = self.clock()
        self._in_flight = True
        fresh = []
        through: dict[int, int] = {}
        for message in messages:
            state = self._state(join_side, message.partition)
            state.last_event_at = now
            if state.is_new(message.offset):
                fresh.append(message)
                through[message.partition] = max(through.get(message.partition, -1),
                                                  message.offset)
        wall = self.wall_clock()
        batch = decode_messages(fresh, join_side.stream.schema,
                                max_bytes=self.settings.max_message_bytes,
                                max_time=wall + pd.Timedelta(seconds=self.settings.max_future_s))
        cap_ns = wall.value + int(self.settings.watermark_lead_s * 1e9)
        prepared = JoinPrepared(side, messages, {}, {}, through, cap_ns, list(batch.rejected),
                                len(messages) - len(fresh))
        events = batch.events
        if side == LABELS and len(events):
            events, refused = self._refuse_bad_ids(events)
            prepared.rejected.extend(refused)
        time_field = join_side.stream.time
        for key, part in events.groupby(PARTITION, sort=True):
            partition = int(key)  # type: ignore[arg-type]
            part = in_offset_order(part)
            late = self._late(side, join_side.owned[partition], part[time_field], cap_ns)
            prepared.events[partition] = part
            prepared.late[partition] = late
            prepared.rejected.extend(late_letters(part, late))
        return prepared

    def _refuse_bad_ids(self, events: pd.DataFrame) -> tuple[pd.DataFrame, list[Rejected]]:
        """Labels whose id (in any metric's id column) is null or empty, as dead letters."""
        columns = sorted({metric.labels.label_id for metric in self.metrics
                          if metric.labels is not None})
        reasons = pd.Series(None, index=events.index, dtype=object)
        for column in columns:
            found = id_problems(events[column])
            reasons = reasons.where(reasons.notna(), found)
        bad = reasons.notna().to_numpy()
        if not bad.any():
            return events, []
        records = events[bad].drop(columns=[PARTITION, OFFSET]).to_json(
            orient="records", lines=True, date_format="iso").splitlines()
        refused = [Rejected(int(p), int(o), NO_ID, str(reason), record.encode())
                   for p, o, reason, record in zip(events[PARTITION][bad].tolist(),
                                                   events[OFFSET][bad].tolist(),
                                                   reasons[bad].tolist(), records, strict=True)]
        return events[~bad], refused

    def _late(self, side: str, state: PartitionState, times: pd.Series, cap_ns: int
              ) -> dict[str, np.ndarray]:
        """Per metric, which events are late (see the module)."""
        ns = times.to_numpy(dtype="datetime64[ns]").view(np.int64)
        before = running_watermarks(state.top_ns, np.minimum(ns, cap_ns), state.outliers)
        late = {}
        for name, metric in self.targets.items():
            spec = metric[0]
            width = spec.windows.width_ns
            if side == PREDICTIONS:
                ends = spec.windows.starts_ns(ns) + width
                late[name] = ends + spec.lateness_ns <= before
            else:
                assert spec.labels is not None
                horizon = spec.labels.horizon_ns
                ends = spec.windows.starts_ns(ns - horizon) + width
                late[name] = ends + horizon + spec.lateness_ns <= before
        return late

    def absorb(self, prepared: JoinPrepared) -> None:
        join_side = self.sides[prepared.side]
        for partition, offset in prepared.through.items():
            state = join_side.owned[partition]
            events = prepared.events.get(partition)
            if events is None:
                events = prepared_empty(join_side.stream)
            elif len(events):
                self._hold(prepared.side, events, prepared.late.get(partition, {}))
            state.absorb(events, join_side.stream.time, {}, offset, prepared.cap_ns)
        self._letters[prepared.side].add(prepared.rejected)

    def _hold(self, side: str, events: pd.DataFrame, late: dict[str, np.ndarray]) -> None:
        """Add one partition's events (offset order) to what the next store holds."""
        stream = self.sides[side].stream
        times, payloads = event_payloads(events, stream.schema)
        partitions = events[PARTITION].to_numpy()
        offsets = events[OFFSET].to_numpy()
        numbers = event_numbers(partitions, offsets)
        ids_of: dict[str, list[str | None]] = {}
        for name, (metric, _) in self.targets.items():
            source = metric.labels
            assert source is not None
            column = source.prediction_id if side == PREDICTIONS else source.label_id
            if column not in ids_of:
                ids_of[column] = id_text(events[column])
            ids = ids_of[column]
            keep = np.flatnonzero(~late[name]) if name in late else np.arange(len(events))
            held = self._held[name]
            if side == PREDICTIONS:
                starts = metric.windows.starts_ns(times)
                width = metric.windows.width_ns
                held.predictions.extend(
                    HeldPrediction(int(partitions[i]), int(offsets[i]), int(numbers[i]),
                                   ids[i], int(times[i]), int(starts[i]),
                                   int(starts[i]) + width, payloads[i])
                    for i in keep.tolist())
            else:
                held.labels.extend(
                    HeldLabel(int(partitions[i]), int(offsets[i]), int(numbers[i]),
                              ids[i] or "", int(times[i]), payloads[i])
                    for i in keep.tolist())

    def handle(self, side: str, messages: Sequence[RawMessage]) -> JoinPrepared:
        """prepare, absorb and store in one go."""
        prepared = self.prepare(side, messages)
        self.absorb(prepared)
        return self.store_or_reload(prepared)

    def store_or_reload(self, prepared: JoinPrepared, attempts: int = 3) -> JoinPrepared:
        """:meth:`store`; on a conflict, reload the partitions and apply the batch again."""
        for _ in range(attempts):
            try:
                self.store()
                self._done(prepared)
                return prepared
            except CheckpointConflict as err:
                log.warning("%s; reloading its stored state", err)
                self.reload()
                prepared = self.prepare(prepared.side, prepared.messages)
                self.absorb(prepared)
        self.store()
        self._done(prepared)
        return prepared

    def reload(self) -> None:
        """Forget what is not stored: reload every owned partition's checkpoint."""
        for letters in self._letters.values():
            letters.clear()
        self._held = self._nothing_held()
        for name, side in self.sides.items():
            self.assign(name, list(side.owned))
        self._in_flight = False

    def _done(self, prepared: JoinPrepared) -> None:
        now = self.clock()
        owned = self.sides[prepared.side].owned
        for partition in {m.partition for m in prepared.messages}:
            if partition in owned:
                owned[partition].last_event_at = now
        self._in_flight = False

    def store(self) -> int:
        """Hold what was absorbed since the last store, with the checkpoints, in one
        transaction (revising the closed windows it touches); partitions written."""
        pending = [state for side in self.sides.values()
                   for _, state in sorted(side.owned.items()) if state.needs_store]
        held = [h for h in self._held.values() if h.predictions or h.labels]
        letters = [tally for tally in self._letters.values() if tally]
        if not pending and not held and not letters:
            return 0
        counts = {self.dead_letter_metrics[name]: dict(tally.counts)
                  for name, tally in self._letters.items() if tally.counts}
        samples = [sample for tally in self._letters.values() for sample in tally.samples]
        revised = self.held_store.store_held(pending, held, self.value, stage=STAGE,
                                             counts=counts, samples=samples,
                                             after_final=self.after_final)
        for state in pending:
            state.stored()
        for tally in self._letters.values():
            tally.clear()
        self._held = self._nothing_held()
        for name, windows in revised.items():
            log.debug("%s: %d closed windows revised", name, windows)
        return len(pending)

    # -- valuing ---------------------------------------------------------------------

    def value(self, metric: MetricSpec, window: HeldWindow) -> list[WindowResult]:
        """A window's stored results from its held predictions and labels: the join and
        the computation research does."""
        source = metric.labels
        assert source is not None
        predictions = held_frame(metric.stream.schema, window.predictions)
        labels = held_frame(source.stream.schema, window.labels)
        joined = join_labels(predictions, labels, source.rule(metric.stream.time))
        engine = Engine([metric])
        engine.update(joined.events)
        return window_results(metric, engine.partials)

    # -- the clock -----------------------------------------------------------------------

    def tick(self) -> list[Finalized]:
        """Advance idle partitions, store, close the windows every prediction partition
        passed and forget those every label partition passed by the horizon."""
        idle_ns = int(self.settings.idle_timeout_s * 1e9)
        now = self.clock()
        wall_ns = self.wall_clock().value
        if not self._in_flight and now >= self._backlog_until:
            for side in self.sides.values():
                for state in side.owned.values():
                    if now - state.last_event_at >= self.settings.idle_timeout_s:
                        state.advance_idle(wall_ns - idle_ns)
        self.store()
        marks = tuple(state.mark_ns for side in self.sides.values()
                      for _, state in sorted(side.owned.items()))
        if marks == self._looked_marks and now - self._looked_at < LOOK_INTERVAL_S:
            return []
        self._looked_marks, self._looked_at = marks, now
        return self.finalize()

    def finalize(self) -> list[Finalized]:
        if not self._due(self.held_store.marks(self.sources, self.targets)):
            return []
        closed = self.held_store.close(self.sources, self.targets, self._due, self.value,
                                       STAGE, self.after_final)
        return [Finalized(name, results) for name, results in closed.items()]

    def _due(self, marks: JoinMarks) -> dict[str, JoinCutoff]:
        """Per metric version with windows to close or to forget, its cutoffs."""
        predictions_low = _lowest(marks, self.sides[PREDICTIONS])
        labels_low = _lowest(marks, self.sides[LABELS])
        if predictions_low is None:
            return {}
        due = {}
        for name, (metric, version) in self.targets.items():
            assert metric.labels is not None
            close_ns = _micros(predictions_low - metric.lateness_ns)
            first = marks.earliest_open_ends.get((name, version))
            close_due = first is not None and pd.Timestamp(first).value <= close_ns
            purge_ns = None
            if labels_low is not None:
                passed = labels_low - metric.labels.horizon_ns - metric.lateness_ns
                purge_ns = int(metric.windows.starts_ns(np.array([min(passed, close_ns)]))[0])
                progress = marks.progress.get((name, version))
                purged = None if progress is None else progress.purged_through
                if purged is not None and purge_ns <= pd.Timestamp(purged).value:
                    purge_ns = None
            if close_due or purge_ns is not None:
                due[name] = JoinCutoff(
                    metric, version, utc_from_ns(close_ns),
                    None if purge_ns is None else utc_from_ns(purge_ns),
                    None if purge_ns is None else purge_ns - metric.labels.early_ns)
        return due


def _lowest(marks: JoinMarks, side: JoinSide) -> int | None:
    """The lowest mark of a side's partitions; None while one of them has none."""
    stored = marks.checkpoints.get(side.source, {})
    found = [stored[p].mark_ns if p in stored else None for p in range(side.partitions)]
    if any(mark is None for mark in found):
        return None
    return min(mark for mark in found if mark is not None)


def _micros(ns: int) -> int:
    return ns - ns % 1000  # the database keeps microseconds
