"""``monitor stream ...``: the streaming stage from the command line.

``replay`` sends a file's events to a Kafka topic through the ``Emitter``, as a model
service would, as fast as possible or compressed in event time.
"""

from __future__ import annotations

import itertools
import sys
import time
from typing import Any

import click
import numpy as np
import pandas as pd
from tqdm import tqdm

from monitor.cli.app import load_app
from monitor.cli.kafka_options import bootstrap_option
from monitor.cli.stream_status_cmd import status
from monitor.cli.worker_cmd import worker
from monitor.research import summarize_reasons
from monitor.schema import parse_times
from monitor.sources.files import read_events
from monitor.spec import StreamSpec
from streaming.broker import (
    BOOTSTRAP_ENV,
    BrokerError,
    create_topics,
    list_topics,
    wait_until_reachable,
)
from streaming.codec import event_dicts
from streaming.emitter import Emitter, EmitterStats

CONNECT_TIMEOUT_S = 10.0


@click.group("stream")
def stream_group() -> None:
    """Send events to Kafka and run the streaming stage."""


stream_group.add_command(worker)
stream_group.add_command(status)


@stream_group.command("replay")
@click.argument("file", metavar="FILE")
@click.option("--topic", help="The topic to send to [default: the topic of the app's stream].")
@click.option("--stream", "stream_name", metavar="NAME",
              help="The app's stream whose topic and event-time field to use, when the app "
                   "declares several.")
@bootstrap_option
@click.option("--batch", type=click.IntRange(min=1), default=500, show_default=True,
              help="Events per message at most; 1 sends each event as a message of its own.")
@click.option("--key", "key_field", metavar="FIELD",
              help="Partition by this field (e.g. user_id): events with the same value go to "
                   "the same partition.")
@click.option("--speed", type=click.FloatRange(min=0, min_open=True), metavar="X",
              help="Keep the events' pace, compressed X times: --speed 60 sends an hour of "
                   "event time per minute, in file order and with the gaps between events.")
@click.option("--as-fast-as-possible", "fast", is_flag=True,
              help="Send without waiting between events (the default).")
@click.option("--partitions", type=click.IntRange(min=1), default=4, show_default=True,
              help="Partitions of the topic, if it has to be created.")
