"""``monitor values ...``: stored metric values out as a values file; and opening the
results database for the commands that read or record in it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import pandas as pd

from monitor.cli.db_cmd import database_url_option
from monitor.storage.database import DatabaseUnavailableError
from monitor.storage.database_url import DATABASE_URL_ENV, mask_url, sqlite_path
from monitor.storage.migrate import current_revision, head_revision
from monitor.storage.store import SqlStore
from monitor.values import STAGES, write_values_csv


class ResultsDatabaseError(click.ClickException):
    """The results database cannot be used as it is; the message says what to do."""


class NoResultsDatabase(ResultsDatabaseError):
    """There is no results database yet: no SQLite file, or a database with no tables."""


def check_results_database(database_url: str) -> None:
    """Raise :class:`ResultsDatabaseError` unless the database is reachable and migrated.

    A SQLite file that does not exist is not created by looking.
    """
    sqlite_file = sqlite_path(database_url)
    if sqlite_file is not None and not sqlite_file.exists():
        raise NoResultsDatabase(
            f"no results database at {sqlite_file} yet: create it with `monitor db upgrade` "
            f"(or point {DATABASE_URL_ENV} or --database-url at one)")
    try:
        revision = current_revision(database_url)
    except DatabaseUnavailableError as err:
        raise ResultsDatabaseError(str(err)) from None
    head = head_revision()
    if revision == head:
        return
    where = f"the results database {mask_url(database_url)}"
    if revision is None:
        raise NoResultsDatabase(f"{where} has no tables yet: run `monitor db upgrade`")
    raise ResultsDatabaseError(f"{where} is at migration {revision}, this monitor needs {head}: "
                            "run `monitor db upgrade`")


@contextmanager
def open_results_store(database_url: str) -> Iterator[SqlStore]:
    """The results store, once :func:`check_results_database` passes; closed afterwards."""
    check_results_database(database_url)
    with SqlStore.open(database_url) as store:
        yield store


def utc_time(text: str | None, option: str) -> pd.Timestamp | None:
    """An ISO 8601 time as UTC (a time without a zone is taken as UTC)."""
    if text is None:
        return None
    try:
        stamp = pd.Timestamp(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a time; use ISO 8601, e.g. 2026-03-01T00:00Z",
                                 param_hint=option) from None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


@click.group("values")
def values_group() -> None:
    """Read the stored metric values."""


@values_group.command("export")
@click.option("--metric", metavar="NAME", help="Only this metric [default: every metric].")
@click.option("--stage", type=click.Choice(STAGES), help="Only this stage [default: every stage].")
@click.option("--version", type=click.IntRange(min=1), metavar="N",
              help="This version of --metric [default: the newest version with values].")
@click.option("--since", metavar="TIME", help="Windows starting at or after this UTC time.")
@click.option("--until", metavar="TIME", help="Windows starting before this UTC time.")
@click.option("--out", required=True, metavar="CSV",
              type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              help="The values file to write ('-' for standard output).")
@database_url_option
def values_export(metric: str | None, stage: str | None, version: int | None,
                  since: str | None, until: str | None, out: Path, database_url: str) -> None:
    """Write stored values to a values file, as `monitor research run --out` does.

    The columns are metric,stage,segment,window_start,window_end,field,value,count, the
    rows in the same order, the floats with the same bits. Each metric's values come
    from its newest version that has values in that stage, so values of two definitions
    never mix; --version picks another one of --metric.
    """
    if version is not None and metric is None:
        raise click.BadParameter("--version needs --metric", param_hint="--version")
    start, end = utc_time(since, "--since"), utc_time(until, "--until")
    if start is not None and end is not None and start >= end:
        raise click.BadParameter("--since must be before --until", param_hint="--since")
    with open_results_store(database_url) as store:
        try:
            values = store.read_values(metric=metric, stage=stage, version=version,
                                       since=None if start is None else start.to_pydatetime(),
                                       until=None if end is None else end.to_pydatetime(),
                                       limit=None)
        except DatabaseUnavailableError as err:
            raise click.ClickException(str(err)) from None
    if str(out) == "-":
        write_values_csv(values, sys.stdout)
    else:
        write_values_csv(values, out)
    metrics = values["metric"].nunique()
    click.echo(f"wrote {len(values)} rows ({metrics} metric{'s' if metrics != 1 else ''}) to "
               f"{'standard output' if str(out) == '-' else out}", err=True)
