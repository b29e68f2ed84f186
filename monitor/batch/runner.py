"""The batch stage: closed windows of a metric computed from its source and stored.

A run covers whole windows ``[since, until)``. It goes through them in slices of a few
windows; each slice is read from the source (time filter pushed down), validated,
computed by the same engine as research, and written — values and states of every window
of the slice — in one transaction, recorded as one batch run. A failure leaves no partial
window: the slice's transaction never commits, its run is recorded as failed with the
error, and the next run starts again from the last slice that succeeded (the watermark).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import pandas as pd
from tqdm import tqdm

from monitor.batch.sources import EventSource
from monitor.engine import Engine
from monitor.errors import MonitorError
from monitor.spec import MetricSpec
from monitor.storage.ports import DeadLetterSink, ResultSink, RunLog
from monitor.storage.records import DeadLetter, window_results

log = logging.getLogger(__name__)

STAGE = "batch"
MAX_SLICE = pd.Timedelta("1D")  # a slice reads at most a day of events (or one window)


class BatchStore(ResultSink, RunLog, DeadLetterSink, Protocol):
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
    """A slice failed on every attempt; the message names the metric and the range."""


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


@dataclass
class BatchRunner:
    """Runs one metric's windows from a source into a store."""

    store: BatchStore
    source_for: Callable[[MetricSpec], EventSource]
    retry: Retry = field(default_factory=Retry)
    progress: bool = False
    sleep: Callable[[float], None] = time.sleep

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
        now = pd.Timestamp.now(tz="UTC") if now is None else now
        source = self.source_for(metric)
        source.check()
        end = closed_until(metric, now) if until is None else _floor(metric, until)
        start = since if since is not None else watermark(self.store, metric.name, version)
        if start is None:
            earliest = source.earliest()
            start = end if earliest is None else earliest
        start = _floor(metric, start)
        summary = RunSummary(metric.name, version, start, end)
        cuts = slices(metric, start, end)
        bar = tqdm(cuts, desc=f"{metric.name} batch", unit="slice", disable=not self.progress,
                   leave=False)
        for slice_start, slice_end in bar:
            self._run_slice(metric, version, source, slice_start, slice_end, summary)
            bar.set_postfix(windows=summary.windows_written, rows=summary.rows_read)
        return summary

    def _run_slice(self, metric: MetricSpec, version: int, source: EventSource,
                   start: pd.Timestamp, end: pd.Timestamp, summary: RunSummary) -> None:
        delays = self.retry.delays()
        while True:
            run_id = self.store.start_run(metric.name, version, start.to_pydatetime(),
                                          end.to_pydatetime())
            try:
                rows, rejected, windows = self._compute_and_store(metric, version, source,
                                                                  start, end)
            except Exception as err:  # recorded, retried, then raised with context
                message = f"{type(err).__name__}: {err}"
                self.store.finish_run(run_id, status="failed", rows_read=0,
                                      windows_written=0, error=message)
                summary.failures.append(message)
                delay = next(delays, None)
                if delay is None:
                    raise BatchRunError(
                        f"metric {metric.name!r} batch run over {start:%Y-%m-%d %H:%M} to "
                        f"{end:%Y-%m-%d %H:%M} UTC failed {self.retry.attempts} times; last "
                        f"error: {message}. Nothing of that range was stored; the next run "
                        "starts there again."
                    ) from err
                log.warning("metric %s: batch slice failed (%s); retrying in %.1f s",
                            metric.name, message, delay)
                self.sleep(delay)
                continue
            self.store.finish_run(run_id, status="succeeded", rows_read=rows,
                                  windows_written=windows)
            summary.rows_read += rows
            summary.rows_rejected += rejected
            summary.windows_written += windows
            summary.slices += 1
            return

    def _compute_and_store(self, metric: MetricSpec, version: int, source: EventSource,
                           start: pd.Timestamp, end: pd.Timestamp) -> tuple[int, int, int]:
        engine = Engine([metric])
        rows = rejected = 0
        for chunk in source.chunks(start, end):
            rows += len(chunk)
            clean, rejects = metric.stream.schema.validate(chunk)
            if len(rejects):
                rejected += len(rejects)
                self.store.write_dead_letters(_dead_letters(metric, chunk, rejects))
            engine.update(clean)
        results = window_results(metric, engine.partials)
        self.store.write_windows(metric.name, version, STAGE, results)
        return rows, rejected, len({r.window_start for r in results})


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
