"""``monitor batch schedule``: the batch stage as a daemon, one job per metric."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

import click

from monitor.alerts.dispatcher import DispatcherThread
from monitor.batch.schedule import (
    DEFAULT_DELAY_S,
    DEFAULT_MISFIRE_GRACE_S,
    BatchScheduler,
    ScheduleSettings,
)
from monitor.cli.app import app_target, find_metric, load_app
from monitor.cli.batch_cmd import batch_group, engine_options, source_url_option
from monitor.cli.db_cmd import database_url_option
from monitor.errors import DefinitionError, MonitorError
from monitor.notifiers.service import start_dispatcher_thread
from monitor.registry import Monitor
from monitor.storage.database import Database, DatabaseUnavailableError
from monitor.storage.database_url import mask_url
from monitor.storage.outages import wait_for_database
from monitor.storage.store import SqlStore
from monitor.targets import NotInBatch, Target, target

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@click.command("schedule")
@click.option("--metric", "metrics", multiple=True, metavar="NAME",
              help="Only this metric (repeat for more) [default: every metric in batch].")
@click.option("--misfire-grace", type=click.IntRange(min=1), default=DEFAULT_MISFIRE_GRACE_S,
              show_default=True, metavar="SECONDS",
              help="How late a missed run may still start. Runs missed while the scheduler "
                   "was down collapse into one, started on restart if the latest of them is "
                   "at most this late; otherwise the next run catches up.")
@click.option("--delay", type=click.FloatRange(min=0), default=DEFAULT_DELAY_S,
              show_default=True, metavar="SECONDS",
              help="How long after a window becomes final (its end + the metric's lateness) "
                   "its run starts.")
@click.option("--dispatch-alerts", is_flag=True,
              help="Also deliver alert notifications (as `monitor alerts dispatch` does) "
                   "in a thread of this process.")
@engine_options
@database_url_option
@source_url_option
@click.pass_context
def schedule_command(ctx: click.Context, metrics: tuple[str, ...], misfire_grace: int,
                     delay: float, dispatch_alerts: bool, engine: str | None,
                     master: str | None,
                     database_url: str, source_url: str | None) -> None:
    """Run every metric in batch as each of its windows closes, until SIGINT or SIGTERM.

    Each run computes every window closed since the metric's watermark, so windows that
    closed while the scheduler was down are caught up when it restarts. A metric's cron
    schedule (schedule= in mon.metric) overrides its window. Jobs are kept in the
    results database (table apscheduler_jobs): run one scheduler per database. On Spark
    (--engine spark, or a stream's engine=) the runs compute on Spark (one session for
    the scheduler's life).
    """
    located = app_target(ctx.obj["app_target"])  # the jobs import the app from here
    app = load_app(located)
    click.echo(f"results: {mask_url(database_url)}")
    stop = threading.Event()
    previous = {sig: signal.signal(sig, _stopper(stop)) for sig in STOP_SIGNALS}
    scheduler: BatchScheduler | None = None
    dispatcher: DispatcherThread | None = None
    try:
        if not _wait_for_database(database_url, stop):
            click.echo("stopped while waiting for the database")
            return
        targets = _targets(app, database_url, metrics)
        if not targets:
            raise click.ClickException("no metric is in the batch stage; promote one with "
                                       "`monitor promote METRIC --to batch --reason ...`")
        settings = ScheduleSettings(located, database_url, source_url,
                                    misfire_grace_s=misfire_grace, delay_s=delay,
                                    engine=engine, master=master)
        scheduler = BatchScheduler(settings)
        dispatcher = _dispatcher(app, database_url) if dispatch_alerts else None
        try:
            scheduled = scheduler.start(targets)
        except (MonitorError, DatabaseUnavailableError) as err:
            raise click.ClickException(str(err)) from None
        for job in scheduled:
            click.echo(job.describe())
        click.echo("scheduler running; stop it with Ctrl-C or SIGTERM")
        while not stop.wait(1.0):  # a timed wait: signal handlers run in between
            pass
        click.echo("stopping: waiting for running jobs to finish")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)  # a second Ctrl-C while waiting interrupts
        if scheduler is not None:
            scheduler.shutdown(wait=True)
        if dispatcher is not None:
            dispatcher.stop()
            dispatcher.dispatcher.store.close()
    click.echo("scheduler stopped")


def _wait_for_database(database_url: str, stop: threading.Event) -> bool:
    """Wait for the results database at start (a scheduler started before its database,
    at a reboot say, waits as it rides out an outage that starts later); False if stopped
    first."""
    with Database(database_url) as database:
        try:
            return wait_for_database(database, stop)
        except DatabaseUnavailableError as err:  # e.g. a wrong password: no outage
            raise click.ClickException(str(err)) from None


def _dispatcher(app: Monitor, database_url: str) -> DispatcherThread:
    try:
        thread = start_dispatcher_thread(Database(database_url), app.routes)
    except ValueError as err:  # e.g. a malformed MONITOR_SMTP_URL
        raise click.ClickException(str(err)) from None
    channels = ", ".join(thread.dispatcher.channels) or "none configured"
    click.echo(f"dispatching alerts to: {channels}")
    return thread


def _targets(app: Monitor, database_url: str, names: tuple[str, ...]) -> list[Target]:
    """The metrics to schedule, saying why each other metric is skipped."""
    specs = [find_metric(app, name) for name in names] or list(app.metrics.values())
    targets = []
    try:
        with SqlStore.open(database_url) as store:
            for spec in specs:
                try:
                    targets.append(target(spec, store))
                except NotInBatch as err:
                    click.echo(f"skip {err}")
                except DefinitionError as err:  # in batch but cannot run: the others can
                    click.echo(f"skip {err}", err=True)
    except DatabaseUnavailableError as err:
        raise click.ClickException(str(err)) from None
    return targets


def _stopper(stop: threading.Event) -> Callable[[int, FrameType | None], None]:
    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()
    return handle


# `monitor batch schedule`: the CLI loads the batch group from here, with this command.
batch_group.add_command(schedule_command)
