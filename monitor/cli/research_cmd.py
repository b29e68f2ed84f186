"""``monitor research ...``: try a metric on a file and backtest its alert rules.

Both record the run in the results database (unless ``--no-store``): the metric's
definition, bound to its reference profile, is registered (a changed definition becomes
a new version), the profile is stored, and the values are stored as stage "research".
That recorded run is what ``monitor promote METRIC --to batch`` asks for.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import click
import pandas as pd

from metrics.drift import ReferenceProfile
from monitor.alerts.backtest import alert_episodes, mature_values
from monitor.cli.app import find_metric, load_app
from monitor.cli.db_cmd import database_url_option
from monitor.cli.promote_cmd import current_user
from monitor.cli.values_cmd import ResultsDatabaseError, check_results_database
from monitor.errors import MonitorError
from monitor.references import References
from monitor.registry import Monitor
from monitor.research import ResearchResult, run, summarize_reasons
from monitor.research_record import profile_to_record, record_run
from monitor.sources.files import read_events
from monitor.spec import MetricSpec
from monitor.storage.database_url import mask_url
from monitor.storage.ports import WriteRefused
from monitor.storage.store import SqlStore
from monitor.values import write_values_csv

DATA_HELP = "Events: a JSON lines, CSV or Parquet file, or a quoted glob of them."
REFERENCE_HELP = ("Reference data (JSON lines, CSV, Parquet) or a fitted profile (.json) for "
                  "drift metrics; overrides the one the app declares.")
NO_STORE_HELP = "Do not record the run (definition, reference profile, values) in the database."
LABELS_HELP = ("Label events for a metric declared with labels= (JSON lines, CSV, Parquet, or "
               "a quoted glob), validated against its label stream and joined to the "
               "predictions on their id within the horizon.")
AS_OF_HELP = ("For a metric joined to labels: the time its windows' maturity is judged at "
              "(ISO 8601, UTC if no offset); by default the end of the data, the latest "
              "prediction or label time. Alert rules judge mature windows only.")


def labels_options(command: Callable[..., None]) -> Callable[..., None]:
    command = click.option("--as-of", "as_of", metavar="TIME", help=AS_OF_HELP)(command)
    return click.option("--labels", "labels", metavar="FILE", help=LABELS_HELP)(command)


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
@click.option("--no-store", is_flag=True, help=NO_STORE_HELP)
@labels_options
@database_url_option
@click.pass_context
def research_run(ctx: click.Context, metric: str, data: str, reference: Path | None,
                 out: Path | None, no_store: bool, labels: str | None, as_of: str | None,
                 database_url: str) -> None:
    """Compute METRIC over a file of events, write its values and record the run.

    Output is the values CSV (metric,stage,segment,window_start,window_end,field,value,
    count), one row per field; a summary of what was read and rejected goes to stderr.
    The run is recorded in the results database (run `monitor db upgrade` once first):
    the definition (a changed one becomes a new version), the reference profile and the
    values, as stage "research".

    A metric joined to labels needs --labels FILE: each prediction gets the earliest
    label with its id within the horizon, the windows are the predictions', and the
    values gain label_coverage, labelled and predictions. What became of the labels
    (matched, duplicates, unmatched ids, rejected) and how many windows are mature go to
    stderr.
    """
    app = load_app(ctx.obj["app_target"])
    spec = find_metric(app, metric)
    with _recording(database_url, no_store) as store:
        computed = _compute(app, spec, data, reference, store, labels, as_of)
        if store is not None:
            _record(store, computed)
    result = computed.result
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
@click.option("--no-store", is_flag=True, help=NO_STORE_HELP)
@labels_options
@database_url_option
@click.pass_context
def research_backtest(ctx: click.Context, metric: str, data: str, reference: Path | None,
                      out: Path | None, no_store: bool, labels: str | None, as_of: str | None,
                      database_url: str) -> None:
    """List the alerts METRIC's rules would have fired over a file of events.

    One row per alert episode: the rule, the segment, the window it fired in, the window
    it resolved in (blank if still firing at the end), and the value that fired it. The
    values are recorded as a research run, as `monitor research run` does.

    A metric joined to labels (pass --labels FILE) is judged only on its mature windows
    as of --as-of (by default the end of the data), as the live stages judge them: a
    half-labelled window never fires.
    """
    app = load_app(ctx.obj["app_target"])
    spec = find_metric(app, metric)
    if not spec.alerts:
        raise click.ClickException(
            f"metric {spec.name!r} has no alert rules to backtest; add alerts=[...] to it"
        )
    with _recording(database_url, no_store) as store:
        computed = _compute(app, spec, data, reference, store, labels, as_of)
        if store is not None:
            _record(store, computed)
    result = computed.result
    episodes = alert_episodes(spec, result.values, as_of=result.as_of)
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


@dataclass
class Computed:
    result: ResearchResult
    profile: ReferenceProfile | None  # the reference profile to store with the run


@contextmanager
def _recording(database_url: str, no_store: bool) -> Iterator[SqlStore | None]:
    """The results store to record in (checked before any work), or None with --no-store."""
    if no_store:
        yield None
        return
    try:
        check_results_database(database_url)
    except ResultsDatabaseError as err:
        raise click.ClickException(f"{err.message}\nTo compute without recording the run, "
                                   "pass --no-store.") from None
    with SqlStore.open(database_url) as store:
        yield store


def _compute(app: Monitor, spec: MetricSpec, data: str, reference: Path | None,
             store: SqlStore | None, labels: str | None = None, as_of: str | None = None
             ) -> Computed:
    paths: dict[str, str | Path] = dict(app.references)
    name = spec.aggregate.reference_name()
    if reference is not None and name is not None:
        paths[name] = reference
    try:
        read = read_events(data)
    except (FileNotFoundError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    try:
        chosen = None if store is None else profile_to_record(app, spec, paths, store)
        if chosen is None:
            references, profile = References(paths=paths), None
        else:
            if chosen.from_store:
                click.echo(f"comparing against the stored reference profile {name!r} "
                           f"({chosen.profile.id})", err=True)
            profile = chosen.profile
            references = References(profiles={profile.name: profile})
        result = run(spec, read.events, references=references, labels=labels,
                     as_of=_as_of(as_of))
    except (MonitorError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from None
    except ValueError as err:  # a label file of unknown format
        raise click.ClickException(f"--labels: {err}") from None
    rejects = pd.concat([read.rejects[["row", "reason"]], result.rejects], ignore_index=True)
    offered = result.events + len(read.rejects)
    message = f"read {offered} events from {data}; used {offered - len(rejects)}"
    if len(rejects):
        message += f", rejected {len(rejects)}: {summarize_reasons(rejects)}"
    click.echo(message, err=True)
    if result.label_counts is not None:
        click.echo(label_summary(result, labels or ""), err=True)
    return Computed(result, profile)


def _as_of(text: str | None) -> pd.Timestamp | None:
    if text is None:
        return None
    try:
        stamp = pd.Timestamp(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a time; use ISO 8601, e.g. "
                                 "2026-03-08T00:00:00Z", param_hint="--as-of") from None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def label_summary(result: ResearchResult, path: str) -> str:
    """What became of the labels and how many windows are mature, in a few lines."""
    counts = result.label_counts
    assert counts is not None and result.label_rejects is not None
    text = (f"read {counts.offered} labels from {path}: {counts.matched} joined, "
            f"{counts.duplicates} duplicates (an earlier label won), {counts.unmatched} "
            f"unmatched (unknown id or outside the horizon), {counts.rejected} rejected")
    if len(result.label_rejects):
        text += f": {summarize_reasons(result.label_rejects)}"
    values = result.values
    coverage = values[(values["field"] == "label_coverage") & (values["segment"] == "*")]
    if coverage.empty or result.as_of is None:
        return text
    overall = mature_values(result.metric, values, result.as_of)
    mature = overall[(overall["segment"] == "*") & (overall["field"] == "label_coverage")]
    return (f"{text}\n{len(mature)} of {len(coverage)} windows mature as of "
            f"{result.as_of:%Y-%m-%d %H:%M:%S} UTC (alert rules judge those only)")


def _record(store: SqlStore, computed: Computed) -> None:
    """Record the run (see :mod:`monitor.research_record`) and say what was stored."""
    bound = computed.result.metric
    try:
        recorded = record_run(store, computed.result, computed.profile, by=current_user())
    except WriteRefused as err:  # a value it cannot hold: say so, not a traceback
        raise click.ClickException(
            f"the results database refused the run of {bound.name}, so nothing was "
            f"recorded: {err.problem}\nTo compute without recording the run, pass "
            "--no-store; please report the value that was refused.") from None
    except MonitorError as err:  # the database went away mid-run: nothing was recorded
        raise click.ClickException(str(err)) from None
    if recorded is None:
        click.echo(f"nothing recorded: no event of {bound.name} fell in a window", err=True)
        return
    before, definition = recorded.previous, recorded.definition
    if before is None:
        why = "newly registered"
    elif before.version != definition.version:
        why = f"the definition changed; version {before.version} was in {before.stage}"
    else:
        why = f"in {definition.stage}"
    click.echo(f"recorded research run of {bound.name} as version {definition.version} "
               f"({why}): {recorded.values_written} values in "
               f"{mask_url(store.database.url)}", err=True)
    profile = computed.profile
    if profile is not None and recorded.latest_profile_id != profile.id:
        click.echo(
            f"note: reference profile {profile.name!r} {profile.id} was stored before; "
            f"batch and `monitor promote` compare against the latest stored one, "
            f"{recorded.latest_profile_id}, so to them this metric's definition has changed",
            err=True)


def _span(values: pd.DataFrame) -> str:
    if values.empty:
        return "no windows"
    windows = values["window_start"].nunique()
    first, last = values["window_start"].min(), values["window_end"].max()
    return f"{windows} windows from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC"
