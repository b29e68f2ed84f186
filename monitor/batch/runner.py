"""The batch stage: closed windows of a metric computed from its source and stored.

A run covers whole windows ``[since, until)`` less those streaming counts for the metric's
version (:mod:`monitor.batch.handover`): a window belongs to one stage, and the stage that
computes it announces its alerts. A run that reaches the boundary from which streaming
counts every window ends the batch stage's alerts of the version there (a firing one
resolved, with a note that streaming judges the windows from the boundary on).

A run goes through its windows in slices of a few windows; each slice is read from the
source (time filter pushed down), validated, computed by the same engine as research, and
written — values and states of every window of the slice, the rows it rejected as dead
letters, and its run recorded as succeeded — in one transaction, shared by the metrics
computed together (a commit per slice, not per metric and slice; should it fail other
than by an outage, each metric's slice is stored alone, so one metric's store error does
not undo the others'). A failure leaves no
partial window: the slice's transaction never commits, its run is recorded as failed with
the error, and the next run starts again from the last slice that succeeded (the
watermark). The metric's alert rules are evaluated on each slice in that same transaction
(see :mod:`monitor.alerts.evaluate`), so a stored window has been evaluated exactly once.
Where the source reads outside Python (Postgres' columnar read, Parquet), the next slice is
read on a thread of its own while one is computed and stored
(:mod:`monitor.batch.read_ahead`); a read's error is its own slice's.

Faults (see :class:`Retry`): a database outage, of the results or of the source database,
is waited out — every write of the run, the records of a slice's start and failure
included — so a short restart of Postgres costs the run a pause, not its end. A store error
that waiting cannot cure (a value the database cannot hold, a schema that does not match)
fails the metric at once, with the reason. A slice that fails for a reason of its own (its
source, a metric's code) is tried a few times.

Abandoned runs: a run starts by closing its metrics' runs still recorded as ``running``, as
failed with the error "abandoned: ...". A metric is run by one process at a time (the
scheduler runs each metric's job once at a time), so such a row was left by a run that
died, or lost the database for longer than it would wait, before it could record its end.
(Should a manual ``monitor batch run`` of a metric run alongside the scheduler's after
all, the other run's own end still overwrites its row: only the record is touched.)

The events a metric's per-event function fails on (see :func:`monitor.engine.derive`) are
left out of that metric and stored as dead letters as refused rows are, the reason naming
the metric and what the function did.

Dead letters are keyed by their row, so a retry or a rerun stores each once: the key is
the SHA-256 of the row as read (its columns as JSON) and how many identical rows came
before it in the slice. Identical rows share their event time, so they fall in the same
slice whatever the range of the run, and the same row read again gets the same key. (A
primary key would do too, but sources are tables, queries and files, and a stream's
schema names no key.) A line of an event file that does not parse at all (see
:class:`~monitor.batch.sources.UnparsedRows`) is keyed by where it is, ``file:line``, and
the SHA-256 of its excerpt, so the same line read again gets the same key; having no event
time, it is stored with the first slice of a run (the rule of
:class:`~monitor.batch.sources.FileSource`), so every run offers it again, and it is
stored once.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Protocol, TypeVar

import numpy as np
import pandas as pd
from tqdm import tqdm

from monitor.batch import handover
from monitor.batch.read_ahead import ReadAhead, reads_ahead
from monitor.batch.slice_states import StateSource, failed_payloads, rejected_payloads
from monitor.batch.sources import EventSource, UnparsedRows
from monitor.engine import Engine
from monitor.errors import MonitorError
from monitor.label_join import id_problems, join_labels
from monitor.labels import LabelSource
from monitor.partials import Partial, PartialKey
from monitor.spec import MetricSpec, StreamSpec
from monitor.storage.outages import Backoff, call_through_outages, describe_error, is_outage
from monitor.storage.ports import RunLog, SliceSink
from monitor.storage.records import DeadLetter, MetricSlice, window_results
from monitor.targets import Target

log = logging.getLogger(__name__)
T = TypeVar("T")

STAGE = "batch"
MAX_SLICE = pd.Timedelta("1D")  # a slice reads at most a day of events (or one window)
ERROR_LIMIT = 2_000  # characters of an error kept in a run's record
ABANDONED = ("abandoned: still recorded as running when a later run of this metric "
             "started; the process that ran it stopped, or lost the database, before "
             "recording how it ended")


class BatchStore(SliceSink, RunLog, Protocol):
    """What a batch run needs of storage."""


@dataclass(frozen=True)
class Retry:
    """How a batch run meets failures.

    A slice that fails for a reason of its own (its source raised, a metric's code
    failed) is tried ``attempts`` times in all, waiting ``backoff_seconds * 2**i`` between
    tries. A database outage (:func:`~monitor.storage.outages.is_outage`: a lost or
    refused connection, a timeout, a server restarting), of the results or the source
    database, is waited out instead, for up to ``outage_seconds`` at a time: each write
    of the run is tried again after 0.5 s, 1 s, 2 s ... at most ``max_wait_seconds``
    apart, so the run goes on within that long of the database's return. A store error
    that is no outage is not retried: waiting cannot cure it.
    """

    attempts: int = 3
    backoff_seconds: float = 2.0
    outage_seconds: float = 300.0
    max_wait_seconds: float = 5.0

    def delays(self) -> Iterator[float]:
        for i in range(self.attempts - 1):
            yield self.backoff_seconds * 2**i

    def outage_backoff(self) -> Backoff:
        return Backoff(min(0.5, self.max_wait_seconds), self.max_wait_seconds)


@dataclass
class RunSummary:
    metric: str
    version: int
    since: pd.Timestamp
    until: pd.Timestamp
    windows_written: int = 0
    rows_read: int = 0
    rows_rejected: int = 0
    labels_read: int = 0  # label rows read for a metric joined to labels (ranges overlap)
    slices: int = 0
    failures: list[str] = field(default_factory=list)
    # the parts of [since, until) left to streaming, which counts those windows
    streamed: list[handover.Range] = field(default_factory=list)

    def left_to_streaming(self) -> str:
        """What the run left to streaming, as a clause for a run's line ("" if nothing)."""
        if not self.streamed:
            return ""
        return f"; windows {handover.describe(self.streamed)} left to streaming"

    @property
    def up_to_date(self) -> bool:
        """Whether the run had no window of its own to compute."""
        left = sum((end - start for start, end in self.streamed), pd.Timedelta(0))
        return self.since + left >= self.until


