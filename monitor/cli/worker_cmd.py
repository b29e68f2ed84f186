"""``monitor stream worker``: a Faust worker computing the streaming-stage metrics."""

from __future__ import annotations

import threading
from collections.abc import Mapping

import click

from monitor.cli.app import app_target, load_app
from monitor.cli.db_cmd import database_url_option
from monitor.cli.kafka_options import bootstrap_option
from monitor.errors import MonitorError
from monitor.stage_switch import switch_lead
from monitor.storage.database import DatabaseUnavailableError
from monitor.storage.database_url import mask_url
from monitor.storage.outages import wait_for_database
from monitor.storage.store import SqlStore
from monitor.targets import batch_targets
from streaming.alert_hook import evaluate_alerts
from streaming.broker import BrokerError, wait_until_reachable
from streaming.codec import MAX_MESSAGE_BYTES
from streaming.memory_bounds import PREFETCH_BYTES
from streaming.processor import StreamSettings

LOG_LEVELS = ["crit", "error", "warn", "info", "debug"]


@click.command("worker")
@database_url_option
@bootstrap_option
@click.option("--group", metavar="NAME",
              help="Consumer group: workers with the same group share the partitions "
                   "[default: monitor-APPNAME].")
@click.option("--partitions", type=click.IntRange(min=1), default=4, show_default=True,
              help="Partitions of the stream topics, if the worker has to create them.")
@click.option("--idle-timeout", type=click.FloatRange(min=0.1), default=10.0,
              show_default=True, metavar="SECONDS",
              help="A partition without messages this long stops holding windows open: its "
                   "watermark follows the wall clock.")
@click.option("--max-future", type=click.FloatRange(min=0), default=StreamSettings.max_future_s,
              show_default=True, metavar="SECONDS",
              help="Events further ahead of the wall clock are dead-lettered (a device "
                   "clock may be a few minutes off; further ahead is more likely wrong).")
@click.option("--lifecycle-poll", type=click.FloatRange(min=0.1), default=5.0,
              show_default=True, metavar="SECONDS",
              help="How often the worker reads the catalog for stage changes (promotions, "
                   "demotions, new versions): it applies them within this time, from the "
                   "window boundary `monitor promote` stated, without a restart.")
@click.option("--watermark-outliers", type=click.IntRange(min=0),
              default=StreamSettings.watermark_outliers, show_default=True, metavar="N",
              help="A partition's watermark (which decides what is too late for a closed "
                   "window) sets its N highest event times aside, so N events with wrong "
                   "clocks cannot make valid events late.")
@click.option("--watermark-lead", type=click.FloatRange(min=0),
              default=StreamSettings.watermark_lead_s, show_default=True, metavar="SECONDS",
              help="How far a partition's watermark may run ahead of the wall clock (0: "
                   "devices with fast clocks cannot close a window still filling). Give a "
                   "replay of future events compressed in time as much as it runs ahead.")
@click.option("--topic", "topics", multiple=True, metavar="STREAM=TOPIC",
              help="Read STREAM from TOPIC instead of the topic the app declares (repeat for "
                   "more streams), e.g. a staging topic.")
@click.option("--max-message-bytes", type=click.IntRange(min=1), default=MAX_MESSAGE_BYTES,
              show_default=True, help="Larger messages are dead-lettered as oversized.")
@click.option("--prefetch-bytes", type=click.IntRange(min=1),
              default=PREFETCH_BYTES, show_default=True,
              help="Faust fetches at most this many bytes of messages ahead of each stream "
                   "(and at most 1,024 messages): with --max-message-bytes, what bounds a "
                   "worker's memory.")
@click.option("--session-timeout", type=click.FloatRange(min=1), default=10.0,
              show_default=True, metavar="SECONDS",
              help="How long the group waits for a silent worker before giving its partitions "
                   "to the others.")
@click.option("--loglevel", type=click.Choice(LOG_LEVELS), default="warn", show_default=True)
@click.option("--health-port", type=click.IntRange(min=0, max=65535), metavar="PORT",
              help="Serve /healthz (the worker's loop runs), /readyz (200 when it owns "
                   "partitions and none lags more than --ready-lag; else 503 with the "
                   "reason) and /metrics (Prometheus) on PORT; 0 picks a free port and "
                   "logs it [default: not served].")
@click.option("--health-host", default="0.0.0.0", show_default=True, metavar="HOST",
              help="The address /healthz, /readyz and /metrics listen on.")
@click.option("--ready-lag", type=click.FloatRange(min=0, min_open=True), default=60.0,
              show_default=True, metavar="SECONDS",
              help="/readyz fails while a partition's stored watermark is further behind "
                   "the wall clock (an idle partition is about --idle-timeout behind).")
@click.option("--offset-lag", is_flag=True,
              help="Also serve each partition's lag in messages, from the broker's "
                   "high-water marks. Only for brokers that report end offsets right "
                   "(Kafka): the embedded broker (Tansu) does not.")
