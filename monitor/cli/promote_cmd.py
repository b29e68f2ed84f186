"""``monitor promote``: move a metric between research, batch and streaming."""

from __future__ import annotations

import getpass

import click

from monitor.cli.app import find_metric, load_app
from monitor.cli.db_cmd import database_url_option
from monitor.cli.values_cmd import open_results_store, utc_time
from monitor.errors import MonitorError
from monitor.lifecycle import change_stage
from monitor.stage_switch import STREAMING
from monitor.storage.records import StageChange
from monitor.values import STAGES

# streaming.processor's default: how often a running worker reads the stage history
WORKER_POLL = "--lifecycle-poll (5 s by default)"


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
@click.option("--from", "effective_from", metavar="TIME",
              help="Into or out of streaming: the window boundary (UTC, ISO 8601) the change "
                   "applies from [default: the first after the switch lead, "
                   "MONITOR_SWITCH_LEAD, 15m]. Refused when a worker has read an event at or "
                   "after it.")
@database_url_option
@click.pass_context
def promote(ctx: click.Context, metric: str, to_stage: str, reason: str, by: str,
            effective_from: str | None, database_url: str) -> None:
    """Move METRIC's current version to another stage.

    Stages go research -> batch -> streaming, one at a time; moving back to an earlier
    stage is allowed. Going to batch needs a recorded research run of the current
    definition (`monitor research run` or `backtest`) and, for a metric that compares
    against a reference, the stored reference profile. See the history with
    `monitor metrics history METRIC`.

    A change into or out of streaming applies from a window boundary: streaming counts
    the windows from it (or, for a demotion, before it), batch the others, and running
    workers follow within their --lifecycle-poll, without a restart.
    """
    spec = find_metric(load_app(ctx.obj["app_target"]), metric)
    with open_results_store(database_url) as store:
        try:
            boundary = utc_time(effective_from, "--from")
            change = change_stage(spec, to_stage, store, by=by, reason=reason,
                                  effective_from=None if boundary is None
                                  else boundary.to_pydatetime())
        except (MonitorError, LookupError) as err:  # a DatabaseUnavailableError too
            raise click.ClickException(str(err)) from None
    assert change.from_stage is not None
    direction = ("promoted" if STAGES.index(change.to_stage) > STAGES.index(change.from_stage)
                 else "demoted")
    click.echo(f"{change.metric} version {change.version} {direction}: {change.from_stage} -> "
               f"{change.to_stage} (by {change.by}: {change.reason})")
    if change.effective_from is not None:
        click.echo(describe_switch(change))


def describe_switch(change: StageChange) -> str:
    """What a change into or out of streaming means for each stage, from its boundary."""
    assert change.effective_from is not None
    at = change.effective_from.isoformat().replace("+00:00", "Z")
    head = f"{change.metric} version {change.version}"
    if change.to_stage == STREAMING:
        return (f"{head} -> streaming from {at}: batch keeps the windows before it; "
                f"running workers switch within their {WORKER_POLL}")
    after = ("batch computes the windows from it" if change.to_stage == "batch"
             else f"no stage computes the windows from it ({change.to_stage})")
    return (f"{head} leaves streaming at {at}: streaming counts the windows before it, "
            f"{after}; running workers stop within their {WORKER_POLL}")

