"""The ports the stage runners, the lifecycle and the dashboard talk to.

Small ``Protocol``s, so a runner can be tested with an in-memory fake and never imports
SQLAlchemy; :class:`monitor.storage.store.SqlStore` implements all of them over one
database. Times are tz-aware datetimes (``pd.Timestamp`` works); a naive one is refused.
Window ranges are half-open: ``since <= window_start < until``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Protocol

import pandas as pd

from metrics.drift import ReferenceProfile
from monitor.errors import MonitorError
from monitor.spec import MetricSpec
from monitor.storage.records import (
    BatchRun,
    DeadLetter,
    MetricDefinition,
    MetricSlice,
    RecordedResearchRun,
    StageChange,
    StoredState,
    WindowResult,
)
from monitor.stream_status import PartitionRead

DEFAULT_VALUES_LIMIT = 10_000  # rows a dashboard query returns unless told otherwise


class WriteRefused(MonitorError):
    """The database refused something it was given to store (a value it cannot hold), so
    none of the call's writes were kept. ``problem`` is the database's reason, one line."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(problem)


class ResultSink(Protocol):
    def write_windows(
        self, metric: str, version: int, stage: str, windows: Iterable[WindowResult]
    ) -> int:
        """Upsert the values and states of ``windows``, all in one transaction.

        Idempotent: writing the same windows again leaves the same rows; new values for
        a window replace the old. Either every window is stored or none is. Returns
        the number of value rows written.
        """
        ...


class EvaluatingResultSink(Protocol):
    def write_windows_and_evaluate(
        self, metric: MetricSpec, version: int, stage: str, windows: Sequence[WindowResult],
        now: datetime | None = None, *, notify: bool = True,
    ) -> int:
        """:meth:`ResultSink.write_windows`, and the metric's alert rules evaluated on the
        windows, in the same transaction (see :mod:`monitor.alerts.evaluate`); ``notify``
        False records alerts without announcing new ones."""
        ...


class StateStore(Protocol):
    def read_states(
        self,
        metric: str,
        version: int,
        stage: str,
        since: datetime,
        until: datetime,
        segment: str | None = None,
    ) -> list[StoredState]:
        """Stored states with ``since <= window_start < until``, by window then segment."""
        ...


class ValueReader(Protocol):
    def read_values(
        self,
        *,
        metric: str | None = None,
        stage: str | None = None,
        segment: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        version: int | None = None,
        limit: int | None = DEFAULT_VALUES_LIMIT,
    ) -> pd.DataFrame:
        """Values in the values-file columns, sorted as :func:`monitor.values.values_frame`.

        ``version`` None means the newest version of each metric that has values, so
        two definitions never mix. With ``limit`` the latest ``limit`` rows (by window)
        come back; ``limit=None`` reads everything (exports).
        """
        ...


class MetricCatalog(Protocol):
    def register_metric(self, spec: MetricSpec, *, stage: str = "research",
                        by: str = "monitor") -> MetricDefinition:
        """The current definition if its spec id matches, else a new version (+1)."""
        ...

    def current_definition(self, name: str) -> MetricDefinition | None: ...

    def refresh_definition(self, spec: MetricSpec, version: int) -> MetricDefinition:
        """Version ``version`` of ``spec.name``; when ``spec`` is its definition (the same
        id, or the id older releases gave it), brought up to date with ``spec``: the new
        id, the stored spec, owner and description, keeping its number and stage."""
        ...

    def list_definitions(self) -> list[MetricDefinition]:
        """The current version of every registered metric, by name."""
        ...

    def record_stage_change(self, metric: str, version: int, to_stage: str, *,
                            by: str, reason: str,
                            effective_from: datetime | None = None) -> StageChange:
        """Move a metric version to ``to_stage`` and keep the change in its history. A
        change into or out of streaming applies from ``effective_from`` (a window boundary)
        there, by default the first boundary after the switch lead
        (:mod:`monitor.stage_switch`)."""
        ...

    def stage_history(self, metric: str) -> list[StageChange]:
        """Every stage change of every version of ``metric``, oldest first."""
        ...


