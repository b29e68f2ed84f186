"""``monitor batch ...``: compute closed windows from upstream tables or files."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
import pandas as pd
import sqlalchemy as sa

from monitor.batch import handover
from monitor.batch.engines import ENGINES, BatchEngine
from monitor.batch.rollup import coarse_spec, rollup, rollup_name
from monitor.batch.runner import BatchRunError, BatchRunner, RunSummary
from monitor.batch.sources import SourceError, source_for
from monitor.batch.spark_engine import SparkJobError
from monitor.batch.spark_session import DEFAULT_MASTER, SparkUnavailableError
from monitor.batch.tables import load_and_report
from monitor.cli.app import load_app
from monitor.cli.db_cmd import database_url_option
from monitor.errors import MonitorError, first_line
from monitor.research import summarize_reasons
from monitor.sources.files import read_events
from monitor.storage.database import DatabaseUnavailableError
from monitor.storage.database_url import mask_url, normalize_url
from monitor.storage.outages import describe_error, is_outage
from monitor.storage.store import SqlStore
from monitor.targets import batch_targets

SOURCE_URL_ENV = "MONITOR_SOURCE_DATABASE_URL"
log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def source_url_option(function: F) -> F:
    """``--source-url``: where the streams' tables are, when not in the results database."""
    return click.option(
        "--source-url", "source_url", envvar=SOURCE_URL_ENV, default=None, show_envvar=True,
        metavar="URL", help="The database holding the streams' tables [default: the results "
                            "database].",
    )(function)


def engine_options(function: F) -> F:
    """``--engine`` and ``--master``: where a run's slices are computed."""
    function = click.option(
        "--master", default=None, metavar="URL",
        help="On Spark: the master (local[N], spark://HOST:7077, ...) for every stream "
             f"[default: the stream's master=, else {DEFAULT_MASTER}].",
    )(function)
    return click.option(
        "--engine", type=click.Choice(ENGINES), default=None,
        help="Compute every stream in this process, or on Spark from its Postgres table "
             "or query, or its files (needs the extra: pip install "
             "'domain-monitor[spark]') [default: the stream's engine=, else local].",
    )(function)


@click.group("batch")
def batch_group() -> None:
    """Compute metrics in the batch stage, one-shot or on a schedule."""


@batch_group.command("run")
@click.option("--metric", "metrics", multiple=True, metavar="NAME",
              help="Only this metric (repeat for more) [default: every metric in batch].")
@click.option("--since", type=str, metavar="TIME",
              help="Backfill from this UTC time (ISO 8601) instead of each metric's watermark.")
@click.option("--until", type=str, metavar="TIME",
              help="Stop at this UTC time instead of the end of the last closed window.")
@engine_options
@database_url_option
@source_url_option
@click.pass_context
def batch_run(ctx: click.Context, metrics: tuple[str, ...], since: str | None,
              until: str | None, engine: str | None, master: str | None, database_url: str,
              source_url: str | None) -> None:
    """Compute every closed window since each metric's watermark, and store it.

    The first run of a metric starts at the earliest event in its source. With --since
    and --until it is a backfill over that range, with a progress bar; windows already
    stored are recomputed and replaced, so running it again is safe. On Spark (--engine
    spark, or a stream's engine=), Spark computes each slice from the stream's table,
    query or files and this process stores it.
    """
    app = load_app(ctx.obj["app_target"])
    start, end = _time(since, "--since"), _time(until, "--until")
    if start is not None and end is not None and start >= end:
        raise click.BadParameter("--since must be before --until")
    click.echo(f"results: {mask_url(database_url)}", err=True)
    store = SqlStore.open(database_url)
    source_engine = sa.create_engine(normalize_url(source_url) if source_url else database_url)
    computing = BatchEngine(engine, master)
    try:
        try:
            targets = batch_targets(app, store, metrics)
        except KeyError as err:
            raise click.ClickException(str(err.args[0])) from None
        except (MonitorError, DatabaseUnavailableError) as err:
            raise click.ClickException(str(err)) from None
        except sa.exc.SQLAlchemyError as err:
            raise _database_failed(err) from None
        if not targets:
            click.echo("no metric is in the batch stage; promote one with "
                       "`monitor promote METRIC --to batch --reason ...`")
            return
        sources = computing.sources(source_engine)
        runner = BatchRunner(store, lambda m: sources(m.stream),
                             progress=sys.stderr.isatty(),  # no bars in a log
                             label_source_for=lambda s: source_for(s, source_engine))
        try:
            summaries = runner.run_many(targets, since=start, until=end)
            failure = None
        except BatchRunError as err:
            summaries, failure = err.summaries, err
        except (SourceError, DatabaseUnavailableError, SparkUnavailableError,
                SparkJobError) as err:
            raise click.ClickException(str(err)) from None
        except sa.exc.SQLAlchemyError as err:  # before its first slice: nothing stored
            raise _database_failed(err) from None
        for summary in summaries:
            click.echo(describe(summary))
        if failure is not None:
            raise click.ClickException(f"batch run failed: {failure}")
    finally:
        computing.stop()
        source_engine.dispose()
        store.close()


