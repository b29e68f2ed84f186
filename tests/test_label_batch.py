"""Batch runs of metrics joined to labels: values bit-identical to research on the same
predictions and labels (SQL tables on SQLite and Postgres; JSON lines files), windows
recomputed as labels land while their horizon is open, reruns idempotent, refused labels
dead-lettered, and alert rules waiting for mature windows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

import metrics
from examples.music_home_events import write_events
from monitor import Labels, Monitor, Threshold
from monitor.batch.runner import BatchRunner, Retry
from monitor.batch.sources import FileSource, TableSource
from monitor.batch.tables import load_events
from monitor.research import evaluate
from monitor.storage.store import SqlStore
from monitor.targets import Target, batch_targets
from tests.label_data import (
    EARLY,
    END,
    HORIZON,
    HOURS,
    LABEL_SCHEMA,
    PREDICTION_SCHEMA,
    START,
    label_app,
    labels_for,
    predictions,
)


@pytest.fixture(scope="module")
def preds() -> pd.DataFrame:
    return predictions(seed=21, n=2_000)


@pytest.fixture(scope="module")
def labels(preds: pd.DataFrame) -> pd.DataFrame:
    return labels_for(preds, seed=22)


@pytest.fixture
def store(results_url: str) -> Iterator[SqlStore]:
    with SqlStore.open(results_url) as store:
        yield store


@pytest.fixture
def tables(store: SqlStore) -> Iterator[sa.Engine]:
    engine = sa.create_engine(store.database.url)
    drop = "DROP TABLE IF EXISTS label_predictions; DROP TABLE IF EXISTS label_outcomes"
    with engine.begin() as conn:
        for statement in drop.split(";"):
            conn.execute(sa.text(statement))
    yield engine
    with engine.begin() as conn:
        for statement in drop.split(";"):
            conn.execute(sa.text(statement))
    engine.dispose()


def promote(store: SqlStore, app: Monitor) -> list[Target]:
    for spec in app.metrics.values():
        version = store.register_metric(spec).version
        store.record_stage_change(spec.name, version, "batch", by="test", reason="labels")
    return batch_targets(app, store, stages=("batch",))


def table_runner(store: SqlStore, engine: sa.Engine) -> BatchRunner:
    return BatchRunner(store, lambda m: TableSource(engine, m.stream, chunk_rows=333),
                       retry=Retry(attempts=1),
                       label_source_for=lambda s: TableSource(engine, s, chunk_rows=401))


def assert_same_as_research(store: SqlStore, app: Monitor, preds: pd.DataFrame,
                            labels: pd.DataFrame) -> None:
    for name, spec in app.metrics.items():
        expected = evaluate(spec, preds, labels=labels).drop(columns="stage")
        got = store.read_values(metric=name, stage="batch", limit=None)
        got = got.drop(columns="stage").reset_index(drop=True)
        assert len(got) == HOURS * 4 * (3 if spec.segment_by else 1)
        pd.testing.assert_frame_equal(got, expected, check_exact=True, check_dtype=False)


def test_batch_from_tables_equals_research(store: SqlStore, tables: sa.Engine,
                                           preds: pd.DataFrame, labels: pd.DataFrame) -> None:
    app = label_app("tables_")
    load_events(tables, app.streams["home"], preds)
    loaded = load_events(tables, app.streams["outcomes"], labels)
    assert loaded == len(labels) - 2  # validation keeps out the null id and "maybe"
    summaries = table_runner(store, tables).run_many(promote(store, app), since=START,
                                                     until=END)
    assert [s.rows_read for s in summaries] == [len(preds)] * 2
    times = pd.to_datetime(labels["ts"], utc=True)
    in_range = (times >= START - EARLY) & (times < END + HORIZON)  # the join's label range
    storable = labels["prediction_id"].notna() & labels["clicked"].map(
        lambda v: isinstance(v, bool))
    assert [s.labels_read for s in summaries] == [int((in_range & storable).sum())] * 2
    assert_same_as_research(store, app, preds, labels)


def test_batch_from_files_equals_research_and_dead_letters_refused_labels(
        store: SqlStore, preds: pd.DataFrame, labels: pd.DataFrame, tmp_path: Path) -> None:
    write_events(preds, tmp_path / "home.jsonl")
    write_events(labels.iloc[::2], tmp_path / "outcomes-0.jsonl")
    write_events(labels.iloc[1::2], tmp_path / "outcomes-1.jsonl")
    app = label_app("files_", prediction_files=str(tmp_path / "home.jsonl"),
                    label_files=str(tmp_path / "outcomes-*.jsonl"))
    batch = BatchRunner(store, lambda m: FileSource(m.stream), retry=Retry(attempts=1),
                        label_source_for=FileSource)
    batch.run_many(promote(store, app), since=START, until=END)
    assert_same_as_research(store, app, preds, labels)
    letters = store.recent_dead_letters(f"batch:{tmp_path / 'outcomes-*.jsonl'}", limit=50)
    assert sorted(letter.reason for letter in letters) == [
        "field 'clicked' is not a boolean", "field 'prediction_id' is null",
        "label id 'prediction_id' is empty"]  # each once, though every slice read them


def test_windows_are_recomputed_as_labels_land_until_their_horizon_passes(
        store: SqlStore, tables: sa.Engine, preds: pd.DataFrame, labels: pd.DataFrame) -> None:
    """Scheduled runs (no since/until): the first two hours after the data, half the
    labels are in; a run after every horizon has passed sees them all and upserts every
    window; a rerun changes nothing; a run a week later leaves the windows alone."""
    app = label_app("reruns_")
    targets = promote(store, app)
    runner = table_runner(store, tables)
    load_events(tables, app.streams["home"], preds)
    first_now = END + pd.Timedelta("2h")
    landed = pd.to_datetime(labels["ts"], utc=True) <= first_now
    load_events(tables, app.streams["outcomes"], labels[landed])
    runner.run_many(targets, now=first_now)
    mine = app.get("reruns_click_accuracy")
    early_values = store.read_values(metric=mine.name, stage="batch", limit=None)
    assert early_values["window_start"].min() == START
    stored = early_values[early_values["window_start"] < END].drop(columns="stage")
    expected = evaluate(mine, preds, labels=labels[landed]).drop(columns="stage")
    pd.testing.assert_frame_equal(stored.reset_index(drop=True), expected, check_exact=True,
                                  check_dtype=False)

    load_events(tables, app.streams["outcomes"], labels[~landed])
    later = END + HORIZON + pd.Timedelta("2h")
    summaries = runner.run_many(targets, now=later)
    assert all(s.since <= START for s in summaries)  # reopened back to the first window
    final = {name: store.read_values(metric=name, stage="batch", limit=None)
             for name in app.metrics}
    for name, spec in app.metrics.items():
        expected = evaluate(spec, preds, labels=labels).drop(columns="stage")
        got = final[name][final[name]["window_start"] < END].drop(columns="stage")
        pd.testing.assert_frame_equal(got.reset_index(drop=True), expected, check_exact=True,
                                      check_dtype=False)
        assert not final[name]["value"].equals(early_values["value"])

    runner.run_many(targets, now=later)  # idempotent
    for name in app.metrics:
        pd.testing.assert_frame_equal(store.read_values(metric=name, stage="batch",
                                                        limit=None), final[name])
    week = runner.run_many(targets, now=later + pd.Timedelta("7D"))
    # it reopens only the windows whose horizon was open at the last run: after the data
    assert [s.since for s in week] == [later.floor("1h") - HORIZON] * 2


def test_alert_rules_judge_a_window_once_it_is_mature(store: SqlStore, tables: sa.Engine,
                                                      preds: pd.DataFrame,
                                                      labels: pd.DataFrame) -> None:
    """Reversed scores: every window's AUC is far below the rule's 0.55 from its first
    labels on. An hour after the data, coverage is below mature_at=0.9 and no horizon has
    passed, so nothing is judged; once the horizons pass, the alert fires."""
    app = label_app("alerts_")
    targets = promote(store, app)
    runner = table_runner(store, tables)
    load_events(tables, app.streams["home"], preds.assign(score=1.0 - preds["score"]))
    load_events(tables, app.streams["outcomes"], labels)
    runner.run_many(targets, now=END + pd.Timedelta("1h"))
    assert transitions(store, "alerts_click_auc") == []
    runner.run_many(targets, now=END + HORIZON + pd.Timedelta("1h"))
    fired = transitions(store, "alerts_click_auc")
    assert ("firing", START) in fired
    # announced, though the window ended a day ago: it only just became mature
    with store.database.connect() as conn:
        queued = conn.execute(sa.text(
            "SELECT count(*) FROM alert_notifications WHERE metric = :m AND kind = 'firing' "
            "AND segment = '*'"), {"m": "alerts_click_auc"}).scalar_one()
    assert queued == 1


def transitions(store: SqlStore, metric: str) -> list[tuple[str, pd.Timestamp]]:
    with store.database.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT transition, window_start FROM alert_events WHERE metric = :m "
            "AND segment = '*' ORDER BY window_start"), {"m": metric}).all()
    return [(row[0], utc(row[1])) for row in rows]


def utc(moment: datetime | str) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)  # SQLite gives naive UTC times back
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def test_a_window_waiting_for_labels_holds_back_the_later_slices(
        store: SqlStore, tables: sa.Engine) -> None:
    """Two days of hourly windows: a run goes a day (a slice, a transaction) at a time.
    The labels of day one's last hour are late; every other hour is fully labelled, so
    mature at once (mature_at=0.5, horizon a week). Day two's windows, stored by the
    second slice, are mature, but rules must not judge them before that late hour: they
    would pass it for good. Once its labels land, the next run judges it and the rest."""
    app = Monitor("waiting")
    app.stream("home", schema=PREDICTION_SCHEMA, table="label_predictions")
    app.stream("outcomes", schema=LABEL_SCHEMA, table="label_outcomes")
    app.metric("waiting_accuracy", "home", metrics.accuracy("clicked", "predicted"),
               window="1h", labels=Labels("outcomes", on="prediction_id", horizon="7d",
                                          mature_at=0.5),
               alerts=[Threshold(below=2.0)])  # always breached: it shows what was judged
    targets = promote(store, app)
    preds = predictions(seed=41, n=2_000)
    preds = preds.assign(ts=START + (preds["ts"] - START) * 8)  # spread over 48 hours
    labels = preds[["ts", "prediction_id"]].assign(
        ts=preds["ts"] + pd.Timedelta("1min"), clicked=preds["score"] > 0.3)
    late_hour = START + pd.Timedelta("23h")
    late = (preds["ts"] >= late_hour) & (preds["ts"] < late_hour + pd.Timedelta("1h"))
    load_events(tables, app.streams["home"], preds)
    load_events(tables, app.streams["outcomes"], labels[~late])
    runner = table_runner(store, tables)
    now = START + pd.Timedelta("49h")
    [summary] = runner.run_many(targets, now=now)
    assert summary.slices == 3  # two whole days and the hour after
    assert last_judged(store, "waiting_accuracy") == late_hour - pd.Timedelta("1h")
    load_events(tables, app.streams["outcomes"], labels[late])
    runner.run_many(targets, now=now + pd.Timedelta("1h"))
    assert last_judged(store, "waiting_accuracy") == START + pd.Timedelta("47h")


def last_judged(store: SqlStore, metric: str) -> pd.Timestamp:
    with store.database.connect() as conn:
        start = conn.execute(sa.text(
            "SELECT last_window_start FROM alert_states WHERE metric = :m AND segment = '*'"),
            {"m": metric}).scalar_one()
    return utc(start)