class BatchRunError(MonitorError):
    """A slice failed for good (on every attempt, with an error waiting cannot cure, or
    through an outage longer than the run waits); the message names the metrics and what
    went wrong.

    ``summaries`` tells what each metric of the run did before (and besides) the failure.
    """

    def __init__(self, message: str, summaries: Sequence[RunSummary] = ()) -> None:
        super().__init__(message)
        self.summaries = list(summaries)


def closed_until(metric: MetricSpec, now: pd.Timestamp) -> pd.Timestamp:
    """The end of the last window that is final at ``now`` (its end plus the lateness)."""
    start_ns = metric.windows.closed_before(now.value, metric.lateness_ns)
    return pd.Timestamp(start_ns, unit="ns", tz="UTC")


def watermark(store: RunLog, metric: str, version: int) -> pd.Timestamp | None:
    """Where the next run starts: the end of the latest successful batch run."""
    end = store.succeeded_until(metric, version)
    return None if end is None else pd.Timestamp(end).tz_convert("UTC")


def reopened(metric: MetricSpec, watermark: pd.Timestamp) -> pd.Timestamp:
    """Where a run of a metric joined to labels starts: the first window whose horizon was
    still open when the last run stored it (its end + horizon after that run's
    watermark), so each window is recomputed on every run until a run after its horizon
    passed (see :mod:`monitor.label_join`)."""
    assert metric.labels is not None
    return min(watermark, _floor(metric, watermark - pd.Timedelta(metric.labels.horizon_ns,
                                                                      unit="ns")))


