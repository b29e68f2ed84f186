"""The batch stage: closed windows of a metric computed from its source and stored.

A run covers whole windows ``[since, until)``. It goes through them in slices of a few
windows; each slice is read from the source (time filter pushed down), validated,
computed by the same engine as research, and written — values and states of every window
of the slice — in one transaction, recorded as one batch run. A failure leaves no partial
window: the slice's transaction never commits, its run is recorded as failed with the
error, and the next run starts again from the last slice that succeeded (the watermark).
The metric's alert rules are evaluated on each slice in that same transaction (see
:mod:`monitor.alerts.evaluate`), so a stored window has been evaluated exactly once.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import pandas as pd
from tqdm import tqdm

from monitor.batch.sources import EventSource
from monitor.engine import Engine
from monitor.errors import MonitorError
from monitor.spec import MetricSpec
from monitor.storage.ports import DeadLetterSink, EvaluatingResultSink, ResultSink, RunLog
from monitor.storage.records import DeadLetter, window_results

log = logging.getLogger(__name__)

STAGE = "batch"
MAX_SLICE = pd.Timedelta("1D")  # a slice reads at most a day of events (or one window)


class BatchStore(ResultSink, EvaluatingResultSink, RunLog, DeadLetterSink, Protocol):
    """What a batch run needs of storage."""


@dataclass(frozen=True)
class Retry:
    """Retries of a failing slice: ``attempts`` in all, waiting ``backoff * 2**i`` seconds."""

    attempts: int = 3
    backoff_seconds: float = 2.0

    def delays(self) -> Iterator[float]:
        for i in range(self.attempts - 1):
            yield self.backoff_seconds * 2**i


@dataclass
class RunSummary:
    metric: str
    version: int
    since: pd.Timestamp
    until: pd.Timestamp
    windows_written: int = 0
    rows_read: int = 0
    rows_rejected: int = 0
    slices: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        return self.since >= self.until


class BatchRunError(MonitorError):
    """A slice failed on every attempt; the message names the metrics and what went wrong.

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
    ends = [run.window_end for run in store.recent_runs(metric, limit=1000)
            if run.metric_version == version and run.status == "succeeded"]
    return pd.Timestamp(max(ends)).tz_convert("UTC") if ends else None


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
class Target:
    """A metric to run, bound to its reference, with its stored version.

    ``notify`` False: its alerts are evaluated and recorded but another stage (streaming)
    announces them, so a metric in two stages does not page twice.
    """

    metric: MetricSpec
    version: int
    notify: bool = True


