"""``monitor alerts ...``: see, silence and deliver alerts.

The batch stage (and the streaming stage) evaluate alert rules as they store values and
queue notifications in the results database; ``monitor alerts dispatch`` delivers them to
Slack and email. Channel secrets come only from the environment and are never printed.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
from datetime import datetime, timedelta
from typing import Any

import click

from monitor.alerts.policy import Policy
from monitor.alerts.ports import DeliveryError, scrub
from monitor.alerts.records import AlertKey, Notification
from monitor.alerts.routing import Route
from monitor.alerts.settings import AlertSettings
from monitor.alerts.silences import Silence, parse_duration, parse_label
from monitor.cli.app import load_app
from monitor.cli.db_cmd import database_url_option
from monitor.cli.promote_cmd import current_user
from monitor.cli.values_cmd import check_results_database
from monitor.notifiers.channels import build_channels
from monitor.notifiers.service import dispatcher_from_env
from monitor.storage import alert_states, outbox, silences
from monitor.storage.database import Database, DatabaseUnavailableError
from monitor.storage.database_url import mask_url
from monitor.storage.outages import wait_for_database
from monitor.storage.types import utc_now

log = logging.getLogger(__name__)


@click.group("alerts")
def alerts_group() -> None:
    """See, silence and deliver alerts.

    Alerts are evaluated where values are stored (batch and streaming) and queued in the
    results database. Run `monitor alerts dispatch` to deliver them to the channels
    configured in the environment: MONITOR_SLACK_WEBHOOK_URL (a Slack incoming webhook),
    MONITOR_SMTP_URL with MONITOR_ALERT_EMAIL_TO (email), MONITOR_ALERT_ROUTES (routes as
    JSON) and MONITOR_DASHBOARD_URL (where links point).
    """


def _settings() -> AlertSettings:
    try:
        return AlertSettings.from_env()
    except ValueError as err:
        raise click.ClickException(str(err)) from None


def _open(database_url: str) -> Database:
    check_results_database(database_url)
    return Database(database_url)


def _when(value: datetime | None) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M} UTC"


def _number(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.6g}"


@alerts_group.command("list")
@click.option("--metric", metavar="NAME", help="Only this metric.")
@click.option("--history", "history", default=20, show_default=True, metavar="N",
              help="How many recent transitions to show (0: none).")
@database_url_option
def alerts_list(metric: str | None, history: int, database_url: str) -> None:
    """Alerts firing and pending now, recent transitions and undelivered notifications."""
    with _open(database_url) as database, database.connect() as conn:
        active = alert_states.active_alerts(conn, metric=metric)
        events = alert_states.recent_events(conn, limit=history, metric=metric) if history else []
        deliveries = outbox.recent_deliveries(conn, limit=200)
        queued = outbox.count_unrouted(conn)
    if not active:
        click.echo("no alert is firing or pending")
    for alert in active:
        a = alert.key
        click.echo(f"{alert.status.upper():8} {a.metric} v{a.version} [{a.segment}] {a.rule} "
                   f"({alert.severity}, {a.stage}): {_number(alert.value)} vs "
                   f"{_number(alert.bound)} since window {_when(alert.active_since)}, "
                   f"last window {_when(alert.last_window_start)}")
    if events:
        click.echo("\nrecent transitions (newest first):")
    for event in events:
        e = event.key
        click.echo(f"  {_when(event.window_start)}  {event.transition:9} {e.metric} "
                   f"[{e.segment}] {e.rule}: {_number(event.value)} ({event.detail})")
    undelivered = [d for d in deliveries if d.status in ("pending", "failed")]
    if queued:
        click.echo(f"\n{queued} notification(s) queued and not dispatched yet: is "
                   "`monitor alerts dispatch` running?")
    if undelivered:
        click.echo("\nundelivered notifications:")
    for delivery in undelivered:
        n = delivery.notification
        click.echo(f"  {delivery.status:7} {delivery.channel:5} {n.kind} {n.alert.metric} "
                   f"[{n.alert.segment}] {n.alert.rule}, {delivery.attempts} attempts"
                   + (f": {delivery.last_error}" if delivery.last_error else ""))


@alerts_group.command("silence")
@click.option("--metric", metavar="NAME", help="Silence alerts of this metric.")
@click.option("--segment", metavar="SEGMENT", help='Only this segment, e.g. "country=BR" or "*".')
@click.option("--label", "labels", multiple=True, metavar="NAME=VALUE",
              help="Only alerts with this label, e.g. country=BR or owner=home-ml (repeat "
                   "for more; all must match).")
@click.option("--for", "duration", required=True, metavar="DURATION",
              help="How long, e.g. 30m, 2h or 1d; the silence ends by itself then.")
@click.option("--reason", required=True, help="Why, for whoever sees the silence later.")
@click.option("--by", default=current_user, show_default="$USER", help="Who silences.")
@database_url_option
def alerts_silence(metric: str | None, segment: str | None, labels: tuple[str, ...],
                   duration: str, reason: str, by: str, database_url: str) -> None:
    """Mute notifications of matching alerts for a while.

    Alerts go on being evaluated and listed; their notifications are recorded as
    silenced instead of sent. Give at least one of --metric, --segment, --label.
    """
    try:
        length = parse_duration(duration)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--for") from None
    try:
        matchers = dict(parse_label(label) for label in labels)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--label") from None
    now = utc_now()
    try:
        wanted = Silence(None, metric, segment, matchers, now, now + length, reason, by)
    except ValueError as err:
        raise click.UsageError(f"{err}: pass --metric, --segment or --label") from None
    with _open(database_url) as database, database.begin() as conn:
        created = silences.add_silence(conn, wanted, now)
        firing = [a for a in alert_states.active_alerts(conn)
                  if created.matches(a.labels, now)]
    click.echo(f"silence {created.id}: {created.describe()} until {_when(created.ends_at)} "
               f"({reason}); it matches {len(firing)} alert(s) firing or pending now")


@alerts_group.command("silences")
@click.option("--all", "include_expired", is_flag=True, help="Include ended silences.")
@database_url_option
def alerts_silences(include_expired: bool, database_url: str) -> None:
    """Active silences (with --all, ended ones too)."""
    now = utc_now()
    with _open(database_url) as database, database.connect() as conn:
        found = silences.list_silences(conn, now, include_expired=include_expired)
    if not found:
        click.echo("no active silence" if not include_expired else "no silence")
    for item in found:
        state = "active" if item.active(now) else "ended"
        click.echo(f"{item.id}  {state:6} {item.describe()} until {_when(item.ends_at)} "
                   f"by {item.created_by}: {item.reason}")


@alerts_group.command("unsilence")
@click.argument("silence_id", type=int, metavar="ID")
@database_url_option
def alerts_unsilence(silence_id: int, database_url: str) -> None:
    """End silence ID now (see `monitor alerts silences` for ids)."""
    with _open(database_url) as database, database.begin() as conn:
        ended = silences.end_silence(conn, silence_id, utc_now())
    if not ended:
        raise click.ClickException(f"no active silence {silence_id}; see "
                                   "`monitor alerts silences --all`")
    click.echo(f"silence {silence_id} ended")


def _duration_option(name: str, default: str, text: str) -> Any:
    def check(ctx: click.Context, param: click.Parameter, value: str) -> timedelta:
        try:
            return parse_duration(value) if value not in ("0", "0s") else timedelta(0)
        except ValueError as err:
            raise click.BadParameter(str(err)) from None

    return click.option(name, default=default, show_default=True, metavar="DURATION",
                        callback=check, help=text)


@alerts_group.command("dispatch")
@click.option("--once", is_flag=True, help="Run one round and exit (for cron or a test).")
@click.option("--poll", "poll_seconds", default=1.0, show_default=True, metavar="SECONDS",
              help="Seconds between rounds.")
@_duration_option("--group-wait", "30s", "How long a new group of notifications waits for "
                                         "others to join it before it is sent.")
@_duration_option("--repeat-interval", "4h", "Remind about an alert still firing this often.")
@click.option("--no-resolved", is_flag=True, help="Do not send resolved notices.")
@database_url_option
@click.pass_context
def alerts_dispatch(ctx: click.Context, once: bool, poll_seconds: float,
                    group_wait: timedelta, repeat_interval: timedelta, no_resolved: bool,
                    database_url: str) -> None:
    """Deliver queued notifications to Slack and email, with retries, until stopped.

    Routes come from MONITOR_ALERT_ROUTES, then from the app's mon.route(...) when --app
    or MONITOR_APP is given; notifications no route matches go to every configured
    channel. Safe to stop at any time (Ctrl-C): the next dispatcher resumes from the
    outbox. Run one per database.
    """
    settings = _settings()
    app_routes: list[Route] = []
    if ctx.obj and ctx.obj.get("app_target"):
        app_routes = load_app(ctx.obj["app_target"]).routes
    channels = build_channels(settings)
    click.echo(f"results: {mask_url(database_url)}", err=True)
    click.echo(f"channels: {_describe_channels(settings) or 'none configured'}", err=True)
    if not channels:
        click.echo(f"warning: no channel is configured; {settings.missing('slack')}, or "
                   f"{settings.missing('email')}. Notifications are marked unrouted.",
                   err=True)
    policy = Policy(group_wait=group_wait, repeat_interval=repeat_interval,
                    send_resolved=not no_resolved)
    if once:
        with _open(database_url) as database:
            dispatcher = dispatcher_from_env(database, app_routes, policy, settings=settings)
            try:
                click.echo(str(dispatcher.run_once()))
            except DatabaseUnavailableError as err:
                raise click.ClickException(str(err)) from None
        return
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        # A dispatcher started before its database (a reboot, a restart of both) waits
        # for it, as it rides out an outage that starts later.
        with Database(database_url) as waiting:
            try:
                reachable = wait_for_database(waiting, stop)
            except DatabaseUnavailableError as err:  # e.g. a wrong password: no outage
                raise click.ClickException(str(err)) from None
        if reachable:
            with _open(database_url) as database:
                dispatcher = dispatcher_from_env(database, app_routes, policy,
                                                 settings=settings)
                click.echo(f"dispatching every {poll_seconds:g} s; Ctrl-C to stop", err=True)
                dispatcher.run(stop, poll_seconds)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    click.echo("dispatcher stopped", err=True)


def _describe_channels(settings: AlertSettings) -> str:
    parts = []
    if settings.slack_webhook_url:
        parts.append("slack (webhook from MONITOR_SLACK_WEBHOOK_URL)")
    if "email" in settings.configured_channels:
        parts.append(f"email to {', '.join(settings.email_to)}")
    return ", ".join(parts)


@alerts_group.command("test")
@click.option("--channel", required=True, type=click.Choice(["slack", "email"]),
              help="The channel to send a test message to.")
def alerts_test(channel: str) -> None:
    """Send a test message through a channel, to check its settings end to end."""
    settings = _settings()
    channels = build_channels(settings)
    if channel not in channels:
        raise click.ClickException(f"{channel} is not configured: {settings.missing(channel)}")
    now = utc_now()
    start = now.replace(minute=0, second=0, microsecond=0)
    key = AlertKey("monitor-test", 1, "batch", "test message", "*")
    note = Notification(key.digest("test", now.isoformat()), "test", key, "info",
                        {"metric": "monitor-test", "severity": "info"}, start,
                        start + timedelta(hours=1), math.nan, math.nan,
                        f"a test from `monitor alerts test` by {current_user()}", now)
    try:
        channels[channel].send(note.key, [note])
    except DeliveryError as err:
        raise click.ClickException(
            f"the test message was not delivered: {scrub(str(err), settings.secrets())}"
        ) from None
    click.echo(f"sent a test message to {channel} (notification id {note.key})")