@click.pass_context
def replay(ctx: click.Context, file: str, topic: str | None, stream_name: str | None,
           bootstrap: str, batch: int, key_field: str | None, speed: float | None, fast: bool,
           partitions: int) -> None:
    """Send the events of FILE (JSON lines, CSV or Parquet; or a quoted glob) to Kafka.

    Rows that do not parse are skipped and counted; every other row is sent as it is
    (a missing value leaves its field out; a NaN or infinity is JSON's NaN or Infinity),
    so the worker's validation and dead letters see what a model service would have
    sent. At the end: events sent and failed. A file with no events (or none that parse)
    sends nothing and exits with 0.
    """
    if speed is not None and fast:
        raise click.UsageError("--speed and --as-fast-as-possible exclude each other")
    topic, time_field = _destination(ctx, topic, stream_name)
    try:
        read = read_events(file)
    except (FileNotFoundError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    events = read.events
    if len(read.rejects):
        click.echo(f"skipping {len(read.rejects)} rows of {file} that did not parse: "
                   f"{summarize_reasons(read.rejects)}", err=True)
    if events.empty:  # not a failure: a quiet hour's export has no events either
        parse = " that parse" if len(read.rejects) else ""
        click.echo(f"nothing to send: {file} holds no events{parse}")
        return
    offsets = None if speed is None else _pace(events, time_field, speed)
    _prepare_topic(bootstrap, topic, partitions)

    started = time.monotonic()
    # A replay waits rather than drops; it sends a NaN or infinity its file held as JSON's
    # token, for the worker's validation to reject as research does ("is NaN").
    emitter = Emitter(bootstrap, topic, key_field=key_field, max_batch_events=batch,
                      block_ms=60_000, exit_timeout_s=None, allow_nan=True)
    try:
        with tqdm(total=len(events), unit="ev", unit_scale=True, desc=topic,
                  file=sys.stderr, disable=None) as progress:  # None: only on a terminal
            pacing = iter(offsets) if offsets is not None else itertools.repeat(None)
            for offset, event in zip(pacing, event_dicts(events), strict=False):
                if offset is not None:
                    _sleep_until(started + offset, progress)
                emitter.emit(event)
                progress.update()
        emitter.flush()
    finally:
        emitter.close()
    stats = emitter.stats()
    elapsed = time.monotonic() - started
    click.echo(_totals(stats, topic, bootstrap, elapsed, len(read.rejects)))
    if stats.failed:
        reasons = "; ".join(f"{n} {reason}" for reason, n in stats.failures.items())
        detail = emitter.failed[-1].detail if emitter.failed else ""
        raise click.ClickException(f"{stats.failed} events were not sent ({reasons}); "
                                   f"the last: {detail}")


def _destination(ctx: click.Context, topic: str | None,
                 stream_name: str | None) -> tuple[str, str]:
    """The topic to send to and the event-time field, from the options or the app."""
    if topic is not None and stream_name is None:
        return topic, "ts"
    app_target = (ctx.obj or {}).get("app_target")
    if app_target is None:
        raise click.UsageError("which topic? pass --topic, or --app with a stream that "
                               "declares its topic")
    stream = _stream(load_app(app_target).streams, stream_name, need_topic=topic is None)
    topic = topic or stream.topic
    assert topic is not None
    return topic, stream.time


def _stream(streams: dict[str, StreamSpec], name: str | None, *,
            need_topic: bool) -> StreamSpec:
    if name is not None:
        if name not in streams:
            raise click.ClickException(f"the app has no stream {name!r}; it has "
                                       f"{', '.join(sorted(streams)) or 'none'}")
        if need_topic and streams[name].topic is None:
            raise click.ClickException(f"stream {name!r} declares no topic; pass --topic")
        return streams[name]
    with_topic = [stream for stream in streams.values() if stream.topic is not None]
    if len(with_topic) == 1:
        return with_topic[0]
    if not with_topic:
        raise click.ClickException("the app declares no stream with a topic; pass --topic")
    listed = ", ".join(f"{s.name} ({s.topic})" for s in with_topic)
    raise click.ClickException(f"the app has several streams with topics: {listed}; "
                               "pass --stream or --topic")


def _prepare_topic(bootstrap: str, topic: str, partitions: int) -> None:
    try:
        wait_until_reachable(bootstrap, CONNECT_TIMEOUT_S)
        if topic not in list_topics(bootstrap):
            create_topics(bootstrap, {topic: partitions})
            click.echo(f"created topic {topic} with {partitions} partitions", err=True)
    except (BrokerError, ValueError) as err:
        raise click.ClickException(
            f"{err}\nStart the embedded broker with `monitor broker`, or point "
            f"--bootstrap (or {BOOTSTRAP_ENV}) at your Kafka cluster.") from None


def _pace(events: pd.DataFrame, time_field: str, speed: float) -> list[float | None]:
    """For each event, seconds after the start to send it at (None: right away)."""
    if time_field not in events.columns:
        raise click.ClickException(f"--speed needs event times, but the events have no "
                                   f"field {time_field!r}")
    times = parse_times(events[time_field])
    valid = times.notna().to_numpy()
    if not valid.any():
        raise click.ClickException(f"--speed needs event times, but no value of "
                                   f"{time_field!r} is a timestamp")
    nanos = times.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    origin = nanos[valid][0]
    seconds = (nanos - origin) / 1e9 / speed
    span = (nanos[valid].max() - origin) / 1e9
    click.echo(f"replaying {span / 3600:.2f} h of event time at {speed:g}x: about "
               f"{span / speed / 60:.1f} min", err=True)
    return [float(s) if ok and s > 0 else None for s, ok in zip(seconds, valid, strict=True)]


def _sleep_until(moment: float, progress: tqdm[Any]) -> None:
    while (left := moment - time.monotonic()) > 0:
        time.sleep(min(left, 0.5))
        progress.refresh()


def _totals(stats: EmitterStats, topic: str, bootstrap: str, elapsed: float,
            skipped: int) -> str:
    rate = stats.sent / elapsed if elapsed > 0 else 0.0
    text = (f"sent {stats.sent} events in {stats.messages} messages to {topic} at {bootstrap} "
            f"in {elapsed:.1f} s ({rate:,.0f} events/s); failed {stats.failed}")
    if skipped:
        text += f"; skipped {skipped} rows that did not parse"
    return text
