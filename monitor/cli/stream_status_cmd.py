"""``monitor stream status``: the streaming stage of the whole group, from the database."""

from __future__ import annotations

import json

import click

from monitor.cli.db_cmd import database_url_option
from monitor.cli.values_cmd import open_results_store
from monitor.storage.stream_status import read_stream_status
from monitor.stream_status import render
from monitor.times import utc_now


@click.command("status")
@database_url_option
@click.option("--topic", "topics", multiple=True, metavar="TOPIC",
              help="Only these topics' partitions (repeat for more) [default: every topic].")
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for machines.")
def status(database_url: str, topics: tuple[str, ...], as_json: bool) -> None:
    """Where every stored partition stands, whichever worker owns it: the owner (the
    worker that stored it last, HOST/PID), the stored offset, the watermark (how far it
    lets windows close) and its lag behind the wall clock, and how long ago its
    checkpoint was written; then each stream's dead letters by reason (all time and the
    last 24 hours). Read from the database alone: no broker, no worker needed.

    A live worker writes each of its partitions' checkpoints at every micro-batch and,
    while a partition is idle, about every second after the idle timeout: a checkpoint
    much older than that is a partition nobody stores now.
    """
    with open_results_store(database_url) as store, store.database.connect() as conn:
        found = read_stream_status(conn, utc_now(), topics)
    if as_json:
        click.echo(json.dumps(found.as_json(), indent=2))
    else:
        click.echo(render(found))
