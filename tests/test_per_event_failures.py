"""A per-event function that fails on some events' data at run time (it raises, or returns
the wrong shape, on a bad value) does not stop a stage: those events are left out of that
metric alone and go to dead letters with a reason naming the metric — reported by
research, stored by batch and streaming — and every stage leaves out the same events and
stores the same values and samples (see monitor.engine.derive for the rule)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

import metrics
from monitor import Monitor
from monitor.batch.runner import BatchRunner, Retry
from monitor.batch.sources import TableSource
from monitor.batch.tables import load_events
from monitor.engine import Engine
from monitor.partials import merge_stored
from monitor.research import run
from monitor.spec import MetricSpec
from monitor.stage_switch import EPOCH
from monitor.storage.store import SqlStore
from monitor.targets import batch_targets
from streaming.codec import encode_events, event_dicts
from streaming.messages import RawMessage
from streaming.processor import StreamProcessor, StreamSettings
from streaming.sql_store import SqlStreamStore
from tests.streaming.clock import Clock

START = pd.Timestamp("2026-03-02T00:00:00Z")
HOURS = 3
END = START + pd.Timedelta(hours=HOURS)
PARTITIONS = 3
RAISES, SHORT = -1.0, -2.0  # scores the fragile function cannot judge


def fragile_app() -> tuple[Monitor, MetricSpec, MetricSpec]:
    mon = Monitor("fragile")
    mon.stream("home", table="fragile_events", topic="fragile-events",
               schema={"view_id": "int", "user_id": "str", "country": "str",
                       "score": "float"})

    @mon.metric("fragile", "home", window="1h", segment_by=["country"],
                aggregate=metrics.assertion(id="view_id", keep=("ts", "score"), k=8))
    def fragile(events: pd.DataFrame) -> pd.Series:
        if (events["score"] == RAISES).any():
            raise ValueError("cannot judge a negative score")
        scores = events["score"]
        return (scores[scores != SHORT] > 0.8).reset_index(drop=True)  # short: a bug

    views = mon.metric("views", "home", metrics.count(), window="1h",
                       segment_by=["country"])
    return mon, fragile, views


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 2_000
    score = rng.random(n).round(6)
    score[rng.random(n) < 0.01] = RAISES
    score[rng.random(n) < 0.01] = SHORT
    return pd.DataFrame({
        "ts": START + pd.to_timedelta(np.sort(rng.integers(0, HOURS * 3_600_000, n)),
                                      unit="ms"),
        "view_id": rng.integers(0, 1_900, n),
        "user_id": rng.integers(0, 200, n).astype(str).astype(object),
        "country": rng.choice(["SE", "DE"], n).astype(object),
        "score": score,
    })


def bad(events: pd.DataFrame) -> pd.Series:
    return events["score"].isin([RAISES, SHORT])


def test_research_reports_them_and_leaves_them_out_of_that_metric_only(
        events: pd.DataFrame) -> None:
    _, fragile, views = fragile_app()
    result = run(fragile, events)
    expected_rows = sorted(events.index[bad(events)])
    assert 20 < len(expected_rows) < 80
    assert sorted(result.rejects["row"]) == expected_rows
    reasons = result.rejects.set_index("row")["reason"]
    for row in expected_rows:
        assert reasons[row].startswith("per-event function of metric 'fragile' failed: ")
        if events.loc[row, "score"] == RAISES:
            assert reasons[row].endswith("raised ValueError: cannot judge a negative score")
        else:
            assert reasons[row].endswith("returned 0 values for 1 events; it must return "
                                         "one value per event")
    # the same values and samples as research without those events
    without = run(fragile, events[~bad(events)])
    pd.testing.assert_frame_equal(result.values, without.values, check_exact=True)
    assert [w.state for w in result.windows] == [w.state for w in without.windows]
    # another metric of the stream counts every event
    counted = run(views, events).values
    assert counted[counted["segment"] == "*"]["value"].sum() == len(events)


def test_the_same_events_whatever_the_chunking(events: pd.DataFrame) -> None:
    """Shuffled chunks of random sizes, their states merged: the same events left out and
    the same states as research's whole frame."""
    _, fragile, _ = fragile_app()
    clean, _ = fragile.stream.schema.validate(events)
    shuffled = clean.sample(frac=1.0, random_state=3).reset_index(drop=True)
    rng = random.Random(9)
    cuts = sorted(rng.sample(range(1, len(shuffled)), 30))
    stored, left_out = [], []
    for start, stop in zip([0, *cuts], [*cuts, len(shuffled)], strict=True):
        engine = Engine([fragile])
        engine.update(shuffled.iloc[start:stop])
        for failed in engine.take_failed():
            left_out += shuffled["view_id"].iloc[start:stop].iloc[failed.rows].tolist()
        assert engine.failed == []  # taken
        stored += [(key, p.state.to_bytes(), p.rows) for key, p in engine.partials.items()]
    assert sorted(left_out) == sorted(clean["view_id"][bad(clean)])
    merged = merge_stored(fragile.aggregate, stored)
    research = {(w.segment, pd.Timestamp(w.window_start).value): w.state
                for w in run(fragile, events).windows}
    assert {(segment, start): p.state.to_bytes()
            for (_, segment, start), p in merged.items()} == research


@pytest.fixture
def store(results_url: str) -> Iterator[SqlStore]:
    with SqlStore.open(results_url) as store:
        yield store


def promote(store: SqlStore, app: Monitor, stage: str) -> None:
    for spec in app.metrics.values():
        version = store.register_metric(spec).version
        store.record_stage_change(spec.name, version, "batch", by="test", reason="fails")
        if stage == "streaming":
            store.record_stage_change(spec.name, version, stage, by="test", reason="fails",
                                      effective_from=EPOCH)


