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
  letter with its reason; so is a prediction or label that can no longer be counted
  (below).
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

**Lateness.** A row is counted as long as the windows it can change are held, however
late it comes, and is a dead letter (reason ``late``, counted, saying which window was
forgotten and to raise the metric's lateness) once they are not: a prediction whose
window was forgotten, a label that could have joined a forgotten prediction or whose
every window was forgotten. Nothing is judged by a partition's own watermark or idle
mark: the store decides from what the forgetting close stored (how far it purged, the ids
and times of the predictions it forgot), read under the checkpoint locks that close
takes, so the outcome is the same whichever commits first — a prediction or label that
reaches an idle partition just before or just after another worker's tick forgot its
window is counted (before) or a dead letter (after), never held for nothing (see
:mod:`streaming.label_store`). The metric's lateness delays the first close (every
prediction partition past the window's end plus it) and the forgetting (every label
partition past the end plus the horizon plus it): raise it to count rows that come later.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from monitor.engine import Engine, FailedEvents
from monitor.label_join import id_problems, join_labels
from monitor.spec import MetricSpec, StreamSpec
from monitor.storage.records import DeadLetter, window_results
from monitor.targets import Target
from monitor.windows import utc_from_ns
from streaming.dead_letter_tally import DEAD_LETTER_WINDOW, DeadLetterTally
from streaming.held_rows import event_numbers, event_payloads, held_frame, id_text
from streaming.label_ports import (
    Forgotten,
    HeldLabel,
    HeldPrediction,
    HeldStore,
    HeldWindow,
    JoinCutoff,
    JoinMarks,
    MetricHeld,
    Refused,
    Valued,
)
from streaming.messages import LATE, OFFSET, PARTITION, RawMessage, Rejected, decode_messages
from streaming.partition import PartitionState, in_offset_order
from streaming.ports import AfterFinal, CheckpointConflict
from streaming.processor import (
    LOOK_INTERVAL_S,
    STAGE,
    Finalized,
    StreamSettings,
    event_lines,
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
        prepared = JoinPrepared(side, messages, {}, through, cap_ns, list(batch.rejected),
                                len(messages) - len(fresh))
        events = batch.events
        if side == LABELS and len(events):
            events, refused = self._refuse_bad_ids(events)
            prepared.rejected.extend(refused)
        # nothing is judged late here: the store does, from what it reads (see the module)
        for key, part in events.groupby(PARTITION, sort=True):
            prepared.events[int(key)] = in_offset_order(part)  # type: ignore[arg-type]
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

    def absorb(self, prepared: JoinPrepared) -> None:
        join_side = self.sides[prepared.side]
        for partition, offset in prepared.through.items():
            state = join_side.owned[partition]
            events = prepared.events.get(partition)
            if events is None:
                events = prepared_empty(join_side.stream)
            elif len(events):
                self._hold(prepared.side, events)
            state.absorb(events, join_side.stream.time, {}, offset, prepared.cap_ns)
        self._letters[prepared.side].add(prepared.rejected)

    def _hold(self, side: str, events: pd.DataFrame) -> None:
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
            held = self._held[name]
            if side == PREDICTIONS:
                starts = metric.windows.starts_ns(times)
                width = metric.windows.width_ns
                held.predictions.extend(
                    HeldPrediction(int(partitions[i]), int(offsets[i]), int(numbers[i]),
                                   ids[i], int(times[i]), int(starts[i]),
                                   int(starts[i]) + width, payloads[i])
                    for i in range(len(events)))
            else:
                held.labels.extend(
                    HeldLabel(int(partitions[i]), int(offsets[i]), int(numbers[i]),
                              ids[i] or "", int(times[i]), payloads[i])
                    for i in range(len(events)))

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
                                             refuse=self.refuse, after_final=self.after_final)
        for state in pending:
            state.stored()
        for tally in self._letters.values():
            tally.clear()
        self._held = self._nothing_held()
        for name, windows in revised.items():
            log.debug("%s: %d closed windows revised", name, windows)
        return len(pending)

    def refuse(self, forgotten: Sequence[Forgotten]) -> Refused:
        """The dead letters of rows a store found it can no longer count: one per event
        (naming every metric it is too late for), counted with the side's others."""
        reasons: dict[tuple[str, int, int, int], list[str]] = {}
        rows: dict[tuple[str, int, int, int], HeldPrediction | HeldLabel] = {}
        for item in forgotten:
            purged = _moment(item.purged_through)
            for prediction in item.predictions:
                key = (PREDICTIONS, prediction.partition, prediction.offset, prediction.event)
                rows[key] = prediction
                reasons.setdefault(key, []).append(
                    f"{item.metric.name}'s window {_moment(prediction.window_start_ns)} to "
                    f"{_moment(prediction.window_end_ns)} was forgotten (every window "
                    f"ending by {purged} was)")
            source = item.metric.labels
            assert source is not None
            for label in item.labels:
                key = (LABELS, label.partition, label.offset, label.event)
                rows[key] = label
                if label.time_ns + source.early_ns < pd.Timestamp(item.purged_through).value:
                    why = "every window it could join was forgotten"
                else:
                    why = f"a prediction {label.label_id!r} it could join was forgotten"
                reasons.setdefault(key, []).append(
                    f"{item.metric.name}: {why} (every window ending by {purged} was)")
        counts: dict[str, dict[tuple[datetime, datetime, str], int]] = {}
        samples: list[DeadLetter] = []
        for side_name, side in self.sides.items():
            letters = [Rejected(key[1], key[2], LATE,
                                "too late: " + "; ".join(reasons[key])
                                + "; raise the metric's lateness to keep windows longer",
                                self._event_json(side, rows[key]).encode())
                       for key in sorted(rows) if key[0] == side_name]
            if not letters:
                continue
            tally = DeadLetterTally(side.topic, lambda: self.wall_clock())
            tally.add(letters)
            counts[self.dead_letter_metrics[side_name]] = dict(tally.counts)
            # apart from the keys of the letters the same message had when decoded
            samples.extend(dataclasses.replace(sample, key=f"{sample.key}/forgotten")
                           for sample in tally.samples)
        return Refused(counts, samples)

    @staticmethod
    def _event_json(side: JoinSide, row: HeldPrediction | HeldLabel) -> str:
        fields = json.loads(row.payload)
        fields[side.stream.time] = _moment(row.time_ns)
        return json.dumps(fields, sort_keys=True)

    # -- valuing ---------------------------------------------------------------------

    def value(self, metric: MetricSpec, window: HeldWindow) -> Valued:
        """A window's stored results from its held predictions and labels: the join and
        the computation research does; and, as dead letters, the predictions a per-event
        function failed on (left out of that metric, as in the plain path)."""
        source = metric.labels
        assert source is not None
        predictions = held_frame(metric.stream.schema, window.predictions)
        labels = held_frame(source.stream.schema, window.labels)
        joined = join_labels(predictions, labels, source.rule(metric.stream.time))
        engine = Engine([metric])
        engine.update(joined.events)
        results = window_results(metric, engine.partials)
        failed = engine.take_failed()
        if not failed:
            return Valued(results)
        hour = self.wall_clock().floor(DEAD_LETTER_WINDOW)
        return Valued(results, self._failed_letters(window, joined.events, failed),
                      self.dead_letter_metrics[PREDICTIONS],
                      (hour.to_pydatetime(), (hour + DEAD_LETTER_WINDOW).to_pydatetime()))

    def _failed_letters(self, window: HeldWindow, events: pd.DataFrame,
                        failed: Sequence[FailedEvents]) -> list[DeadLetter]:
        """A dead letter per held prediction and metric a per-event function failed on:
        the joined event (with its label) as payload, keyed by the metric and the held
        prediction (its time and fields), which valuing the window again gives again
        whatever label has joined since."""
        topic = self.sides[PREDICTIONS].topic
        letters = []
        for f in failed:
            for row, problem, record in zip(f.rows.tolist(), f.problems,
                                            event_lines(events, f.rows), strict=True):
                time_ns, payload = window.predictions[row]
                held = hashlib.blake2b(f"{time_ns}\n{payload}".encode(), digest_size=12)
                letters.append(DeadLetter(
                    f"stream:{topic}", f"{f.reason}: {problem}", record,
                    key=f"{topic}/{f.metric}/{held.hexdigest()}"))
        return letters

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


def _moment(moment: int | datetime) -> str:
    """A time (ns or a datetime) as ISO 8601 UTC, to the nanosecond when it has them."""
    stamp = pd.Timestamp(moment, tz="UTC") if isinstance(moment, int) else pd.Timestamp(moment)
    return stamp.isoformat().replace("+00:00", "Z")


def _micros(ns: int) -> int:
    return ns - ns % 1000  # the database keeps microseconds
