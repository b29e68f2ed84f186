"""The example week as event files, and what the Spark tests do with it: register the
example's metrics in a store, run them in batch on one engine or the other, read back
what was stored."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from examples.music_home import training_profile
from examples.music_home_events import (
    DEFAULT_START,
    click_outcomes,
    generate_events,
    generate_reference,
    write_events,
)
from metrics import ReferenceProfile
from monitor.batch.runner import BatchRunner, Retry, RunSummary
from monitor.batch.slice_states import StateSource
from monitor.batch.sources import EventSource, FileSource
from monitor.lifecycle import bind_stored_reference
from monitor.research import evaluate
from monitor.spec import MetricSpec, StreamSpec
from monitor.storage import alert_states
from monitor.storage.migrate import upgrade
from monitor.storage.store import SqlStore
from monitor.targets import Target, batch_targets
from tests.spark_app import EXAMPLE_METRICS, mon

DAYS = 7
SEED = 7
START = DEFAULT_START
END = START + pd.Timedelta(days=DAYS)
NOW = END + pd.Timedelta("5min")  # the click outcomes of the last windows are in by then
ROW_GROUP = 2_000  # small row groups: Spark splits a day's file into several tasks


@dataclass(frozen=True)
class Week:
    events: pd.DataFrame  # as research reads them back from the files
    labels: pd.DataFrame
    profile: ReferenceProfile
    events_glob: str
    outcomes_path: str


def write_week(folder: Path, *, text_days: Sequence[int] = ()) -> Week:
    """The example week, a Parquet file a day (the days in ``text_days`` as JSON lines
    and CSV instead, alternately), and its click outcomes as JSON lines."""
    from monitor.sources.files import read_events

    events = generate_events(start=START, days=DAYS, seed=SEED, events_per_hour=600)
    outcomes = click_outcomes(events, seed=SEED)
    outcomes = outcomes[outcomes["ts"] < NOW]
    day = (events["ts"] - START) // pd.Timedelta(days=1)
    for number in range(DAYS):
        frame = events[day == number]
        if number in text_days:
            suffix = ["jsonl", "csv"][text_days.index(number) % 2]
            write_events(frame, folder / f"home-{number}.{suffix}")
        else:
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False),
                           folder / f"home-{number}.parquet", row_group_size=ROW_GROUP)
    labels_path = write_events(outcomes, folder / "outcomes.jsonl")
    glob = str(folder / "home-*")
    profile = training_profile(generate_reference(start=START, seed=SEED, events_per_hour=600))
    return Week(read_events(glob).events, read_events(labels_path).events, profile, glob,
                str(labels_path))


def on_files(spec: MetricSpec, week: Week) -> MetricSpec:
    """``spec`` reading the week's files (and its labels from the week's outcomes)."""
    stream = dataclasses.replace(spec.stream, files=week.events_glob)
    labels = spec.labels
    if labels is not None:
        labels = dataclasses.replace(labels, stream=dataclasses.replace(
            labels.stream, files=week.outcomes_path))
    return dataclasses.replace(spec, stream=stream, labels=labels)


def new_store(url: str) -> SqlStore:
    upgrade(url)
    return SqlStore.open(url)


def promote(store: SqlStore, week: Week, names: Sequence[str] = EXAMPLE_METRICS
            ) -> list[Target]:
    """The metrics registered and promoted to batch, reading the week's files."""
    store.save_profile(week.profile)
    for name in names:
        spec = mon.get(name)
        version = store.register_metric(bind_stored_reference(spec, store)).version
        store.record_stage_change(name, version, "batch", by="test", reason="spark parity")
    return [dataclasses.replace(t, metric=on_files(t.metric, week))
            for t in batch_targets(mon, store, names)]


def run_batch(store: SqlStore, targets: list[Target],
              source: Callable[[StreamSpec], EventSource | StateSource], *,
              until: pd.Timestamp = END, retry: Retry | None = None) -> list[RunSummary]:
    runner = BatchRunner(store, lambda m: source(m.stream),
                         retry=retry or Retry(attempts=1),
                         label_source_for=FileSource, sleep=lambda _: None)
    return runner.run_many(targets, since=START, until=until, now=NOW)


def stored_values(store: SqlStore, metric: str) -> pd.DataFrame:
    values = store.read_values(metric=metric, stage="batch", limit=None)
    return values.drop(columns="stage").reset_index(drop=True)


def stored_states(store: SqlStore, target: Target) -> list[tuple[object, ...]]:
    states = store.read_states(target.metric.name, target.version, "batch",
                               START.to_pydatetime(), END.to_pydatetime())
    return sorted((s.segment, s.window_start, s.rows, bytes(s.state)) for s in states)


def alert_history(store: SqlStore, metric: str) -> list[tuple[object, ...]]:
    with store.database.connect() as conn:
        return [(e.key.rule, e.key.segment, e.transition, e.window_start, e.detail)
                for e in alert_states.events_of(conn, metric, "batch")]


def assert_spark_equals_one_process(week: Week, single: SqlStore, on_spark: SqlStore,
                                    local: tuple[list[Target], list[RunSummary]],
                                    spark: tuple[list[Target], list[RunSummary]]) -> None:
    """Both runs read the whole week; each metric's stored values equal research's, bit
    for bit, in both stores; Spark's states and alert history equal one process's; every
    slice is a succeeded run and the watermark is at the end."""
    (local_targets, local_runs), (spark_targets, spark_runs) = local, spark
    assert [(s.metric, s.rows_read, s.windows_written, s.slices) for s in spark_runs] == [
        (s.metric, s.rows_read, s.windows_written, s.slices) for s in local_runs]
    assert all(s.rows_read == len(week.events) and s.slices == DAYS for s in spark_runs)
    for one, other in zip(local_targets, spark_targets, strict=True):
        metric = one.metric
        expected = evaluate(metric, week.events, reference=week.profile,
                            labels=week.labels if metric.labels is not None else None
                            ).drop(columns="stage")
        for store in (single, on_spark):
            pd.testing.assert_frame_equal(stored_values(store, metric.name), expected,
                                          check_exact=True, check_dtype=False)
        assert stored_states(on_spark, other) == stored_states(single, one)
        assert alert_history(on_spark, metric.name) == alert_history(single, metric.name)
    for target in spark_targets:
        runs = on_spark.recent_runs(target.metric.name, limit=100)
        assert sorted(r.status for r in runs) == ["succeeded"] * DAYS
        assert on_spark.succeeded_until(target.metric.name, target.version) == END
