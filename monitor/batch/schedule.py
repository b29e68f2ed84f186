"""The batch stage on a schedule: one APScheduler job per metric, kept in the results database.

Each metric in batch gets a job whose id is its name. By default the job fires as each of
the metric's windows becomes final — at every window end (aligned to UTC like the windows
themselves) plus the metric's lateness plus a small delay — unless the metric's own cron
``schedule`` says otherwise. A fire runs the metric once through :class:`BatchRunner`, which
computes every closed window since the metric's watermark. That is what makes missing a
fire harmless: the fires missed while the scheduler was down collapse into one
(coalescing), and that one run catches up every window that closed meanwhile.

Jobs live in the ``apscheduler_jobs`` table of the results database, pickled by reference
to :func:`run_scheduled_metric` with plain arguments. Secrets are never stored in the
database, so those arguments hold the database URLs with their passwords masked; the
scheduler process keeps the real URLs in memory and the job looks them up there.

APScheduler 3 does not share a job store between schedulers: run one ``monitor batch
schedule`` per results database. It owns every job in the table and removes the jobs of
metrics it no longer schedules.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pandas as pd
import sqlalchemy as sa
from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from monitor.app_loading import load_app
from monitor.batch.engines import BatchEngine
from monitor.batch.runner import (
    BatchRunError,
    BatchRunner,
    Retry,
    RunSummary,
    closed_until,
    watermark,
)
from monitor.batch.sources import source_for
from monitor.errors import DefinitionError
from monitor.spec import MetricSpec
from monitor.storage.database import Database
from monitor.storage.database_url import mask_text, mask_url, normalize_url, url_secrets
from monitor.storage.store import SqlStore
from monitor.targets import NotInBatch, Target
from monitor.targets import target as stored_target

log = logging.getLogger(__name__)

JOBS_TABLE = "apscheduler_jobs"  # listed in monitor.storage.models.FOREIGN_TABLES
DEFAULT_MISFIRE_GRACE_S = 3600
DEFAULT_DELAY_S = 5.0
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # windows are aligned to multiples of their width

# The real URLs behind the masked ones stored with the jobs, for this process only.
_REAL_URLS: dict[str, str] = {}
# The engines of this process's jobs, by (engine, master): a Spark session is shared.
_ENGINES: dict[tuple[str | None, str | None], BatchEngine] = {}
_ENGINES_LOCK = threading.Lock()


def trigger_for(metric: MetricSpec, delay_s: float = DEFAULT_DELAY_S) -> BaseTrigger:
    """When ``metric``'s job fires: its cron ``schedule`` in UTC, or else each time one of
    its windows becomes final (window end + lateness) plus ``delay_s`` seconds.

    >>> import metrics
    >>> from monitor.schema import Schema
    >>> from monitor.spec import StreamSpec
    >>> spec = MetricSpec("n", StreamSpec("s", Schema.parse({})), metrics.count(),
    ...                   window="1h", lateness="5m")
    >>> trigger_for(spec, 10).get_next_fire_time(None, datetime(2026, 3, 1, 10, 42, tzinfo=UTC))
    datetime.datetime(2026, 3, 1, 11, 5, 10, tzinfo=datetime.timezone.utc)
    """
    if delay_s < 0:
        raise ValueError(f"the delay after a window closes must be >= 0 seconds, not {delay_s}")
    if metric.schedule:
        try:
            return CronTrigger.from_crontab(metric.schedule, timezone=UTC)
        except ValueError as err:
            raise DefinitionError(f"metric {metric.name!r}",
                                  f"schedule {metric.schedule!r} is not a valid cron "
                                  f"expression: {err}") from None
    offset = timedelta(microseconds=metric.lateness_ns // 1000, seconds=delay_s)
    return IntervalTrigger(seconds=metric.windows.width.total_seconds(),
                           start_date=EPOCH + offset, timezone=UTC)


def describe_trigger(metric: MetricSpec, delay_s: float = DEFAULT_DELAY_S) -> str:
    if metric.schedule:
        return f"cron {metric.schedule!r} (UTC)"
    return (f"as each {metric.window} window closes (its end + {metric.lateness} lateness "
            f"+ {delay_s:g} s)")


@dataclass(frozen=True)
class ScheduleSettings:
    """What every job of one scheduler shares."""

    app_target: str  # "module:attribute" of the Monitor
    database_url: str
    source_url: str | None = None  # None: the streams' tables are in the results database
    misfire_grace_s: int = DEFAULT_MISFIRE_GRACE_S
    delay_s: float = DEFAULT_DELAY_S
    retry: Retry = field(default_factory=Retry)
    engine: str | None = None  # "local" or "spark" for every stream; None: the stream's
    master: str | None = None  # Spark's, for every stream; None: the stream's, else local[*]

    def __post_init__(self) -> None:
        if self.misfire_grace_s < 1:
            raise ValueError(f"the misfire grace time must be at least 1 second, not "
                             f"{self.misfire_grace_s}")


@dataclass(frozen=True)
class ScheduledMetric:
    """A metric's job as the scheduler starts: when it fires next, and why then."""

    metric: str
    version: int
    trigger: str
    next_run: datetime
    missed: bool  # a fire fell due while the scheduler was down
    catching_up: bool  # ... and it runs now, being within the misfire grace time

    def describe(self) -> str:
        when = f"{self.next_run:%Y-%m-%d %H:%M:%S} UTC"
        head = f"{self.metric} v{self.version}: {self.trigger}; "
        if self.catching_up:
            return head + f"missed while stopped, catching up now ({when})"
        if self.missed:
            return head + (f"missed while stopped, longer ago than the misfire grace time; "
                           f"the next run ({when}) catches up")
        return head + f"next run {when}"


