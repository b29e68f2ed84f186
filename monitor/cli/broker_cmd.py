"""``monitor broker``: the embedded Kafka-compatible broker, in the foreground."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

import click

from streaming.broker import (
    BOOTSTRAP_ENV,
    DEFAULT_PORT,
    BrokerError,
    EmbeddedBroker,
    configured_bootstrap,
    create_topics,
)


@click.command("broker")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True,
              help="The loopback port to listen on; 0 picks a free one.")
@click.option("--topic", "topics", multiple=True, metavar="NAME[:PARTITIONS]",
              help="Create this topic at start (4 partitions unless given); repeatable.")
def broker(port: int, topics: tuple[str, ...]) -> None:
    """Run a Kafka-compatible broker (Tansu, in memory) on 127.0.0.1 until Ctrl-C.

    For development and the demo: the streaming commands find it at 127.0.0.1:9092 by
    default. It keeps nothing once stopped. To use a real Kafka cluster instead, set
    MONITOR_KAFKA_BOOTSTRAP and don't run this.
    """
    wanted = _parse_topics(topics)
    embedded = EmbeddedBroker(port, capture_output=False)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        try:
            embedded.start()
            if wanted:
                create_topics(embedded.bootstrap, wanted)
        except (BrokerError, OSError) as err:
            raise click.ClickException(str(err)) from None
        address = embedded.bootstrap
        click.echo(f"Kafka-compatible broker (Tansu, in memory) listening at {address}")
        for name, partitions in wanted.items():
            click.echo(f"  topic {name}: {partitions} partitions")
        configured = configured_bootstrap()
        if configured is not None and configured != address:
            click.echo(f"note: {BOOTSTRAP_ENV}={configured} points the other commands elsewhere",
                       err=True)
        elif port != DEFAULT_PORT:
            click.echo(f"  export {BOOTSTRAP_ENV}={address}")
        click.echo("Ctrl-C to stop; nothing is kept after it stops.")
        sys.stdout.flush()
        while not stop.is_set():
            if embedded.wait(timeout=0.5) is not None:
                raise click.ClickException(
                    f"the broker exited on its own with code {embedded.returncode()}")
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        embedded.stop()
    click.echo("broker stopped", err=True)


def _parse_topics(topics: tuple[str, ...]) -> dict[str, int]:
    wanted: dict[str, int] = {}
    for text in topics:
        name, _, count = text.partition(":")
        if not name or (count and not count.isdigit()) or count == "0":
            raise click.BadParameter(f"{text!r} must look like NAME or NAME:PARTITIONS",
                                     param_hint="--topic")
        wanted[name] = int(count) if count else 4
    return wanted
