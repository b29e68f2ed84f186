"""``monitor research ...``: try a metric on a file and backtest its alert rules."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import pandas as pd

from monitor.alerts.backtest import alert_episodes
from monitor.cli.app import find_metric, load_app
from monitor.errors import MonitorError
from monitor.references import References
from monitor.registry import Monitor
from monitor.research import ResearchResult, run, summarize_reasons
from monitor.sources.files import read_events
from monitor.spec import MetricSpec
from monitor.values import write_values_csv

DATA_HELP = "Events: a JSON lines, CSV or Parquet file, or a quoted glob of them."
REFERENCE_HELP = ("Reference data (JSON lines, CSV, Parquet) or a fitted profile (.json) for "
                  "drift metrics; overrides the one the app declares.")


@click.group("research")
def research_group() -> None:
    """Compute a metric ad hoc and backtest its alerts on history."""


@research_group.command("run")
@click.argument("metric")
@click.option("--data", "data", required=True, metavar="FILE", help=DATA_HELP)
@click.option("--reference", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              metavar="FILE", help=REFERENCE_HELP)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), metavar="CSV",
              help="Write the values file here instead of standard output.")
@click.pass_context
def research_run(ctx: click.Context, metric: str, data: str, reference: Path | None,
                 out: Path | None) -> None:
    """Compute METRIC over a file of events and write its values.

    Output is the values CSV (metric,stage,segment,window_start,window_end,field,value,
    count), one row per field; a summary of what was read and rejected goes to stderr.
    """
    app = load_app(ctx.obj["app_target"])
    result = _compute(app, find_metric(app, metric), data, reference)
    if out is None:
        write_values_csv(result.values, sys.stdout)
    else:
        write_values_csv(result.values, out)
        click.echo(f"wrote {len(result.values)} values to {out}", err=True)


@research_group.command("backtest")
@click.argument("metric")
@click.option("--data", "data", required=True, metavar="FILE", help=DATA_HELP)
@click.option("--reference", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              metavar="FILE", help=REFERENCE_HELP)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), metavar="CSV",
              help="Also write the alert episodes to this CSV file.")
@click.pass_context
def research_backtest(ctx: click.Context, metric: str, data: str, reference: Path | None,
                      out: Path | None) -> None:
    """List the alerts METRIC's rules would have fired over a file of events.

    One row per alert episode: the rule, the segment, the window it fired in, the window
    it resolved in (blank if still firing at the end), and the value that fired it.
    """
    app = load_app(ctx.obj["app_target"])
    spec = find_metric(app, metric)
    if not spec.alerts:
        raise click.ClickException(
            f"metric {spec.name!r} has no alert rules to backtest; add alerts=[...] to it"
        )
    result = _compute(app, spec, data, reference)
    episodes = alert_episodes(spec, result.values)
    if out is not None:
        episodes.to_csv(out, index=False)
    if episodes.empty:
        click.echo(f"{spec.name}: no alert would have fired over {_span(result.values)}")
        return
    click.echo(f"{spec.name}: {len(episodes)} alert(s) over {_span(result.values)}")
    shown = episodes[["rule", "severity", "segment", "fired_window_start",
                      "resolved_window_start", "windows_firing", "value", "bound"]].copy()
    shown["resolved_window_start"] = [
        "still firing" if t is None or pd.isna(t) else t for t in shown["resolved_window_start"]
    ]
    click.echo(shown.to_string(index=False))


def _compute(app: Monitor, spec: MetricSpec, data: str, reference: Path | None) -> ResearchResult:
    paths: dict[str, str | Path] = dict(app.references)
    name = spec.aggregate.reference_name()
    if reference is not None and name is not None:
        paths[name] = reference
    try:
        read = read_events(data)
    except (FileNotFoundError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    try:
        result = run(spec, read.events, references=References(paths=paths))
    except MonitorError as err:
        raise click.ClickException(str(err)) from None
    rejects = pd.concat([read.rejects[["row", "reason"]], result.rejects], ignore_index=True)
    offered = result.events + len(read.rejects)
    message = f"read {offered} events from {data}; used {offered - len(rejects)}"
    if len(rejects):
        message += f", rejected {len(rejects)}: {summarize_reasons(rejects)}"
    click.echo(message, err=True)
    return result


def _span(values: pd.DataFrame) -> str:
    if values.empty:
        return "no windows"
    windows = values["window_start"].nunique()
    first, last = values["window_start"].min(), values["window_end"].max()
    return f"{windows} windows from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC"