def _database_failed(err: sa.exc.SQLAlchemyError) -> click.ClickException:
    if is_outage(err):
        advice = "the database is unreachable; run it again when it is back"
    else:
        advice = "if the database is older than this version, run `monitor db upgrade`"
    return click.ClickException(f"batch run failed: {describe_error(err)}; {advice}")


def describe(summary: RunSummary) -> str:
    head = f"{summary.metric} v{summary.version}:"
    if summary.up_to_date:
        return (f"{head} up to date (next window closes after {summary.until:%Y-%m-%d %H:%M} "
                f"UTC){summary.left_to_streaming()}")
    text = (f"{head} {summary.windows_written} windows from {summary.since:%Y-%m-%d %H:%M} to "
            f"{summary.until:%Y-%m-%d %H:%M} UTC, {summary.rows_read:,} rows read")
    if summary.labels_read:
        text += (f" and {summary.labels_read:,} label rows (windows are recomputed until "
                 "their labels' horizon passes)")
    if summary.rows_rejected:
        text += f", {summary.rows_rejected:,} rejected (see dead letters)"
    if summary.failures:
        text += f", {len(summary.failures)} failed attempts retried"
    return text + summary.left_to_streaming()


def _time(text: str | None, option: str) -> pd.Timestamp | None:
    if text is None:
        return None
    try:
        stamp = pd.Timestamp(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a time; use ISO 8601, e.g. 2026-03-01T00:00Z",
                                 param_hint=option) from None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


@batch_group.command("rollup")
@click.argument("metric")
@click.option("--window", required=True, metavar="WINDOW",
              help="The coarse window, a multiple of the metric's, e.g. 1d.")
@click.option("--since", required=True, metavar="TIME", help="From this UTC time (ISO 8601).")
@click.option("--until", required=True, metavar="TIME", help="To this UTC time (ISO 8601).")
@click.option("--stage", default="batch", show_default=True,
              type=click.Choice(["research", "batch", "streaming"]))
@database_url_option
@click.pass_context
def batch_rollup(ctx: click.Context, metric: str, window: str, since: str, until: str,
                 stage: str, database_url: str) -> None:
    """Merge METRIC's stored states into coarser windows (stored as METRIC@WINDOW).

    No raw data is read: the states of the fine windows are merged, which gives the same
    values as computing the coarse windows directly.
    """
    app = load_app(ctx.obj["app_target"])
    start, end = _time(since, "--since"), _time(until, "--until")
    assert start is not None and end is not None
    with SqlStore.open(database_url) as store:
        try:
            target = batch_targets(app, store, [metric])[0]
            ranges = [(start, end)]
            cut = handover.split(target.streamed, start, end)
            if stage == "batch" and cut.streamed:  # batch has not every fine window of those
                width = coarse_spec(target.metric, window).windows.width
                ranges = handover.whole_windows(width, cut.batch)
                click.echo(f"left out: the coarse windows with a part in "
                           f"{handover.describe(cut.streamed)}, which streaming counts")
            written = sum(rollup(store, target.metric, target.version, window,
                                 low.to_pydatetime(), high.to_pydatetime(), stage)
                          for low, high in ranges)
        except KeyError as err:
            raise click.ClickException(str(err.args[0])) from None
        except (MonitorError, ValueError) as err:
            raise click.ClickException(str(err)) from None
    click.echo(f"{rollup_name(metric, window)} v{target.version}: {written} windows from "
               f"stored {target.metric.window} states")


@batch_group.command("load")
@click.argument("data", metavar="FILE")
@click.option("--stream", "stream_name", metavar="NAME",
              help="The stream whose table to fill [default: the app's only stream].")
@click.option("--table", metavar="NAME", help="Load into this table instead of the stream's.")
@source_url_option
@database_url_option
@click.pass_context
def batch_load(ctx: click.Context, data: str, stream_name: str | None, table: str | None,
               source_url: str | None, database_url: str) -> None:
    """Append a file's events (JSON lines, CSV, Parquet) to a stream's table.

    For trying the batch stage on files: the table is created, typed from the stream's
    schema, if it does not exist. Rows that do not parse, fail validation or hold a value
    the database cannot (a NUL character in Postgres text) are left out, counted by reason.
    """
    app = load_app(ctx.obj["app_target"])
    if stream_name is None:
        if len(app.streams) != 1:
            raise click.UsageError(f"which stream? pass --stream, one of {', '.join(app.streams)}")
        stream_name = next(iter(app.streams))
    if stream_name not in app.streams:
        raise click.UsageError(f"no stream {stream_name!r}; streams: {', '.join(app.streams)}")
    stream = app.streams[stream_name]
    try:
        read = read_events(data)
    except (FileNotFoundError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    url = normalize_url(source_url) if source_url else database_url
    engine = sa.create_engine(url)
    try:
        report = load_and_report(engine, stream, read.events, table)
    except (ValueError, sa.exc.SQLAlchemyError) as err:
        raise click.ClickException(f"loading into {mask_url(url)} failed: {first_line(err)}"
                                   ) from None
    finally:
        engine.dispose()
    rejects = pd.concat([read.rejects[["row", "reason"]], report.rejects], ignore_index=True)
    click.echo(f"loaded {report.loaded:,} events into {table or stream.table} ({mask_url(url)})"
               + (f"; {len(rejects):,} rejected: {summarize_reasons(rejects)}"
                  if len(rejects) else ""))