class StreamProgress(Protocol):
    def partition_reads(self, topics: Sequence[str]) -> list[PartitionRead]:
        """How far the streaming stage has read each stored partition of ``topics`` in
        event time (from its checkpoints)."""
        ...


class ProfileStore(Protocol):
    def save_profile(self, profile: ReferenceProfile,
                     fitted_at: datetime | None = None) -> None:
        """Keep a fitted profile; saving the same profile again changes nothing."""
        ...

    def load_profile(self, name: str, profile_id: str | None = None) -> ReferenceProfile:
        """The profile with that id, or the latest fitted under ``name``; LookupError if none."""
        ...


class ResearchRecorder(Protocol):
    def record_research_run(
        self, metric: MetricSpec, windows: Sequence[WindowResult],
        profile: ReferenceProfile | None = None, *, by: str = "monitor",
    ) -> RecordedResearchRun:
        """A research run in one transaction: ``profile`` kept as
        :meth:`ProfileStore.save_profile` does, ``metric`` registered as
        :meth:`MetricCatalog.register_metric` does (a changed definition is a new version),
        and ``windows`` upserted as that version's stage "research" values and states.
        Either all of it is stored or none; :class:`WriteRefused` when the database
        refuses a value."""
        ...


class RunLog(Protocol):
    def start_run(self, metric: str, version: int, window_start: datetime,
                  window_end: datetime) -> int:
        """Record a run as "running" (in its own transaction); returns its id."""
        ...

    def start_runs(self, metrics: Sequence[tuple[str, int]], window_start: datetime,
                   window_end: datetime) -> list[int]:
        """:meth:`start_run` for each (metric, version) of a slice, in one transaction;
        their ids in the same order."""
        ...

    def finish_run(self, run_id: int, *, status: str, rows_read: int, windows_written: int,
                   error: str | None = None) -> None:
        """Close a run as "succeeded" or "failed" (in its own transaction). A run recorded
        as succeeded stays so."""
        ...

    def close_abandoned_runs(self, metrics: Sequence[str], reason: str) -> int:
        """Close every "running" run of ``metrics`` as failed with ``reason``; how many."""
        ...

    def recent_runs(self, metric: str | None = None, limit: int = 50) -> list[BatchRun]:
        """Latest runs first."""
        ...

    def succeeded_until(self, metric: str, version: int) -> datetime | None:
        """The latest window end a succeeded run of that version of ``metric`` covered:
        where its next run starts. None before its first success."""
        ...


class DeadLetterSink(Protocol):
    def write_dead_letters(self, letters: Iterable[DeadLetter]) -> int:
        """Store rejected input with its reason (payload cut to an excerpt), a letter with
        a key once per (source, key); returns how many rows were added."""
        ...


class SliceSink(Protocol):
    def write_slices(
        self, stage: str, slices: Sequence[MetricSlice], *, rows_read: int,
        rejected: Sequence[DeadLetter] = (), evaluate_at: datetime | None = None,
    ) -> int:
        """The metrics' windows of one batch slice, read from the same rows, in one
        transaction: each metric's ``windows`` upserted as :meth:`ResultSink.write_windows`
        does; its alert rules evaluated on them as
        :meth:`EvaluatingResultSink.write_windows_and_evaluate` does, when ``evaluate_at``
        is given; the slice's ``rejected`` input stored as dead letters (once per key); and
        each metric's run finished as succeeded. Either all of it is stored or none (a
        retry or the next run does it again, adding nothing twice). Returns the number of
        value rows written."""
        ...

    def end_alerts(self, metric: MetricSpec, version: int, stage: str, why: str,
                   now: datetime | None = None) -> int:
        """End every active alert of ``metric``'s ``version`` in ``stage``, with ``why``
        (:func:`monitor.alerts.evaluate.end_alerts`), in one transaction; how many."""
        ...