class BatchScheduler:
    """APScheduler with one persistent job per metric, in the results database.

    ``start`` starts it in the background and returns at once; the CLI waits for a signal,
    tests poll the database. ``shutdown`` waits for running jobs.
    """

    def __init__(self, settings: ScheduleSettings) -> None:
        self.settings = settings
        self.database = Database(settings.database_url)
        self.scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=self.database.engine,
                                                     tablename=JOBS_TABLE)},
            job_defaults={"coalesce": True, "max_instances": 1,
                          "misfire_grace_time": settings.misfire_grace_s},
            timezone=UTC,
        )

    def start(self, targets: Sequence[Target]) -> list[ScheduledMetric]:
        """Schedule ``targets`` (replacing the stored jobs) and start firing."""
        triggers = {t.metric.name: trigger_for(t.metric, self.settings.delay_s)
                    for t in targets}  # a bad cron fails here, before anything starts
        self.database.check()
        self.scheduler.start(paused=True)
        try:
            scheduled = [self._schedule(t, triggers[t.metric.name]) for t in targets]
            for job in self.scheduler.get_jobs():
                if job.id not in triggers:
                    log.info("removing the stored job of %r, which is not scheduled now",
                             job.id)
                    job.remove()
        except BaseException:
            self.scheduler.shutdown(wait=False)
            raise
        self.scheduler.resume()
        return scheduled

    def shutdown(self, wait: bool = True) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)
        self.database.dispose()

    def _schedule(self, target: Target, trigger: BaseTrigger) -> ScheduledMetric:
        name = target.metric.name
        now = datetime.now(UTC)
        settings = self.settings
        due = _stored_next_run(self.scheduler, name)
        missed = due is not None and due <= now
        latest = _latest_fire(trigger, due, now) if due is not None and missed else None
        # APScheduler would skip a fire later than the grace time; say so instead.
        catching_up = latest is not None and now - latest <= timedelta(
            seconds=settings.misfire_grace_s)
        first = latest if latest is not None and catching_up else trigger.get_next_fire_time(
            None, now)
        assert first is not None  # neither trigger has an end date
        self.scheduler.add_job(
            run_scheduled_metric, trigger=trigger, id=name, name=f"batch {name}",
            args=[settings.app_target, name, remember_url(settings.database_url),
                  remember_url(settings.source_url) if settings.source_url else None],
            kwargs={"retry_attempts": settings.retry.attempts,
                    "retry_backoff_s": settings.retry.backoff_seconds,
                    "engine": settings.engine, "master": settings.master},
            replace_existing=True, coalesce=True, max_instances=1,
            misfire_grace_time=settings.misfire_grace_s, next_run_time=first,
        )
        return ScheduledMetric(name, target.version,
                               describe_trigger(target.metric, settings.delay_s), first,
                               missed=missed, catching_up=catching_up)


def _stored_next_run(scheduler: BackgroundScheduler, job_id: str) -> datetime | None:
    """When the stored job was due next (None if there is none, or it cannot be read)."""
    try:
        job: Job | None = scheduler.get_job(job_id)
    except Exception as err:  # e.g. pickled by an older version of this module
        log.warning("the stored job of %r cannot be read (%s); replacing it", job_id, err)
        return None
    return None if job is None else job.next_run_time


