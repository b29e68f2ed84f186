"""``monitor demo``: the example app taken through every stage, live, in one command.

The story: the music-streaming homepage has been running for a while. Its last 56 hours
of events are history; the demo checks every example metric on that history in research
(values and a backtest of its alerts), promotes each to batch and backfills the history
and its click outcomes from tables, then promotes each to streaming, starts a worker, the
batch scheduler, the alert dispatcher and the dashboard, and streams the next 16 hours of
events — compressed into ``--duration`` seconds — in which a cache failover makes the
latency tail spike and, an hour later, the ranker rollout of the example week's day 5 is
moved in: Brazil gets a ranker that buries the favourite carousel. The click outcomes
stream live too, each sent at its own time (minutes to half an hour after its view): the
estimated click AUC drops the hour the rollout starts, and the realized AUC follows it on
the Performance page as the outcomes land. The streaming stage closes the windows as their
event time passes and fires the alerts; the demo prints them (Slack and email receive them
when configured).

Everything runs the same commands a user would, against the embedded broker (or
``MONITOR_KAFKA_BOOTSTRAP``) and a SQLite file in the demo folder (or
``MONITOR_DATABASE_URL``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace
from itertools import repeat
from pathlib import Path
from typing import Any

import click
import pandas as pd
from tqdm import tqdm

from monitor.cli.demo_services import Service
from monitor.stage_switch import SWITCH_LEAD_ENV
from monitor.storage.database_url import DATABASE_URL_ENV, mask_url

APP = "examples.music_home:mon"
HISTORY_HOURS = 56  # the example week up to just before its latency incident (hour 60)
LIVE_HOURS = 16  # streamed live: hours 56-72, with the latency spike at 60-64
ROLLOUT_HOURS = (61, 69)  # the BR ranker rollout (hours 108-118 in the example week)
EVENTS_PER_HOUR = 1_500
DEFAULT_HOUR_SECONDS = 15.0  # wall seconds per event-time hour without --duration
DEMO_MARKER = ".monitor-demo"  # only a folder holding this is emptied by a new demo


@dataclass(frozen=True)
class Plan:
    workdir: Path
    database_url: str
    duration: float | None
    dashboard_port: int
    seed: int


@click.command("demo")
@click.option("--duration", type=click.FloatRange(min=10), metavar="SECONDS",
              help="Stream the live part in this many seconds, then stop everything "
                   "[default: about 4 minutes of live traffic, then run until Ctrl-C].")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("out/demo"), show_default=True,
              help="Where the demo writes its data, logs and (by default) its database. "
                   "A folder of an earlier demo is emptied first; any other must be new "
                   "or empty.")
@click.option("--port", "dashboard_port", type=click.IntRange(1, 65535), default=8501,
              show_default=True, help="The dashboard's port on 127.0.0.1.")
@click.option("--seed", type=int, default=1, show_default=True,
              help="Seed of the generated events.")
def demo(duration: float | None, workdir: Path, dashboard_port: int, seed: int) -> None:
    """Everything end to end: research, batch, streaming, alerts and the dashboard.

    Starts the embedded broker (unless MONITOR_KAFKA_BOOTSTRAP points at a cluster),
    migrates the database (a SQLite file in --workdir unless MONITOR_DATABASE_URL is set),
    takes the example metrics from research through batch to streaming, starts a worker,
    the scheduler, the alert dispatcher and the dashboard, and streams live events that
    contain an incident. Ctrl-C stops everything cleanly.
    """
    workdir = workdir.resolve()
    if workdir.exists() and any(workdir.iterdir()):
        if not (workdir / DEMO_MARKER).exists():
            raise click.ClickException(
                f"{workdir} is not empty and not a folder an earlier demo made; the demo "
                "empties its --workdir, so pass a new or empty folder")
        shutil.rmtree(workdir)
    (workdir / "logs").mkdir(parents=True)
    (workdir / DEMO_MARKER).write_text("made by `monitor demo`; it empties this folder\n")
    url = os.environ.get(DATABASE_URL_ENV) or f"sqlite:///{workdir / 'demo.sqlite'}"
    plan = Plan(workdir, url, duration, dashboard_port, seed)
    interrupted = False
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with ExitStack() as stack:
            try:
                _run(plan, stack)
            except KeyboardInterrupt:
                interrupted = True
                _say("interrupted: stopping everything")
    finally:
        signal.signal(signal.SIGTERM, previous)
    _say("everything stopped" + (" (interrupted)" if interrupted else ""))


def _raise_interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


def _run(plan: Plan, stack: ExitStack) -> None:
    from examples.music_home_events import (
        LATENCY_SPIKE,
        MODEL_ROLLOUT,
        click_outcomes,
        generate_events,
        generate_reference,
    )
    from streaming.broker import EmbeddedBroker, configured_bootstrap

    data = plan.workdir / "data"
    data.mkdir()
    now = pd.Timestamp.now(tz="UTC").floor("h")
    start = now - pd.Timedelta(hours=HISTORY_HOURS)
    _say(f"generating the homepage's events from {start:%Y-%m-%d %H:%M} UTC: "
         f"{HISTORY_HOURS} h of history and {LIVE_HOURS} h to stream live")
    # The example week's second incident (day 5) is moved into the live part, an hour
    # into the failover, so the live part shows a model problem as well.
    rollout = replace(MODEL_ROLLOUT, start_hour=ROLLOUT_HOURS[0], end_hour=ROLLOUT_HOURS[1])
    events = generate_events(start=start, days=3, seed=plan.seed,
                             events_per_hour=EVENTS_PER_HOUR,
                             incidents=(LATENCY_SPIKE, rollout))
    times = pd.to_datetime(events["ts"], utc=True)
    end = now + pd.Timedelta(hours=LIVE_HOURS)
    history = events[times < now]
    live = events[(times >= now) & (times < end)]
    history.to_json(data / "history.jsonl", orient="records", lines=True, date_format="iso")
    # The label stream: the click outcomes that had come back by now go to batch with the
    # history; the rest (the last history views' among them) arrive during the live part.
    outcomes = click_outcomes(events[times < end], seed=plan.seed)
    arrived = pd.to_datetime(outcomes["ts"], utc=True)
    live_outcomes = outcomes[(arrived >= now) & (arrived < end)]
    labels_file = data / "outcomes.jsonl"
    outcomes[arrived < now].to_json(labels_file, orient="records", lines=True,
                                    date_format="iso")
    # What the live part sends, for research on it afterwards (values to compare).
    live.to_json(data / "live.jsonl", orient="records", lines=True, date_format="iso")
    live_outcomes.to_json(data / "live-outcomes.jsonl", orient="records", lines=True,
                          date_format="iso")
    os.environ["MUSIC_HOME_OUTCOMES"] = str(labels_file)  # the app's stream "outcomes"
    reference = generate_reference(start=start, seed=plan.seed, events_per_hour=EVENTS_PER_HOUR)
    training = data / "training.jsonl"
    reference.to_json(training, orient="records", lines=True, date_format="iso")
    os.environ["MUSIC_HOME_TRAINING"] = str(training)  # the app's reference "training"
    os.environ["MONITOR_APP"] = APP

    bootstrap = configured_bootstrap()
    if bootstrap is None:
        broker = stack.enter_context(EmbeddedBroker())
        bootstrap = broker.bootstrap
        _say(f"embedded Kafka-compatible broker (Tansu) at {bootstrap} (pid {broker.pid})")
    else:
        _say(f"Kafka at {bootstrap} (MONITOR_KAFKA_BOOTSTRAP)")

    db = ["--database-url", plan.database_url]
    _say(f"results database {mask_url(plan.database_url)}")
    _monitor(["db", "upgrade", *db])
    app = _app()
    metric_names = list(app.metrics)
    history_file = str(data / "history.jsonl")
    for name in metric_names:
        _say(f"research: {name}")
        labels = [] if app.metrics[name].labels is None else ["--labels", str(labels_file)]
        _monitor(["research", "run", name, "--data", history_file, *labels, *db,
                  "--out", str(plan.workdir / f"research-{name}.csv")])
        if app.metrics[name].alerts:  # the realized AUC has none: the estimate alerts
            _monitor(["research", "backtest", name, "--data", history_file, *labels, *db])
        _monitor(["promote", name, "--to", "batch", "--by", "demo", *db,
                  "--reason", "research values checked; the backtest is quiet on history"])
    _say("batch: the history and its click outcomes into tables, then a backfill")
    _monitor(["batch", "load", history_file, "--stream", "home", *db])
    _monitor(["batch", "load", str(labels_file), "--stream", "outcomes", *db])
    _monitor(["batch", "run", "--since", start.isoformat(), "--until", now.isoformat(), *db])
    # Batch counted the windows before `now` (an hour boundary, so one of every window of
    # the app), streaming counts those from it: the live part, exactly.
    for name in metric_names:
        _monitor(["promote", name, "--to", "streaming", "--by", "demo", *db,
                  "--from", now.isoformat(), "--reason", "batch values match research"])

    logs = plan.workdir / "logs"
    # The switch lead must cover the workers' --max-future below (a worker may not absorb
    # an event further ahead than a stage change it has not seen yet could apply from).
    env = {DATABASE_URL_ENV: plan.database_url,
           SWITCH_LEAD_ENV: f"{(LIVE_HOURS + 1) * 3600}s"}
    services = [
        # The live hours are streamed compressed in time: their events are stamped up to
        # LIVE_HOURS ahead of the wall clock, which a worker rejects by default (and its
        # watermarks would wait for the wall clock to catch up). A worker absorbs that far
        # ahead only with a switch lead as long (env above; the promotions were made before
        # it started, so their boundaries hold).
        Service("worker", ["--app", APP, "stream", "worker", *db, "--bootstrap", bootstrap,
                           "--idle-timeout", "3", "--session-timeout", "6",
                           "--max-future", str((LIVE_HOURS + 1) * 3600),
                           "--watermark-lead", str((LIVE_HOURS + 1) * 3600),
                           "--loglevel", "info"], logs, env),
        Service("scheduler", ["--app", APP, "batch", "schedule", *db], logs, env),
        Service("dispatcher", ["--app", APP, "alerts", "dispatch", *db, "--group-wait", "2s"],
                logs, env),
        Service("dashboard", ["dashboard", "--port", str(plan.dashboard_port), *db], logs, env),
    ]
    dashboard_url = f"http://127.0.0.1:{plan.dashboard_port}"
    for service in services:
        stack.callback(_stop, service)
        service.start()
        _say(f"started {service.name} (pid {service.pid}, log {service.log_path})")
    _wait_for_port(plan.dashboard_port, 60)
    _say(f"dashboard: {dashboard_url}")

    hour_seconds = (plan.duration / LIVE_HOURS if plan.duration is not None
                    else DEFAULT_HOUR_SECONDS)
    _say(f"live: {len(live):,} events and {len(live_outcomes):,} click outcomes, one "
         f"event-time hour every {hour_seconds:.1f} s; the latency tail spikes 4 h in, "
         f"a ranker rollout in Brazil lowers the click AUC from "
         f"{ROLLOUT_HOURS[0] - HISTORY_HOURS} h in")
    watcher = _AlertWatcher(plan.database_url, metric_names)
    feeds = [_Feed("home", "user_id", live), _Feed("outcomes", "view_id", live_outcomes)]
    _stream_live(bootstrap, feeds, now, hour_seconds, watcher, services)
    _say("live traffic sent; waiting for the last windows to close")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        watcher.poll()
        time.sleep(1)
    watcher.poll()
    _where_to_look(plan, dashboard_url, watcher)
    if plan.duration is None:
        _say("running until Ctrl-C")
        while True:
            watcher.poll()
            time.sleep(1)


@dataclass(frozen=True)
class _Feed:
    """Events of one stream to send live, to its topic, keyed by ``key_field``."""

    stream: str
    key_field: str
    events: pd.DataFrame


def _stream_live(bootstrap: str, feeds: list[_Feed], origin: pd.Timestamp,
                 hour_seconds: float, watcher: _AlertWatcher, services: list[Service]) -> None:
    """Send every feed's events, interleaved in event-time order, each when its event
    time comes on the compressed clock (``hour_seconds`` per event-time hour from
    ``origin``): a click outcome is sent after its view, as late as it came back."""
    from streaming.codec import event_dicts
    from streaming.emitter import Emitter

    with ExitStack() as emitters:
        senders: list[Emitter] = []
        schedule: list[tuple[float, Emitter, dict[str, Any]]] = []
        for feed in feeds:
            topic = _app().streams[feed.stream].topic
            assert topic is not None
            senders.append(emitters.enter_context(Emitter(
                bootstrap, topic, key_field=feed.key_field, max_batch_events=100,
                block_ms=10_000)))
            offsets = ((pd.to_datetime(feed.events["ts"], utc=True) - origin)
                       .dt.total_seconds() / 3600 * hour_seconds).tolist()
            schedule.extend(zip(offsets, repeat(senders[-1]), event_dicts(feed.events)))
        schedule.sort(key=lambda item: item[0])  # stable: on a tie, the earlier feed first
        _send(senders, schedule, watcher, services)


def _send(senders: list[Any], schedule: list[tuple[float, Any, dict[str, Any]]],
          watcher: _AlertWatcher, services: list[Service]) -> None:
    started = time.monotonic()
    last_poll = started
    with tqdm(total=len(schedule), unit="ev", desc="live", leave=False,
              disable=None) as bar:  # quiet unless stderr is a terminal
        for offset, emitter, event in schedule:
            wait = started + offset - time.monotonic()
            if wait > 0:
                for sender in senders:
                    sender.flush(timeout=5)
                time.sleep(float(wait))
            emitter.emit(event)
            bar.update()
            if time.monotonic() - last_poll >= 1:
                last_poll = time.monotonic()
                bar.clear()
                watcher.poll()
                for service in services:
                    if not service.running:
                        raise click.ClickException(
                            f"{service.name} stopped unexpectedly:\n{service.tail()}")
    for sender in senders:
        sender.flush(timeout=30)


class _AlertWatcher:
    """Prints the streaming stage's alert transitions as they are stored."""

    def __init__(self, database_url: str, metrics: list[str]) -> None:
        from monitor.storage.database import Database

        self.database = Database(database_url)
        self.metrics = metrics
        self.seen: dict[str, int] = {m: 0 for m in metrics}
        self.fired: list[str] = []

    def poll(self) -> None:
        from monitor.storage import alert_states

        try:
            with self.database.connect() as conn:
                for metric in self.metrics:
                    events = alert_states.events_of(conn, metric, "streaming")
                    for event in events[self.seen[metric]:]:
                        self._show(event)
                    self.seen[metric] = len(events)
        except Exception as err:  # a busy SQLite file: the next poll catches up
            click.echo(f"(alert check skipped: {type(err).__name__})", err=True)

    def _show(self, event: Any) -> None:
        if event.transition not in ("firing", "resolved"):
            return
        line = (f"ALERT {event.transition.upper()}: {event.key.metric} {event.key.rule} "
                f"[{event.key.segment}] window {event.window_start:%H:%M}-"
                f"{event.window_end:%H:%M} UTC")
        if event.transition == "firing":
            self.fired.append(line)
        click.secho(line, fg="red" if event.transition == "firing" else "green", bold=True)