def dead_letters(store: SqlStore) -> pd.DataFrame:
    with store.database.connect() as conn:
        return pd.read_sql(sa.text("SELECT source, source_key, reason, payload "
                                   "FROM dead_letters"), conn)


def assert_stored_as_research(store: SqlStore, app: Monitor, stage: str,
                              events: pd.DataFrame) -> None:
    for spec in app.metrics.values():
        got = store.read_values(metric=spec.name, stage=stage, limit=None)
        pd.testing.assert_frame_equal(
            got.drop(columns="stage").reset_index(drop=True),
            run(spec, events).values.drop(columns="stage"), check_exact=True,
            check_dtype=False, obj=spec.name)


def failed_view_ids(letters: pd.DataFrame) -> list[int]:
    mine = letters[letters["reason"].str.startswith(
        "per-event function of metric 'fragile' failed")]
    return sorted(json.loads(payload)["view_id"] for payload in mine["payload"])


def test_batch_stores_them_as_dead_letters_once(store: SqlStore,
                                                events: pd.DataFrame) -> None:
    app, _, _ = fragile_app()
    promote(store, app, "batch")
    engine = sa.create_engine(store.database.url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS fragile_events"))
        assert load_events(engine, app.streams["home"], events) == len(events)
        batch = BatchRunner(store, lambda m: TableSource(engine, m.stream, chunk_rows=173),
                            retry=Retry(attempts=1))
        for _ in range(2):  # a rerun stores each dead letter once
            summaries = batch.run_many(batch_targets(app, store, stages=("batch",)),
                                       since=START, until=END)
            assert [s.failures for s in summaries] == [[], []], summaries
            assert [s.rows_read for s in summaries] == [len(events)] * 2
            batch = BatchRunner(store, lambda m: TableSource(engine, m.stream,
                                                             chunk_rows=389),
                                retry=Retry(attempts=1))
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE fragile_events"))
    finally:
        engine.dispose()
    letters = dead_letters(store)
    assert failed_view_ids(letters) == sorted(events["view_id"][bad(events)])
    assert len(letters) == bad(events).sum()
    assert_stored_as_research(store, app, "batch", events)


def test_streaming_counts_them_as_dead_letters(store: SqlStore,
                                               events: pd.DataFrame) -> None:
    app, _, _ = fragile_app()
    promote(store, app, "streaming")
    clock = Clock()
    stage = StreamProcessor(SqlStreamStore(store.database), app.streams["home"],
                            "fragile-events", PARTITIONS,
                            batch_targets(app, store, stages=("streaming",)),
                            StreamSettings(idle_timeout_s=5),
                            clock=lambda: clock.monotonic, wall_clock=lambda: clock.wall)
    stage.assign(range(PARTITIONS))
    rng = random.Random(4)
    queues: dict[int, list[RawMessage]] = {p: [] for p in range(PARTITIONS)}
    for event in event_dicts(events):  # one event a message, keyed by user
        partition = int(str(event["user_id"])) % PARTITIONS
        queues[partition].append(RawMessage(partition, len(queues[partition]),
                                            encode_events([event])))
    to_topic = []
    while any(queues.values()):
        batch = []
        for partition in rng.sample(range(PARTITIONS), PARTITIONS):
            take = rng.randint(0, 200)
            batch += queues[partition][:take]
            queues[partition] = queues[partition][take:]
        to_topic += stage.handle(batch).failed
        clock.later(0.2)
        stage.tick()
    clock.later(6)
    stage.tick()
    expected = sorted(events["view_id"][bad(events)])
    assert sorted(json.loads(letter.payload)["view_id"] for letter in to_topic) == expected
    assert {letter.reason for letter in to_topic} == {
        "per-event function of metric 'fragile' failed"}
    assert failed_view_ids(dead_letters(store)) == expected
    counted = store.read_values(metric="home.dead_letters", stage="streaming", limit=None)
    by_reason = counted.groupby("segment")["value"].sum()
    assert by_reason["*"] == len(expected)
    assert by_reason["reason=per-event function of metric 'fragile' failed"] == len(expected)
    assert_stored_as_research(store, app, "streaming", events)


def test_a_spark_task_hands_them_back_as_refused_rows(events: pd.DataFrame) -> None:
    """What a Spark task returns (monitor.batch.spark_tasks, called directly as Spark
    would on an executor): the failed rows as refused rows, which the runner stores as
    dead letters like validation's, and the states research has."""
    from monitor.batch.spark_tasks import PARTIAL, REJECTED, TaskPlan, absorb

    _, fragile, _ = fragile_app()
    plan = TaskPlan((fragile,), START, END, timeless=False)
    records = absorb(plan, [events.iloc[:700], events.iloc[700:]])
    refused = [(r[6], json.loads(r[7])) for r in records if r[0] == REJECTED]
    assert sorted(row["view_id"] for _, row in refused) == sorted(
        events["view_id"][bad(events)])
    assert all(reason.startswith("per-event function of metric 'fragile' failed: ")
               for reason, _ in refused)
    stored = [((r[1], r[2], r[3]), r[4], r[5]) for r in records if r[0] == PARTIAL]
    merged = merge_stored(fragile.aggregate, stored)
    research = {(w.segment, pd.Timestamp(w.window_start).value): w.state
                for w in run(fragile, events).windows}
    assert {(segment, start): p.state.to_bytes()
            for (_, segment, start), p in merged.items()} == research