@click.pass_context
def worker(ctx: click.Context, database_url: str, bootstrap: str, group: str | None,
           partitions: int, idle_timeout: float, max_future: float, lifecycle_poll: float,
           watermark_outliers: int,
           watermark_lead: float, topics: tuple[str, ...],
           max_message_bytes: int, prefetch_bytes: int, session_timeout: float, loglevel: str,
           health_port: int | None, health_host: str, ready_lag: float,
           offset_lag: bool) -> None:
    """Compute every metric in the streaming stage from its stream's Kafka topic (a
    metric joined to labels from its label stream's topic too: predictions and labels
    wait in the database until the horizon passes, and windows are revised as labels
    land; bad labels are counted as STREAM.label_join.dead_letters).

    Start as many workers (same --group) as you like: they share the topics' partitions.
    Values of a window are stored once every partition's event time has passed its end
    plus the metric's lateness, and its alert rules are evaluated then (run `monitor alerts
    dispatch` to deliver the notifications). Bad messages go to TOPIC.dead-letters with the reason
    and are counted as the metric STREAM.dead_letters; so are messages holding a value the
    database refuses to store. Stop with Ctrl-C or SIGTERM: the worker stores what it holds
    and is gone within 15 s whatever the database does; what it could not store was not
    acknowledged, and a killed worker loses nothing either: the next one resumes from the
    stored offsets. Started while the database is down, it waits for it (one line per
    try); a database outage later is retried, holding the micro-batch. A worker is two
    processes
    (Faust, and the processor that decodes, computes and stores); if the processor dies,
    the worker exits with code 3: start it again. It reads every stream of the app that
    has a topic and follows the catalog: a promotion to streaming, a demotion or a new
    version applies within --lifecycle-poll seconds, from the window boundary `monitor
    promote` stated (at least MONITOR_SWITCH_LEAD after the change), no restart needed;
    --max-future may not exceed that lead. Restart the workers only for a version whose
    code changed (the worker says so and /readyz fails) and for metrics joined to labels,
    which are read at start.
    With --health-port it serves probes and Prometheus metrics; `monitor stream status`
    shows the whole group from the database.
    """
    import faust  # imported here: Faust is slow to import and only this command needs it

    from streaming.health_server import HealthServer
    from streaming.worker import WorkerSettings, build_app, streamable
    from streaming.worker_metrics import WorkerHealth

    if ready_lag <= idle_timeout:
        raise click.BadParameter(
            f"an idle partition lags by about --idle-timeout ({idle_timeout:g} s): give a "
            "larger bound", param_hint="--ready-lag")
    lead = switch_lead()
    if max_future > lead.total_seconds():
        raise click.BadParameter(
            f"events up to --max-future ({max_future:g} s) ahead are absorbed, so it may "
            f"not exceed MONITOR_SWITCH_LEAD ({lead.total_seconds():g} s), the time a stage "
            "change leaves workers to see it before its boundary", param_hint="--max-future")
    app = load_app(ctx.obj["app_target"])
    store = SqlStore.open(database_url)
    try:
        # Started during an outage, the worker waits for the database (a line per try)
        # rather than exit, as it does when the outage starts later.
        wait_for_database(store.database, threading.Event())
        joined = [t for t in batch_targets(app, store, stages=("streaming",))
                  if t.metric.labels is not None]
    except (MonitorError, DatabaseUnavailableError) as err:
        raise click.ClickException(str(err)) from None
    finally:
        store.database.dispose()  # the worker writes through a pool of its own, below
    try:
        wait_until_reachable(bootstrap, 10.0)
    except BrokerError as err:
        raise click.ClickException(f"{err}\nStart the embedded broker with `monitor broker`, "
                                   "or point --bootstrap at your Kafka cluster.") from None
    settings = WorkerSettings(
        bootstrap=bootstrap, group=group or f"monitor-{app.name}", partitions=partitions,
        topics=_topic_overrides(topics, app.streams), session_timeout_s=session_timeout,
        prefetch_bytes=prefetch_bytes, log_level=loglevel,
        stream=StreamSettings(idle_timeout_s=idle_timeout, max_future_s=max_future,
                              max_message_bytes=max_message_bytes,
                              watermark_outliers=watermark_outliers,
                              watermark_lead_s=watermark_lead,
                              lifecycle_poll_s=lifecycle_poll,
                              switch_lead_s=lead.total_seconds()))
    metrics = [m for m in app.metrics.values() if streamable(m, settings)]
    if not metrics and not joined:
        raise click.ClickException("no metric of the app reads a stream with a topic; give "
                                   "one with mon.stream(NAME, topic=...) or --topic")
    health = None if health_port is None else WorkerHealth(ready_lag, offset_lag=offset_lag)
    # The processors' processes import the app again, as found here.
    faust_app = build_app(settings, database_url, app_target(ctx.obj["app_target"]), metrics,
                          joined, after_final=evaluate_alerts, health=health)
    if health is not None and health_port is not None:
        try:
            server = HealthServer(health, health_host, health_port)
        except OSError as err:
            raise click.ClickException(f"cannot serve the probes on {health_host}:"
                                       f"{health_port}: {err}") from None
        click.echo(f"probes and metrics on http://{health_host}:{server.port}/ "
                   "(/healthz, /readyz, /metrics)", err=True)
    streams = ", ".join(sorted({m.stream.name for m in metrics}))
    click.echo(f"following the streaming stage of the metrics of {streams or 'no stream'} "
               f"from {bootstrap} into {mask_url(database_url)} (group {settings.group}): "
               f"stage changes apply within {lifecycle_poll:g} s", err=True)
    if joined:
        click.echo("metrics joined to labels (" + ", ".join(t.metric.name for t in joined)
                   + ") are read at start: restart the workers after promoting or demoting "
                   "one", err=True)
    faust.Worker(faust_app, loglevel=loglevel, quiet=True).execute_from_commandline()


def _topic_overrides(pairs: tuple[str, ...], streams: Mapping[str, object]) -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        name, _, topic = pair.partition("=")
        if not name or not topic:
            raise click.BadParameter(f"{pair!r} should look like STREAM=TOPIC",
                                     param_hint="--topic")
        if name not in streams:
            raise click.BadParameter(f"the app has no stream {name!r}; it has "
                                     f"{', '.join(sorted(streams))}", param_hint="--topic")
        overrides[name] = topic
    return overrides
