"""``monitor assertions export``: an assertion's stored examples out as JSON lines."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import click

from metrics.base import Aggregate
from monitor.assertion_export import example_lines, stored_assertion
from monitor.cli.db_cmd import database_url_option
from monitor.cli.values_cmd import open_results_store, utc_time
from monitor.storage.database import DatabaseUnavailableError
from monitor.storage.records import MetricDefinition, StoredState
from monitor.storage.store import SqlStore
from monitor.values import STAGES

# No window starts outside these: the bounds of a range left open.
FIRST = datetime(1970, 1, 1, tzinfo=UTC)
LAST = datetime(9999, 1, 1, tzinfo=UTC)

# What computes and stores a stage's windows, for "nothing stored": what to run next.
STORED_BY = {
    "research": "`monitor research run {name} --data FILE` records a research run",
    "batch": "`monitor batch run --metric {name} --since TIME --until TIME` computes batch "
             "windows (the metric must be in batch: `monitor promote {name} --to batch`)",
    "streaming": "`monitor stream worker` stores streaming windows as they close (the "
                 "metric must be in streaming: `monitor promote {name} --to streaming`)",
}


@click.group("assertions")
def assertions_group() -> None:
    """Get the examples an assertion keeps out of the database."""


@assertions_group.command("export")
@click.argument("name")
@click.option("--since", metavar="TIME", help="Windows starting at or after this UTC time.")
@click.option("--until", metavar="TIME", help="Windows starting before this UTC time.")
@click.option("--stage", type=click.Choice(STAGES),
              help="The stage whose windows to read [default: the stage the metric is in].")
@click.option("--version", type=click.IntRange(min=1), metavar="N",
              help="This version of the metric [default: its current version].")
@click.option("--segment", "segments", multiple=True, metavar="LABEL",
              help="Only this segment, as values files label it: '*' for all events, "
                   "country=SE for one (repeat for more) [default: every segment].")
@click.option("--out", required=True, metavar="FILE",
              type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              help="The JSON lines file to write ('-' for standard output).")
@database_url_option
def assertions_export(name: str, since: str | None, until: str | None, stage: str | None,
                      version: int | None, segments: tuple[str, ...], out: Path,
                      database_url: str) -> None:
    """Write the violations assertion NAME sampled to a JSON lines file, one per line.

    Each line is one sampled violating event of one window, ready for a labelling tool:
    the metric, version and stage, the segment, window_start and window_end (UTC), the
    event's id, its severity (1.0 for a rule that returns True) and, under "fields", the
    columns the assertion keeps:

    \b
      {"metric": "sure_about_strangers", "version": 2, "stage": "batch",
       "segment": "country=SE", "window_start": "2026-03-02T10:00:00Z",
       "window_end": "2026-03-02T11:00:00Z", "id": 81523, "severity": 0.27,
       "fields": {"user_id": "u4410", "score": 0.97}}

    The file is strict JSON: an infinite severity is the string "Infinity". Windows go
    by start then segment, each window's examples in sample order; research,
    batch and streaming keep the same examples of the same events. The states come from
    the database (--database-url) as the metric's stored definition made them, so no
    --app is needed. For example, yesterday's batch examples from Sweden:

    \b
      monitor assertions export sure_about_strangers --stage batch \\
          --since 2026-03-02T00:00Z --until 2026-03-03T00:00Z \\
          --segment country=SE --out examples.jsonl
    """
    start, end = utc_time(since, "--since"), utc_time(until, "--until")
    if start is not None and end is not None and start >= end:
        raise click.BadParameter("--since must be before --until", param_hint="--since")
    with open_results_store(database_url) as store:
        try:
            definition = _definition(store, name, version)
            aggregate = _stored_assertion(definition)
            stage = stage or definition.stage
            states = store.read_states(
                name, definition.version, stage,
                FIRST if start is None else start.to_pydatetime(),
                LAST if end is None else end.to_pydatetime())
        except DatabaseUnavailableError as err:
            raise click.ClickException(str(err)) from None
    if segments:
        states = [s for s in states if s.segment in set(segments)]
    if not states:
        raise click.ClickException(_nothing_stored(definition, stage, since, until, segments))
    if str(out) == "-":
        written = _write(example_lines(name, definition.version, stage, aggregate, states),
                         sys.stdout)
    else:
        with out.open("w", encoding="utf-8") as file:
            written = _write(example_lines(name, definition.version, stage, aggregate,
                                           states), file)
    click.echo(f"wrote {written} example{'s' if written != 1 else ''} of {name} version "
               f"{definition.version} ({stage}, {_windows(states)}) to "
               f"{'standard output' if str(out) == '-' else out}", err=True)


def _definition(store: SqlStore, name: str, version: int | None) -> MetricDefinition:
    """The stored definition asked for, or an error saying what is registered."""
    current = store.current_definition(name)
    if current is None:
        known = sorted(d.name for d in store.list_definitions())
        listing = f"registered: {', '.join(known)}" if known else "none is registered yet"
        raise click.ClickException(
            f"no metric {name!r} in the results database ({listing}); a metric is "
            f"registered when it first runs: `monitor research run {name} --data FILE`")
    if version is None or version == current.version:
        return current
    found = store.get_definition(name, version)
    if found is None:
        raise click.ClickException(f"metric {name!r} has no version {version}: its versions "
                                   f"are 1 to {current.version}")
    return found


def _stored_assertion(definition: MetricDefinition) -> Aggregate:
    """The aggregate that made the stored states, or an error when it is no assertion."""
    try:
        return stored_assertion(definition)
    except ValueError as err:
        raise click.ClickException(
            f"{err}; only a metric made with metrics.assertion(...) or "
            "metrics.consistency(...) can be exported") from None


def _nothing_stored(definition: MetricDefinition, stage: str, since: str | None,
                    until: str | None, segments: tuple[str, ...]) -> str:
    where = [f"in {stage}"]
    if since or until:
        where.append(f"with windows starting from {since or 'the first'} to before "
                     f"{until or 'the last'}")
    if segments:
        where.append(f"in segment{'s' if len(segments) > 1 else ''} {', '.join(segments)}")
    name = definition.name
    return (f"nothing stored for {name} version {definition.version} {' '.join(where)}: "
            f"{STORED_BY[stage].format(name=name)}; or see what is stored with "
            f"`monitor values export --metric {name} --out -` and pick another --stage, "
            "--since/--until or --segment")


def _write(lines: Iterable[str], file: TextIO) -> int:
    written = 0
    for line in lines:
        file.write(f"{line}\n")
        written += 1
    return written


def _windows(states: list[StoredState]) -> str:
    return f"{len(states)} window{'s' if len(states) != 1 else ''}"
