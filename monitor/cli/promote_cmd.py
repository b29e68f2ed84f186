"""``monitor promote``: move a metric between research, batch and streaming."""

from __future__ import annotations

import getpass

import click

from monitor.cli.app import find_metric, load_app
from monitor.cli.db_cmd import database_url_option
from monitor.cli.values_cmd import open_results_store
from monitor.errors import MonitorError
from monitor.lifecycle import change_stage
from monitor.values import STAGES


def current_user() -> str:
    """Who is making a change: ``$USER`` (or the login name), "unknown" if neither is set."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


@click.command("promote")
@click.argument("metric")
@click.option("--to", "to_stage", required=True, type=click.Choice(STAGES),
              help="The stage to move to: the next one, or an earlier one (a demotion).")
@click.option("--reason", required=True, metavar="TEXT",
              help="Why; kept in the metric's stage history.")
@click.option("--by", default=current_user, show_default="$USER", metavar="NAME",
              help="Who is making the change.")
@database_url_option
@click.pass_context
def promote(ctx: click.Context, metric: str, to_stage: str, reason: str, by: str,
            database_url: str) -> None:
    """Move METRIC's current version to another stage.

    Stages go research -> batch -> streaming, one at a time; moving back to an earlier
    stage is allowed. Going to batch needs a recorded research run of the current
    definition (`monitor research run` or `backtest`) and, for a metric that compares
    against a reference, the stored reference profile. See the history with
    `monitor metrics history METRIC`.
    """
    spec = find_metric(load_app(ctx.obj["app_target"]), metric)
    with open_results_store(database_url) as store:
        try:
            change = change_stage(spec, to_stage, store, by=by, reason=reason)
        except (MonitorError, LookupError) as err:  # a DatabaseUnavailableError too
            raise click.ClickException(str(err)) from None
    assert change.from_stage is not None
    direction = ("promoted" if STAGES.index(change.to_stage) > STAGES.index(change.from_stage)
                 else "demoted")
    click.echo(f"{change.metric} version {change.version} {direction}: {change.from_stage} -> "
               f"{change.to_stage} (by {change.by}: {change.reason})")

