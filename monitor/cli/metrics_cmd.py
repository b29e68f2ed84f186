"""``monitor metrics ...``: what is registered, in which stage, and how it got there."""

from __future__ import annotations

import click
import pandas as pd

from monitor.cli.app import load_app
from monitor.cli.db_cmd import database_url_option
from monitor.cli.values_cmd import (
    NoResultsDatabase,
    ResultsDatabaseError,
    check_results_database,
    open_results_store,
)
from monitor.errors import MonitorError
from monitor.lifecycle import MetricStatus, metric_status
from monitor.registry import Monitor
from monitor.storage.records import StageChange
from monitor.storage.store import SqlStore

UNREGISTERED = "unregistered"
REASON_CHARS = 40


@click.group("metrics")
def metrics_group() -> None:
    """Inspect the registered metrics."""


@metrics_group.command("list")
@database_url_option
@click.pass_context
def list_metrics(ctx: click.Context, database_url: str) -> None:
    """Every metric with its stream (and label stream), stage, version, window, segments,
    fields, alerts, owner and last stage change.

    Stages and versions come from the results database (a metric in streaming with the
    window it streams from: batch computed the ones before); a metric it does not know yet is
    "unregistered" (a recorded `monitor research run` registers it). A version marked *
    is not the app's definition any more: the app changed it since.
    """
    app = load_app(ctx.obj["app_target"])
    if not app.metrics:
        click.echo("no metrics registered in this app yet; add some with mon.metric(...)")
        return
    statuses, known, problem = _statuses(app, database_url)
    rows = []
    for m in sorted(app.metrics.values(), key=lambda m: m.name):
        status = statuses.get(m.name)
        rows.append({
            "metric": m.name,
            # a metric joined to labels: its label stream and horizon too
            "stream": m.stream.name + (f" + {m.labels.stream.name} within {m.labels.horizon}"
                                       if m.labels else ""),
            "stage": _stage(status, known),
            "version": _version(status),
            "window": m.window,
            "segments": ",".join(m.segment_by) or "-",
            "fields": _fields(m.fields),
            "alerts": len(m.alerts),
            "owner": m.owner or "-",
            "last change": _change(status.last_change) if status else "-",
        })
    click.echo(_table(rows, left="last change"))
    if problem is not None:
        click.echo(f"{'no metric is registered' if known else 'stages unknown'}: {problem}",
                   err=True)
    elif any(s.definition is not None and not s.current for s in statuses.values()):
        click.echo("* the app's definition differs from the stored version (or its reference "
                   "profile is not stored): `monitor research run METRIC --data FILE` records "
                   "it as a new version", err=True)


@metrics_group.command("history")
@click.argument("metric")
@database_url_option
def metric_history(metric: str, database_url: str) -> None:
    """Every stage change of METRIC, oldest first: when, version, from, to, the window a
    change into or out of streaming applies from, who and why."""
    with open_results_store(database_url) as store:
        try:
            history = store.stage_history(metric)
        except MonitorError as err:
            raise click.ClickException(str(err)) from None
    if not history:
        raise click.ClickException(
            f"metric {metric!r} has no history: it is not registered in this database; a "
            f"recorded `monitor research run {metric} --data FILE` registers it")
    click.echo(_table([{
        "when (UTC)": f"{change.at:%Y-%m-%d %H:%M:%S}",
        "version": change.version,
        "from": change.from_stage or "-",
        "to": change.to_stage,
        # changes into or out of streaming: the first window they apply to there
        "boundary": ("-" if change.effective_from is None
                     else change.effective_from.isoformat().replace("+00:00", "Z")),
        "by": change.by,
        "reason": change.reason,
    } for change in history], left="reason"))


def _statuses(app: Monitor, database_url: str
              ) -> tuple[dict[str, MetricStatus], bool, str | None]:
    """Each registered metric's status; whether the stages are known (a database with no
    tables, or none at all, knows no metric), and what is wrong with the database."""
    try:
        check_results_database(database_url)
    except NoResultsDatabase as err:
        return {}, True, err.message
    except ResultsDatabaseError as err:
        return {}, False, err.message
    try:
        with SqlStore.open(database_url) as store:
            statuses = {name: metric_status(spec, store) for name, spec in app.metrics.items()}
    except MonitorError as err:
        return {}, False, str(err)
    return statuses, True, None


def _table(rows: list[dict[str, object]], left: str) -> str:
    """Rows as a text table; the free-text column ``left`` is left-aligned."""
    width = max(len(str(row[left])) for row in rows)
    text = pd.DataFrame(rows).to_string(index=False, justify="left",
                                        formatters={left: lambda v: f"{v:<{width}}"})
    return "\n".join(line.rstrip() for line in text.splitlines())


def _stage(status: MetricStatus | None, known: bool) -> str:
    if not known:
        return "?"
    if status is None or status.stage is None:
        return UNREGISTERED
    if status.streaming_from is not None:  # where streaming takes over from batch
        return f"{status.stage} from {status.streaming_from:%Y-%m-%d %H:%M}"
    return status.stage


def _version(status: MetricStatus | None) -> str:
    if status is None or status.definition is None:
        return "-"
    return f"{status.definition.version}{'' if status.current else '*'}"


def _change(change: StageChange | None) -> str:
    """When, who and why of a stage change, the reason cut to fit a table row."""
    if change is None:
        return "-"
    reason = change.reason
    if len(reason) > REASON_CHARS:
        cut = reason[:REASON_CHARS - 3]
        if " " in cut[REASON_CHARS // 2:]:  # at a word boundary, when there is one
            cut = cut.rsplit(" ", 1)[0]
        reason = cut.rstrip(" ,;:.") + "..."
    return f"{change.at:%Y-%m-%d %H:%M} {change.by}: {reason}"


def _fields(fields: tuple[str, ...] | None, width: int = 30) -> str:
    """The field names, cut to about ``width`` characters so the table stays readable."""
    if fields is None:
        return "(from reference)"
    joined = ",".join(fields)
    if len(joined) <= width:
        return joined
    return f"{len(fields)} fields: {fields[0]},..."
