"""Every storage port over one SQL database, one transaction per call.

>>> import tempfile, pathlib
>>> from monitor.storage.migrate import head_revision, upgrade
>>> url = f"sqlite:///{pathlib.Path(tempfile.mkdtemp()) / 'monitor.sqlite'}"
>>> upgrade(url).after == head_revision()
True
>>> with SqlStore.open(url) as store:
...     store.recent_runs()
[]

A runner that must commit something with its windows (a watermark, say) uses the
repository functions on ``store.database.begin()`` instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd
from sqlalchemy import exc

from metrics.drift import ReferenceProfile
from monitor.alerts.evaluate import MetricWindows, end_alerts, evaluate_metrics, evaluate_windows
from monitor.errors import first_line
from monitor.spec import MetricSpec
from monitor.storage import dead_letters, definitions, profiles, results, runs, stream_status
from monitor.storage.alert_store import SqlAlertTransaction
from monitor.storage.database import Database
from monitor.storage.ports import DEFAULT_VALUES_LIMIT, WriteRefused
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


class SqlStore:
    """The result sink, state store, value reader, catalog, profiles, research runs, batch
    runs and dead letters."""

    def __init__(self, database: Database) -> None:
        self.database = database

    @classmethod
    def open(cls, url: str) -> SqlStore:
        return cls(Database(url))

    def close(self) -> None:
        self.database.dispose()

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqlStore({self.database.display_url!r})"

    # -- ResultSink, StateStore, ValueReader --------------------------------------------

    def write_windows(self, metric: str, version: int, stage: str,
                      windows: Iterable[WindowResult]) -> int:
        with self.database.begin() as conn:
            return results.write_windows(conn, metric, version, stage, windows)

    def write_windows_and_evaluate(self, metric: MetricSpec, version: int, stage: str,
                                   windows: Sequence[WindowResult],
                                   now: datetime | None = None, *, notify: bool = True) -> int:
        """:meth:`write_windows`, then the metric's alert rules on those windows, in one
        transaction: values, alert transitions and queued notifications commit together."""
        with self.database.begin() as conn:
            written = results.write_windows(conn, metric.name, version, stage, windows)
            evaluate_windows(SqlAlertTransaction(conn), metric, version, stage, windows, now,
                             notify=notify)
            return written

    def read_states(self, metric: str, version: int, stage: str, since: datetime,
                    until: datetime, segment: str | None = None) -> list[StoredState]:
        with self.database.connect() as conn:
            return results.read_states(conn, metric, version, stage, since, until, segment)

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
        with self.database.connect() as conn:
            return results.read_values(conn, metric=metric, stage=stage, segment=segment,
                                       since=since, until=until, version=version, limit=limit)

    # -- MetricCatalog --------------------------------------------------------------------

    def register_metric(self, spec: MetricSpec, *, stage: str = "research",
                        by: str = "monitor") -> MetricDefinition:
        with self.database.begin() as conn:
            return definitions.register_metric(conn, spec, stage=stage, by=by)

    def current_definition(self, name: str) -> MetricDefinition | None:
        with self.database.connect() as conn:
            return definitions.current_definition(conn, name)

    def get_definition(self, name: str, version: int) -> MetricDefinition | None:
        with self.database.connect() as conn:
            return definitions.get_definition(conn, name, version)

    def refresh_definition(self, spec: MetricSpec, version: int) -> MetricDefinition:
        with self.database.begin() as conn:
            return definitions.refresh_definition(conn, spec, version)

    def list_definitions(self) -> list[MetricDefinition]:
        with self.database.connect() as conn:
            return definitions.list_definitions(conn)

    def record_stage_change(self, metric: str, version: int, to_stage: str, *, by: str,
                            reason: str, effective_from: datetime | None = None
                            ) -> StageChange:
        with self.database.begin() as conn:
            return definitions.record_stage_change(conn, metric, version, to_stage, by=by,
                                                   reason=reason,
                                                   effective_from=effective_from)

    def stage_history(self, metric: str) -> list[StageChange]:
        with self.database.connect() as conn:
            return definitions.stage_history(conn, metric)

    # -- ProfileStore ---------------------------------------------------------------------

    def save_profile(self, profile: ReferenceProfile, fitted_at: datetime | None = None) -> None:
        with self.database.begin() as conn:
            profiles.save_profile(conn, profile, fitted_at)

    def load_profile(self, name: str, profile_id: str | None = None) -> ReferenceProfile:
        with self.database.connect() as conn:
            return profiles.load_profile(conn, name, profile_id)

    # -- ResearchRecorder -----------------------------------------------------------------

    def record_research_run(self, metric: MetricSpec, windows: Sequence[WindowResult],
                            profile: ReferenceProfile | None = None, *,
                            by: str = "monitor") -> RecordedResearchRun:
        """The profile, the definition bound to it and the run's values in one transaction,
        so a run is recorded whole or not at all."""
        try:
            with self.database.begin() as conn:
                previous = definitions.current_definition(conn, metric.name)
                latest_profile_id = None
                if profile is not None:
                    profiles.save_profile(conn, profile)
                    latest_profile_id = profiles.load_profile(conn, profile.name).id
                definition = definitions.register_metric(conn, metric, by=by)
                written = results.write_windows(conn, metric.name, definition.version,
                                                "research", windows)
        except exc.DBAPIError as err:  # e.g. a value the database cannot hold
            raise WriteRefused(first_line(err)) from err
        return RecordedResearchRun(definition, previous, written, latest_profile_id)

    # -- RunLog ---------------------------------------------------------------------------

    def start_run(self, metric: str, version: int, window_start: datetime,
                  window_end: datetime) -> int:
        with self.database.begin() as conn:
            return runs.start_run(conn, metric, version, window_start, window_end)

    def start_runs(self, metrics: Sequence[tuple[str, int]], window_start: datetime,
                   window_end: datetime) -> list[int]:
        with self.database.begin() as conn:
            return runs.start_runs(conn, metrics, window_start, window_end)

    def finish_run(self, run_id: int, *, status: str, rows_read: int, windows_written: int,
                   error: str | None = None) -> None:
        with self.database.begin() as conn:
            runs.finish_run(conn, run_id, status=status, rows_read=rows_read,
                            windows_written=windows_written, error=error)

    def close_abandoned_runs(self, metrics: Sequence[str], reason: str) -> int:
        with self.database.begin() as conn:
            return runs.close_abandoned_runs(conn, metrics, reason)

    def recent_runs(self, metric: str | None = None, limit: int = 50) -> list[BatchRun]:
        with self.database.connect() as conn:
            return runs.recent_runs(conn, metric, limit)

    def succeeded_until(self, metric: str, version: int) -> datetime | None:
        with self.database.connect() as conn:
            return runs.succeeded_until(conn, metric, version)

    # -- SliceSink ------------------------------------------------------------------------

    def write_slices(self, stage: str, slices: Sequence[MetricSlice], *, rows_read: int,
                     rejected: Sequence[DeadLetter] = (),
                     evaluate_at: datetime | None = None) -> int:
        """The metrics' windows of a batch slice, their alert evaluation, the slice's dead
        letters and the end of their runs in one transaction: stored, evaluated and
        recorded as succeeded, or none of it. Values and states go in shared upserts, the
        metrics' alert states are read, locked and saved together
        (:func:`~monitor.alerts.evaluate.evaluate_metrics`) and the runs end in one
        statement: a commit and a few round trips a slice instead of a metric and slice.
        The rules are evaluated after every metric's values are written; an evaluation
        reads only its own metric's values and alerts, so the order changes nothing. A
        metric may have one slice in a write (two versions of one would end each other's
        alerts)."""
        names = [s.metric.name for s in slices]
        if len(set(names)) != len(names):
            raise ValueError(f"a metric's slice is given twice in one write: {names}")
        with self.database.begin() as conn:
            written = results.write_metrics_windows(
                conn, stage, [(s.metric.name, s.version, s.windows) for s in slices])
            if evaluate_at is not None:
                evaluate_metrics(SqlAlertTransaction(conn), stage,
                                 [MetricWindows(s.metric, s.version, s.windows)
                                  for s in slices], evaluate_at)
            if rejected:
                dead_letters.write_dead_letters(conn, rejected)
            runs.finish_runs(conn, {s.run_id: len({w.window_start for w in s.windows})
                                    for s in slices},
                             status="succeeded", rows_read=rows_read)
            return written

    def end_alerts(self, metric: MetricSpec, version: int, stage: str, why: str,
                   now: datetime | None = None) -> int:
        with self.database.begin() as conn:
            return len(end_alerts(SqlAlertTransaction(conn), metric, version, stage, why, now))

    # -- StreamProgress -------------------------------------------------------------------

    def partition_reads(self, topics: Sequence[str]) -> list[PartitionRead]:
        with self.database.connect() as conn:
            return stream_status.read_partition_reads(conn, topics)

    # -- DeadLetterSink -------------------------------------------------------------------

    def write_dead_letters(self, letters: Iterable[DeadLetter]) -> int:
        with self.database.begin() as conn:
            return dead_letters.write_dead_letters(conn, letters)

    def recent_dead_letters(self, source: str | None = None,
                            limit: int = 100) -> list[DeadLetter]:
        with self.database.connect() as conn:
            return dead_letters.recent_dead_letters(conn, source, limit)


if TYPE_CHECKING:  # mypy checks that SqlStore implements every port
    from monitor.storage.ports import (
        DeadLetterSink,
        EvaluatingResultSink,
        MetricCatalog,
        ProfileStore,
        ResearchRecorder,
        ResultSink,
        RunLog,
        SliceSink,
        StateStore,
        ValueReader,
    )

    def _implements_ports(store: SqlStore) -> tuple[ResultSink, StateStore, ValueReader,
                                                     MetricCatalog, ProfileStore, RunLog,
                                                     DeadLetterSink, EvaluatingResultSink,
                                                     SliceSink, ResearchRecorder]:
        return (store, store, store, store, store, store, store, store, store, store)