def _latest_fire(trigger: BaseTrigger, stored_due: datetime, now: datetime) -> datetime:
    """The latest fire of ``trigger`` due at ``now``, the stored job having been due at
    ``stored_due`` (before ``now``): the one missed fire to run at once.

    It is on the trigger's grid even if the stored job's was another (the window, delay or
    cron changed): an interval trigger counts its next fires from the previous one.
    """
    if isinstance(trigger, IntervalTrigger):
        upcoming = trigger.get_next_fire_time(None, now)
        assert upcoming is not None  # no end date
        return upcoming if upcoming <= now else upcoming - trigger.interval
    latest = stored_due
    while (following := trigger.get_next_fire_time(latest, now)) is not None and (
            following <= now):
        latest = following
    return latest


def remember_url(url: str) -> str:
    """The URL to store with a job (password masked); this process keeps the real one."""
    real = normalize_url(url)
    stored = mask_url(real)
    _REAL_URLS[stored] = real
    return stored


def _real_url(stored: str) -> str:
    return _REAL_URLS.get(stored, stored)


def run_scheduled_metric(app_target: str, metric: str, database_url: str,
                         source_url: str | None = None, *, retry_attempts: int = 3,
                         retry_backoff_s: float = 2.0, engine: str | None = None,
                         master: str | None = None) -> None:
    """One fire of a metric's job: every window closed since its watermark, computed once.

    Never raises, so a failure cannot stop the scheduler: a failed run is recorded in
    the batch runs with its error (by the runner, or here when it failed before reaching
    a window), logged, and tried again at the next fire.
    """
    urls = [_real_url(database_url)] + ([_real_url(source_url)] if source_url else [])
    secrets = tuple(secret for url in urls for secret in url_secrets(url))
    try:
        summary = run_metric_once(app_target, metric, urls[0],
                                  urls[1] if source_url else None,
                                  Retry(retry_attempts, retry_backoff_s),
                                  _engine(engine, master))
    except Exception as err:
        log.error("scheduled batch run of %r failed: %s", metric,
                  mask_text(f"{type(err).__name__}: {err}", secrets))
        log.debug("%s", mask_text("".join(traceback.format_exception(err)), secrets))
        return
    if summary is not None:
        log.info("scheduled batch run: %s", _describe(summary))


def _engine(engine: str | None, master: str | None) -> BatchEngine:
    """The scheduler process's engine: one Spark session for all its jobs, kept between
    fires (starting Spark takes seconds)."""
    with _ENGINES_LOCK:
        return _ENGINES.setdefault((engine, master), BatchEngine(engine, master))


def run_metric_once(app_target: str, metric: str, database_url: str, source_url: str | None,
                    retry: Retry, engine: BatchEngine | None = None) -> RunSummary | None:
    """Run ``metric`` once, from its watermark; None when it is no longer in batch."""
    spec = load_app(app_target).get(metric)
    store = SqlStore.open(database_url)
    source_engine = sa.create_engine(normalize_url(source_url) if source_url
                                     else store.database.url)
    try:
        try:
            target = stored_target(spec, store)
        except NotInBatch as err:
            log.warning("scheduled batch run skipped: %s", err)
            return None
        sources = (engine or BatchEngine()).sources(source_engine)
        runner = BatchRunner(store, lambda m: sources(m.stream), retry=retry,
                             label_source_for=lambda s: source_for(s, source_engine))
        try:
            [summary] = runner.run_many([target])  # leaves out what streaming counts
            return summary
        except BatchRunError:
            raise  # the runner recorded each failed slice
        except Exception as err:  # failed before any window: record it here
            _record_failure(store, target, err, url_secrets(database_url)
                            + (url_secrets(source_url) if source_url else ()))
            raise
    finally:
        source_engine.dispose()
        store.close()


def _record_failure(store: SqlStore, target: Target, err: Exception,
                    secrets: tuple[str, ...]) -> None:
    """A failed run over the windows the run would have computed, with the error."""
    name, version = target.metric.name, target.version
    try:
        until = closed_until(target.metric, pd.Timestamp.now(tz="UTC"))
        since = min(watermark(store, name, version) or until, until)
        run_id = store.start_run(name, version, since.to_pydatetime(), until.to_pydatetime())
        store.finish_run(run_id, status="failed", rows_read=0, windows_written=0,
                         error=mask_text(f"{type(err).__name__}: {err}", secrets))
    except Exception as record_err:
        log.warning("could not record the failed run of %r: %s", name,
                    mask_text(str(record_err), secrets))


def _describe(summary: RunSummary) -> str:
    head = f"{summary.metric} v{summary.version}:"
    if summary.up_to_date:
        return f"{head} up to date{summary.left_to_streaming()}"
    return (f"{head} {summary.windows_written} windows from {summary.since} to "
            f"{summary.until}, {summary.rows_read} rows read{summary.left_to_streaming()}")


__all__ = ["BatchScheduler", "ScheduleSettings", "ScheduledMetric", "run_scheduled_metric",
           "trigger_for"]
