"""``monitor db ...``: create and migrate the results database."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from monitor.storage.database import DatabaseUnavailableError
from monitor.storage.database_url import (
    DATABASE_URL_ENV,
    DEFAULT_DATABASE_URL,
    mask_url,
    normalize_url,
    sqlite_path,
)
from monitor.storage.migrate import current_revision, downgrade, head_revision, upgrade

F = TypeVar("F", bound=Callable[..., Any])


def database_url_option(function: F) -> F:
    """``--database-url``, read from ``MONITOR_DATABASE_URL`` when not given.

    For every command that opens the database; the value reaches the command as
    ``database_url``, already checked to be a URL.
    """
    return click.option(
        "--database-url", "database_url", envvar=DATABASE_URL_ENV, default=DEFAULT_DATABASE_URL,
        show_envvar=True, metavar="URL", callback=_check_url,
        help=f"Where results are stored, e.g. postgresql+psycopg://USER:PASSWORD@HOST:5432/DB "
             f"[default: {DEFAULT_DATABASE_URL} in the working directory].",
    )(function)


def _check_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return normalize_url(value)
    except ValueError as err:
        raise click.BadParameter(str(err), ctx=ctx, param=param) from None


@click.group("db")
def db_group() -> None:
    """Create and migrate the database that keeps values, states and the metric catalog."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True, metavar="REV",
              help="The migration to upgrade to.")
@database_url_option
def db_upgrade(revision: str, database_url: str) -> None:
    """Apply migrations up to REV (the newest by default); safe to run again."""
    click.echo(f"database: {mask_url(database_url)}")
    done = _migrating(lambda: upgrade(database_url, revision))
    if done.changed:
        click.echo(f"upgraded from {_name(done.before)} to {_name(done.after)}"
                   f"{' (head)' if done.after == done.head else ''}")
    else:
        click.echo(f"already at {_name(done.after)}"
                   f"{' (head)' if done.after == done.head else ''}; nothing to do")


@db_group.command("downgrade")
@click.argument("revision", metavar="REV")
@click.option("--yes", is_flag=True, help="Do not ask before dropping tables.")
@database_url_option
def db_downgrade(revision: str, yes: bool, database_url: str) -> None:
    """Revert migrations down to REV ("base" drops every table and its data)."""
    click.echo(f"database: {mask_url(database_url)}")
    if not yes:
        click.confirm(f"downgrade to {revision}? tables and data it removes are lost",
                      abort=True)
    done = _migrating(lambda: downgrade(database_url, revision))
    if done.changed:
        click.echo(f"downgraded from {_name(done.before)} to {_name(done.after)}")
    else:
        click.echo(f"already at {_name(done.after)}; nothing to do")


@db_group.command("current")
@database_url_option
def db_current(database_url: str) -> None:
    """Show the database's migration and whether it is the newest."""
    click.echo(f"database: {mask_url(database_url)}")
    sqlite_file = sqlite_path(database_url)
    if sqlite_file is not None and not sqlite_file.exists():  # don't create it by looking
        click.echo(f"no database at {sqlite_file} yet: run `monitor db upgrade`")
        return
    current = _migrating(lambda: current_revision(database_url))
    head = head_revision()
    if current == head:
        click.echo(f"at {_name(current)} (head)")
    else:
        click.echo(f"at {_name(current)}; the newest is {_name(head)}: run `monitor db upgrade`")


T = TypeVar("T")


def _migrating(action: Callable[[], T]) -> T:
    try:
        return action()
    except DatabaseUnavailableError as err:
        raise click.ClickException(str(err)) from None


def _name(revision: str | None) -> str:
    return revision or "an empty database (no migration applied)"