def slices(metric: MetricSpec, since: pd.Timestamp, until: pd.Timestamp
           ) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """``[since, until)`` cut into whole-window slices of at most a day (or one window)."""
    width = metric.windows.width
    step = max(width, (MAX_SLICE // width) * width)
    cuts = []
    start = since
    while start < until:
        end = min(start + step, until)
        cuts.append((start, end))
        start = end
    return cuts


@dataclass(frozen=True)
class SliceFailure:
    """Why one metric's try at a slice failed; ``storing``: its store refused it."""

    error: Exception
    storing: bool


@dataclass
class BatchRunner:
    """Runs metrics' windows from their sources into a store.

    Metrics of one stream with the same window and the same starting point are computed
    together: the source is read once per slice for all of them, as the engine takes many
    metrics of a stream. Their slices are stored in one transaction, each recorded as its
    own run; a metric whose values or store fail is stored alone, so one metric's failure
    does not undo another's windows (see :meth:`_store`).
    """

    store: BatchStore
    source_for: Callable[[MetricSpec], EventSource | StateSource]
    retry: Retry = field(default_factory=Retry)
    progress: bool = False
    sleep: Callable[[float], None] = time.sleep
    alerts: bool = True  # evaluate alert rules on each slice, in its transaction
    clock: Callable[[], float] = time.monotonic  # how long an outage has lasted
    # where a label stream is read, for metrics joined to labels (as source_for: a table,
    # a query or files)
    label_source_for: Callable[[StreamSpec], EventSource] | None = None
    # read a slice while the one before is computed and stored, for the sources where
    # that pays (see monitor.batch.read_ahead); the values are the same either way
    read_ahead: bool = True
    _label_sources: dict[str, EventSource] = field(default_factory=dict, init=False,
                                                   repr=False)

    def run(
        self,
        metric: MetricSpec,
        version: int,
        *,
        since: pd.Timestamp | None = None,
        until: pd.Timestamp | None = None,
        now: pd.Timestamp | None = None,
    ) -> RunSummary:
        """Compute and store ``metric``'s closed windows in ``[since, until)``.

        ``since`` defaults to the watermark (or the earliest event in the source on the
        first run), ``until`` to the end of the last closed window at ``now``. Both are
        aligned to the metric's windows. A metric joined to labels starts before its
        watermark, at the first window whose horizon was open at the last run
        (:func:`reopened`): its windows are recomputed, and their stored values and
        states upserted, on every run until their labels can no longer change.
        """
        [summary] = self.run_many([Target(metric, version)], since=since, until=until, now=now)
        return summary

    def run_many(
        self,
        targets: Sequence[Target],
        *,
        since: pd.Timestamp | None = None,
        until: pd.Timestamp | None = None,
        now: pd.Timestamp | None = None,
    ) -> list[RunSummary]:
        """:meth:`run` for each target, sharing source reads where the targets allow.

        Raises BatchRunError after every group was tried if any metric failed; the
        summaries of the others are in its ``summaries``. Runs of the targets' metrics
        still recorded as running are closed first, as abandoned (see the module).
        """
        now = pd.Timestamp.now(tz="UTC") if now is None else now
        names = [t.metric.name for t in targets]
        closed = self._through_outages("closing abandoned batch runs", lambda: (
            self.store.close_abandoned_runs(names, ABANDONED)))
        if closed:
            log.warning("closed %d batch run(s) of %s left running by an earlier run, as "
                        "abandoned", closed, ", ".join(names))
        groups: dict[tuple[str, int, tuple[handover.Range, ...], LabelSource | None],
                     list[Target]] = {}
        splits: dict[str, tuple[pd.Timestamp, pd.Timestamp, handover.Split]] = {}
        sources: dict[str, EventSource | StateSource] = {}
        for target in targets:
            metric = target.metric
            source = sources.get(metric.stream.name)
            if source is None:
                source = sources[metric.stream.name] = self.source_for(metric)
                self._through_outages(f"checking the source of stream {metric.stream.name!r}",
                                      source.check)
            end = closed_until(metric, now) if until is None else _floor(metric, until)
            start = since if since is not None else self._through_outages(
                f"reading the watermark of {metric.name!r}",
                partial(watermark, self.store, metric.name, target.version))
            if start is None:
                earliest = self._through_outages(
                    f"reading the earliest event of stream {metric.stream.name!r}",
                    source.earliest)
                start = end if earliest is None else earliest
            elif since is None and metric.labels is not None:
                start = reopened(metric, start)
            if metric.labels is not None:
                self._check_labels(metric)
            start = min(_floor(metric, start), end)
            cut = handover.split(target.streamed, start, end)
            if cut.streamed:
                log.info("batch %s v%d: windows %s left to streaming", metric.name,
                         target.version, handover.describe(cut.streamed))
            splits[metric.name] = (start, end, cut)
            # metrics joined to the same labels in the same way share their joined rows
            key = (metric.stream.name, metric.windows.width_ns, tuple(cut.batch),
                   metric.labels)
            groups.setdefault(key, []).append(target)
        summaries = {t.metric.name: RunSummary(t.metric.name, t.version, *splits[t.metric.name][:2],
                                               streamed=splits[t.metric.name][2].streamed)
                     for t in targets}
        errors: list[BatchRunError] = []
        for (stream, _, ranges, _), group in groups.items():
            try:
                self._run_group(group, sources[stream], ranges, summaries, now)
                self._hand_over(group, summaries, now)
            except BatchRunError as err:
                errors.append(err)
        ordered = [summaries[t.metric.name] for t in targets if t.metric.name in summaries]
        if errors:
            raise BatchRunError("; ".join(str(e) for e in errors), ordered)
        return ordered

    def _run_group(self, group: list[Target], source: EventSource | StateSource,
                   ranges: Sequence[handover.Range], summaries: dict[str, RunSummary],
                   now: pd.Timestamp) -> None:
        names = ", ".join(t.metric.name for t in group)
        cuts = [cut for start, end in ranges for cut in slices(group[0].metric, start, end)]
        bar = tqdm(cuts, desc=f"batch {names}"[:60], unit="slice", disable=not self.progress,
                   leave=False)
        failed: list[str] = []
        # the next slice is read while this one is computed and stored, where that pays
        ahead = (ReadAhead(source, cuts, name=f"read-ahead {names}"[:60])
                 if self.read_ahead and not isinstance(source, StateSource)
                 and reads_ahead(source) else None)
        with ahead if ahead is not None else nullcontext():
            for slice_start, slice_end in bar:
                pending = [t for t in group if t.metric.name not in failed]
                if not pending:
                    break
                failed += self._run_slice(pending, source, slice_start, slice_end, summaries,
                                          now, ahead)
                rows = max(summaries[t.metric.name].rows_read for t in group)
                bar.set_postfix(rows=rows)
        if failed:
            raise BatchRunError(
                "; ".join(f"metric {name!r}: {summaries[name].failures[-1]}" for name in failed)
                + ". Nothing of the failed ranges was stored; the next run starts there again.",
                [summaries[t.metric.name] for t in group],
            )

    def _hand_over(self, group: list[Target], summaries: dict[str, RunSummary],
                   now: pd.Timestamp) -> None:
        """End the batch alerts of the targets whose run reached the boundary from which
        streaming counts every window: batch evaluates none of their windows any more."""
        for target in group:
            boundary = handover.handed_over_at(target.streamed, summaries[target.metric.name].until)
            if boundary is None or not self.alerts:
                continue
            why = (f"streaming counts the windows from {boundary.isoformat()} on (stage "
                   "switch); its own alerts judge them")
            self._record(f"ending the batch alerts of {target.metric.name!r} at the switch",
                         partial(self.store.end_alerts, target.metric, target.version, STAGE,
                                 why, now.to_pydatetime()),
                         summaries)

    def _run_slice(self, targets: list[Target], source: EventSource | StateSource,
                   start: pd.Timestamp, end: pd.Timestamp, summaries: dict[str, RunSummary],
                   now: pd.Timestamp, ahead: ReadAhead | None = None) -> list[str]:
        """Run one slice for the targets, with retries; the names that failed for good.

        While every failure is an outage it is waited out (up to ``outage_seconds``);
        a store error that is none fails its metric at once; any other failure is retried
        ``attempts`` times in all.
        """
        pending = list(targets)
        given_up: list[str] = []
        delays = self.retry.delays()
        outage_waits = self.retry.outage_backoff().delays()
        outage_began: float | None = None
        while True:
            failures = self._attempt_slice(pending, source, start, end, summaries, now, ahead)
            lasting = [name for name, failure in failures.items()
                       if failure.storing and not is_outage(failure.error)]
            given_up += lasting
            pending = [t for t in pending
                       if t.metric.name in failures and t.metric.name not in lasting]
            if not pending:
                return given_up
            delay: float | None
            if all(is_outage(failures[t.metric.name].error) for t in pending):
                outage_began = self.clock() if outage_began is None else outage_began
                waited = self.clock() - outage_began
                delay = next(outage_waits) if waited < self.retry.outage_seconds else None
            else:
                delay = next(delays, None)
            if delay is None:
                return given_up + [t.metric.name for t in pending]
            log.warning("batch slice %s to %s failed for %s; retrying in %.1f s",
                        start, end, ", ".join(t.metric.name for t in pending), delay)
            self.sleep(delay)

    def _attempt_slice(self, targets: list[Target], source: EventSource | StateSource,
                       start: pd.Timestamp, end: pd.Timestamp, summaries: dict[str, RunSummary],
                       now: pd.Timestamp, ahead: ReadAhead | None = None
                       ) -> dict[str, SliceFailure]:
        """One try at a slice; why it failed, for the targets it failed for."""
        names = ", ".join(repr(t.metric.name) for t in targets)
        ids = self._record(f"recording the start of slice {start} to {end} of {names}",
                           partial(self.store.start_runs,
                                   [(t.metric.name, t.version) for t in targets],
                                   start.to_pydatetime(), end.to_pydatetime()),
                           summaries)
        runs = {t.metric.name: run_id for t, run_id in zip(targets, ids, strict=True)}
        try:
            partials, rows, rejected, labels_read = self._compute(targets, source, start, end,
                                                                  ahead)
        except Exception as err:  # recorded on every run of the slice, then retried
            for target in targets:
                self._failed(runs[target.metric.name], summaries, target.metric.name, err)
            return {t.metric.name: SliceFailure(err, storing=False) for t in targets}
        failures = {}
        ready = []
        for target in targets:
            name = target.metric.name
            try:
                results = window_results(target.metric, partials)
            except Exception as err:  # this metric's slice is not stored; the others are
                self._failed(runs[name], summaries, name, err)
                failures[name] = SliceFailure(err, storing=False)
                continue
            ready.append(MetricSlice(target.metric, target.version, results, runs[name]))
        failures |= self._store(ready, rows, rejected, summaries, now)
        for piece in ready:
            if piece.metric.name in failures:
                continue
            summary = summaries[piece.metric.name]
            summary.rows_read += rows
            summary.rows_rejected += len(rejected)
            summary.labels_read += labels_read
            summary.windows_written += len({r.window_start for r in piece.windows})
            summary.slices += 1
        return failures

    def _store(self, slices: list[MetricSlice], rows: int, rejected: list[DeadLetter],
               summaries: dict[str, RunSummary], now: pd.Timestamp
               ) -> dict[str, SliceFailure]:
        """Store the metrics' slices in one transaction (one commit a slice, not one a
        metric); why it failed, for the metrics it failed for.

        Should that transaction fail for a reason other than an outage, each metric's
        slice is stored again in a transaction of its own, so that one metric's store
        error does not undo the others' windows; the dead letters then go with the first
        that commits. (With no rules left, evaluation still ends the alerts of removed
        rules, so it runs whenever alerts are on.)
        """
        if not slices:
            return {}
        evaluate_at = now.to_pydatetime() if self.alerts else None
        try:
            self.store.write_slices(STAGE, slices, rows_read=rows, rejected=rejected,
                                    evaluate_at=evaluate_at)
            return {}
        except Exception as err:
            if len(slices) == 1 or is_outage(err):
                for piece in slices:
                    self._failed(piece.run_id, summaries, piece.metric.name, err)
                return {piece.metric.name: SliceFailure(err, storing=True) for piece in slices}
            log.warning("storing a slice of %s together failed (%s); storing each metric "
                        "alone", ", ".join(piece.metric.name for piece in slices),
                        describe_error(err, ERROR_LIMIT))
        failures = {}
        letters = rejected
        for piece in slices:
            try:
                self.store.write_slices(STAGE, [piece], rows_read=rows, rejected=letters,
                                        evaluate_at=evaluate_at)
            except Exception as err:  # this metric's slice is not stored; the others are
                self._failed(piece.run_id, summaries, piece.metric.name, err)
                failures[piece.metric.name] = SliceFailure(err, storing=True)
                continue
            letters = []
        return failures

    def _failed(self, run_id: int, summaries: dict[str, RunSummary], name: str,
                err: Exception) -> None:
        message = describe_error(err, ERROR_LIMIT)
        self._record(f"recording that a slice of {name!r} failed",
                     lambda: self.store.finish_run(run_id, status="failed", rows_read=0,
                                                   windows_written=0, error=message),
                     summaries)
        summaries[name].failures.append(message)

    def _record(self, what: str, operation: Callable[[], T],
                summaries: dict[str, RunSummary]) -> T:
        """A write of the run's records, through outages; a BatchRunError if it fails."""
        try:
            return self._through_outages(what, operation)
        except Exception as err:
            if is_outage(err):
                advice = (f"the database was unreachable for {self.retry.outage_seconds:g} s; "
                          "run again when it is back: the run resumes at the first slice "
                          "not stored")
            else:
                advice = ("waiting cannot cure this, so it was not retried; if the database "
                          "is older than this version, run `monitor db upgrade`")
            raise BatchRunError(f"{what} failed: {describe_error(err)}; {advice}",
                                list(summaries.values())) from err

    def _through_outages(self, what: str, operation: Callable[[], T]) -> T:
        return call_through_outages(operation, what,
                                    patience_seconds=self.retry.outage_seconds,
                                    backoff=self.retry.outage_backoff(), wait=self._wait,
                                    clock=self.clock)

    def _wait(self, seconds: float) -> bool:
        self.sleep(seconds)
        return False  # a batch run is stopped by its process, not here

    def _check_labels(self, metric: MetricSpec) -> None:
        assert metric.labels is not None
        stream = metric.labels.stream
        if self.label_source_for is None:
            raise BatchRunError(f"metric {metric.name!r} joins labels from stream "
                                f"{stream.name!r}, and this batch runner was given no "
                                "label_source_for to read them")
        self._through_outages(f"checking the source of label stream {stream.name!r}",
                              self._label_source(stream).check)

    def _compute(self, targets: list[Target], source: EventSource | StateSource,
                 start: pd.Timestamp, end: pd.Timestamp, ahead: ReadAhead | None = None
                 ) -> tuple[dict[PartialKey, Partial], int, list[DeadLetter], int]:
        """The slice's states, the prediction rows read (by ``ahead`` when it reads
        ahead), the dead letters (of labels too) and the label rows read."""
        metrics = [t.metric for t in targets]
        rows = 0
        rejected: list[DeadLetter] = []
        labels, labels_read = None, 0
        if metrics[0].labels is not None:
            labels, rejected, labels_read = self._read_labels(metrics[0], start, end)
        seen: Counter[str] = Counter()  # identical rows so far in the slice, by content
        if isinstance(source, StateSource):  # computed where the rows are (e.g. Spark)
            computed = source.states(metrics, start, end, labels)
            rejected += _keyed_letters(metrics[0].stream, computed.rejected, seen)
            if computed.unparsed is not None:
                rejected += _unparsed_letters(metrics[0].stream, computed.unparsed)
            return computed.partials, computed.rows, rejected, labels_read
        engine = Engine(metrics)
        for chunk in (ahead or source).chunks(start, end):
            rows += len(chunk)
            clean, rejects = metrics[0].stream.schema.validate(chunk)
            if len(rejects):
                rejected += _dead_letters(metrics[0].stream, chunk, rejects, seen)
            if labels is not None:
                assert metrics[0].labels is not None
                clean = join_labels(clean, labels,
                                    metrics[0].labels.rule(metrics[0].stream.time)).events
            engine.update(clean)
            if failed := engine.take_failed():
                rejected += _keyed_letters(metrics[0].stream,
                                           failed_payloads(chunk, rejects, failed), seen)
        if isinstance(source, UnparsedRows):
            unparsed = source.unparsed(start, end)
            rows += len(unparsed)
            rejected += _unparsed_letters(metrics[0].stream, unparsed)
        return engine.partials, rows, rejected, labels_read

    def _read_labels(self, metric: MetricSpec, start: pd.Timestamp, end: pd.Timestamp
                     ) -> tuple[pd.DataFrame, list[DeadLetter], int]:
        """The labels the predictions of ``[start, end)`` can take (the join rule's label
        range, the time filter pushed into the source), validated, and the label rows
        refused as dead letters: those that fail the label stream's schema or have a
        null or empty id. Label ranges of slices overlap; a refused row is keyed by its
        content, so it is stored once."""
        assert metric.labels is not None and self.label_source_for is not None
        stream = metric.labels.stream
        source = self._label_source(stream)
        low, high = metric.labels.rule(metric.stream.time).label_range(start, end)
        kept: list[pd.DataFrame] = []
        letters: list[DeadLetter] = []
        seen: Counter[str] = Counter()
        read = 0
        for chunk in source.chunks(low, high):
            read += len(chunk)
            clean, rejects = stream.schema.validate(chunk)
            if len(rejects):
                letters += _dead_letters(stream, chunk, rejects, seen)
            problems = id_problems(clean[metric.labels.label_id])
            bad = problems.notna().to_numpy()
            if bad.any():
                refused = pd.DataFrame({"row": np.flatnonzero(bad),
                                        "reason": problems[bad].to_numpy()})
                raw = chunk.loc[~chunk.index.isin(rejects["row"])].reset_index(drop=True)
                letters += _dead_letters(stream, raw, refused, seen)
                clean = clean[~bad]
            kept.append(clean)
        if isinstance(source, UnparsedRows):
            unparsed = source.unparsed(low, high)
            read += len(unparsed)
            letters += _unparsed_letters(stream, unparsed)
        labels = (pd.concat(kept, ignore_index=True) if kept
                  else stream.schema.validate(pd.DataFrame())[0])
        return labels, letters, read

    def _label_source(self, stream: StreamSpec) -> EventSource:
        """One source per label stream for the runner's life (a file source hands its
        rows without a time to the first range it reads, see FileSource)."""
        assert self.label_source_for is not None
        if stream.name not in self._label_sources:
            self._label_sources[stream.name] = self.label_source_for(stream)
        return self._label_sources[stream.name]


def _floor(metric: MetricSpec, when: pd.Timestamp | datetime) -> pd.Timestamp:
    when = pd.Timestamp(when)
    when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
    return metric.windows.start_of(when)


def _dead_letters(stream: StreamSpec, chunk: pd.DataFrame, rejects: pd.DataFrame,
                  seen: Counter[str]) -> list[DeadLetter]:
    """The rejected rows as dead letters, keyed by content (see the module); ``seen``
    counts the rows of each content met so far in the slice."""
    return _keyed_letters(stream, rejected_payloads(chunk, rejects), seen)


def _keyed_letters(stream: StreamSpec, payloads: list[tuple[str, str]],
                   seen: Counter[str]) -> list[DeadLetter]:
    """Dead letters of ``(reason, row as JSON)``, keyed by content and how many identical
    rows came before in the slice (``seen``; identical rows have the same reason, so the
    order they come in does not change the keys)."""
    source = _letter_source(stream)
    letters = []
    for reason, payload in payloads:
        digest = hashlib.sha256(payload.encode()).hexdigest()  # JSON: ASCII
        key = f"row:{digest}#{seen[digest]}"
        seen[digest] += 1
        letters.append(DeadLetter(source, reason, payload, key=key))
    return letters


def _unparsed_letters(stream: StreamSpec, unparsed: pd.DataFrame) -> list[DeadLetter]:
    """The lines a source's reader could not parse as dead letters, keyed by where they
    are and a hash of their excerpt (see the module)."""
    source = _letter_source(stream)
    letters = []
    for where, reason, excerpt in zip(unparsed["row"], unparsed["reason"], unparsed["excerpt"],
                                      strict=True):
        digest = hashlib.sha256(excerpt.encode()).hexdigest()
        letters.append(DeadLetter(source, reason, excerpt, key=f"line:{where}#{digest}"))
    return letters


def _letter_source(stream: StreamSpec) -> str:
    return f"batch:{stream.table or stream.files or stream.name}"