def _where_to_look(plan: Plan, dashboard_url: str | None, watcher: _AlertWatcher) -> None:
    _say(f"{len(watcher.fired)} alerts fired in the streaming stage")
    click.echo("Where to look:")
    if dashboard_url:
        click.echo(f"  dashboard         {dashboard_url}")
    click.echo(f"  database          {mask_url(plan.database_url)}")
    click.echo(f"  logs              {plan.workdir / 'logs'}")
    click.echo(f"  values            monitor values export --stage streaming --out values.csv "
               f"--database-url {mask_url(plan.database_url)}")
    click.echo("  alerts            monitor alerts list")
    click.echo("  Slack / email     set MONITOR_SLACK_WEBHOOK_URL / MONITOR_SMTP_URL and "
               "MONITOR_ALERT_EMAIL_TO before `monitor demo` to receive the alerts")


def _monitor(args: list[str]) -> None:
    """Run a ``monitor`` command in this process, as a user would type it."""
    from monitor.cli.main import cli

    click.secho("$ monitor " + " ".join(_masked(args)), dim=True)
    try:
        cli.main(args=["--app", APP, *args], prog_name="monitor", standalone_mode=False)
    except click.exceptions.Exit as done:
        if done.exit_code:
            raise click.ClickException(f"`monitor {args[0]}` failed") from None


def _masked(args: list[str]) -> list[str]:
    return [mask_url(a) if "://" in a else a for a in args]


def _app() -> Any:
    from monitor.cli.app import load_app

    return load_app(APP)


def _stop(service: Service) -> None:
    code = service.stop()
    _say(f"stopped {service.name} (exit code {code})")


def _wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise click.ClickException(f"the dashboard did not start listening on port {port}")


def _say(text: str) -> None:
    click.secho(f"== {text}", bold=True)