@dataclass
class BatchRunner:
    """Runs metrics' windows from their sources into a store.

    Metrics of one stream with the same window and the same starting point are computed
    together: the source is read once per slice for all of them, as the engine takes many
    metrics of a stream. Each metric's slice is still stored in a transaction of its own
    and recorded as its own run, so one metric's failure does not undo another's windows.
    """

    store: BatchStore
    source_for: Callable[[MetricSpec], EventSource]
    retry: Retry = field(default_factory=Retry)
    progress: bool = False
    sleep: Callable[[float], None] = time.sleep
    alerts: bool = True  # evaluate alert rules on each slice, in its transaction

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
        aligned to the metric's windows.
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
        summaries of the others are in its ``summaries``.
        """
        now = pd.Timestamp.now(tz="UTC") if now is None else now
        groups: dict[tuple[str, int, pd.Timestamp, pd.Timestamp], list[Target]] = {}
        sources: dict[str, EventSource] = {}
        for target in targets:
            metric = target.metric
            source = sources.get(metric.stream.name)
            if source is None:
                source = sources[metric.stream.name] = self.source_for(metric)
                source.check()
            end = closed_until(metric, now) if until is None else _floor(metric, until)
            start = since if since is not None else watermark(self.store, metric.name,
                                                              target.version)
            if start is None:
                earliest = source.earliest()
                start = end if earliest is None else earliest
            key = (metric.stream.name, metric.windows.width_ns, _floor(metric, start), end)
            groups.setdefault(key, []).append(target)
        summaries: dict[str, RunSummary] = {}
        errors: list[BatchRunError] = []
        for (stream, _, start, end), group in groups.items():
            try:
                for summary in self._run_group(group, sources[stream], start, end, now):
                    summaries[summary.metric] = summary
            except BatchRunError as err:
                summaries.update({s.metric: s for s in err.summaries})
                errors.append(err)
        ordered = [summaries[t.metric.name] for t in targets if t.metric.name in summaries]
        if errors:
            raise BatchRunError("; ".join(str(e) for e in errors), ordered)
        return ordered

    def _run_group(self, group: list[Target], source: EventSource, start: pd.Timestamp,
                   end: pd.Timestamp, now: pd.Timestamp) -> list[RunSummary]:
        summaries = {t.metric.name: RunSummary(t.metric.name, t.version, start, end)
                     for t in group}
        names = ", ".join(summaries)
        cuts = slices(group[0].metric, start, end)
        bar = tqdm(cuts, desc=f"batch {names}"[:60], unit="slice", disable=not self.progress,
                   leave=False)
        failed: list[str] = []
        for slice_start, slice_end in bar:
            pending = [t for t in group if t.metric.name not in failed]
            if not pending:
                break
            failed += self._run_slice(pending, source, slice_start, slice_end, summaries, now)
            rows = max(s.rows_read for s in summaries.values())
            bar.set_postfix(rows=rows)
        if failed:
            raise BatchRunError(
                "; ".join(f"metric {name!r}: {summaries[name].failures[-1]}" for name in failed)
                + f". Nothing of the failed ranges was stored after {self.retry.attempts} "
                "attempts; the next run starts there again.",
                list(summaries.values()),
            )
        return list(summaries.values())

    def _run_slice(self, targets: list[Target], source: EventSource, start: pd.Timestamp,
                   end: pd.Timestamp, summaries: dict[str, RunSummary],
                   now: pd.Timestamp) -> list[str]:
        """Run one slice for the targets, with retries; the names that failed for good."""
        pending = list(targets)
        delays = self.retry.delays()
        while True:
            pending = self._attempt_slice(pending, source, start, end, summaries, now)
            if not pending:
                return []
            delay = next(delays, None)
            if delay is None:
                return [t.metric.name for t in pending]
            log.warning("batch slice %s to %s failed for %s; retrying in %.1f s",
                        start, end, ", ".join(t.metric.name for t in pending), delay)
            self.sleep(delay)

    def _attempt_slice(self, targets: list[Target], source: EventSource, start: pd.Timestamp,
                       end: pd.Timestamp, summaries: dict[str, RunSummary],
                       now: pd.Timestamp) -> list[Target]:
        """One try at a slice; the targets it failed for."""
        runs = {t.metric.name: self.store.start_run(t.metric.name, t.version,
                                                    start.to_pydatetime(), end.to_pydatetime())
                for t in targets}
        try:
            engine, rows, rejected = self._compute(targets, source, start, end)
        except Exception as err:  # recorded on every run of the slice, then retried
            for target in targets:
                self._failed(runs[target.metric.name], summaries[target.metric.name], err)
            return targets
        failed = []
        for target in targets:
            name = target.metric.name
            try:
                results = window_results(target.metric, engine.partials)
                if self.alerts and target.metric.alerts:
                    self.store.write_windows_and_evaluate(target.metric, target.version, STAGE,
                                                          results, now.to_pydatetime(),
                                                          notify=target.notify)
                else:
                    self.store.write_windows(name, target.version, STAGE, results)
            except Exception as err:  # this metric's slice is not stored; the others are
                self._failed(runs[name], summaries[name], err)
                failed.append(target)
                continue
            windows = len({r.window_start for r in results})
            self.store.finish_run(runs[name], status="succeeded", rows_read=rows,
                                  windows_written=windows)
            summary = summaries[name]
            summary.rows_read += rows
            summary.rows_rejected += rejected
            summary.windows_written += windows
            summary.slices += 1
        return failed

    def _failed(self, run_id: int, summary: RunSummary, err: Exception) -> None:
        message = f"{type(err).__name__}: {err}"
        self.store.finish_run(run_id, status="failed", rows_read=0, windows_written=0,
                              error=message)
        summary.failures.append(message)

    def _compute(self, targets: list[Target], source: EventSource, start: pd.Timestamp,
                 end: pd.Timestamp) -> tuple[Engine, int, int]:
        metrics = [t.metric for t in targets]
        engine = Engine(metrics)
        rows = rejected = 0
        for chunk in source.chunks(start, end):
            rows += len(chunk)
            clean, rejects = metrics[0].stream.schema.validate(chunk)
            if len(rejects):
                rejected += len(rejects)
                self.store.write_dead_letters(_dead_letters(metrics[0], chunk, rejects))
            engine.update(clean)
        return engine, rows, rejected


def _floor(metric: MetricSpec, when: pd.Timestamp | datetime) -> pd.Timestamp:
    when = pd.Timestamp(when)
    when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
    return metric.windows.start_of(when)


def _dead_letters(metric: MetricSpec, chunk: pd.DataFrame, rejects: pd.DataFrame
                  ) -> list[DeadLetter]:
    source = f"batch:{metric.stream.table or metric.stream.files or metric.stream.name}"
    rows = chunk.loc[rejects["row"]]
    return [
        DeadLetter(source, reason, json.dumps(row, default=str))
        for reason, row in zip(rejects["reason"], rows.to_dict("records"), strict=True)
    ]
