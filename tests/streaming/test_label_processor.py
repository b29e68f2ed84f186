"""The streaming label join without Kafka, on SQLite and Postgres: once every horizon has
passed, the stored values are research's, bit for bit — with labels shuffled, late (after
their window closed), early (before their prediction), duplicated, for unknown ids,
partitioned otherwise than the predictions, replayed, and after a crash mid-batch; bad
labels are dead letters with their reason; held rows are forgotten past the horizon."""

from __future__ import annotations

import dataclasses
import random
import threading
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from monitor import Monitor
from monitor.research import evaluate
from monitor.stage_switch import EPOCH
from monitor.storage.store import SqlStore
from monitor.targets import Target, batch_targets
from streaming.alert_hook import evaluate_alerts
from streaming.codec import encode_events, event_dicts
from streaming.label_processor import LABELS, PREDICTIONS, LabelJoinProcessor
from streaming.label_store import SqlHeldStore, held_counts
from streaming.messages import RawMessage
from streaming.processor import StreamSettings
from tests.label_data import label_app, labels_for, predictions
from tests.streaming.clock import Clock

PREDICTION_PARTITIONS = 4
LABEL_PARTITIONS = 3  # not the predictions' partitioning: an id's rows meet in the database
TOPICS = ("home-predictions", "home-outcomes")
Side = tuple[str, RawMessage]


@pytest.fixture
def store(results_url: str) -> Iterator[SqlStore]:
    with SqlStore.open(results_url) as store:
        yield store


@pytest.fixture(scope="module")
def app() -> Monitor:
    return label_app(lateness="2h", topics=TOPICS)


@pytest.fixture(scope="module")
def events() -> tuple[pd.DataFrame, pd.DataFrame]:
    preds = predictions(n=2_000)
    return preds, labels_for(preds)


def promote(store: SqlStore, app: Monitor) -> list[Target]:
    for spec in app.metrics.values():
        definition = store.register_metric(spec)
        for stage in ("batch", "streaming"):
            store.record_stage_change(spec.name, definition.version, stage, by="test",
                                      reason="label join test", effective_from=EPOCH)
    return batch_targets(app, store, stages=("streaming",))


def processor(store: SqlStore, app: Monitor, targets: list[Target], clock: Clock,
              owns: tuple[Iterable[int], Iterable[int]] = (range(PREDICTION_PARTITIONS),
                                                           range(LABEL_PARTITIONS))
              ) -> LabelJoinProcessor:
    """A worker's processor owning ``owns``: (prediction partitions, label partitions)."""
    stage = LabelJoinProcessor(SqlHeldStore(store.database), app.streams["home"],
                               app.streams["outcomes"], PREDICTION_PARTITIONS,
                               LABEL_PARTITIONS, targets, StreamSettings(idle_timeout_s=5),
                               after_final=evaluate_alerts, clock=lambda: clock.monotonic,
                               wall_clock=lambda: clock.wall)
    stage.assign(PREDICTIONS, owns[0])
    stage.assign(LABELS, owns[1])
    return stage


def arrivals(preds: pd.DataFrame, labels: pd.DataFrame, seed: int) -> list[Side]:
    """The messages in the order they reach the worker: a prediction when it is made, a
    label some minutes after its own time (so labels come shuffled within each partition,
    by less than the metrics' lateness), early labels before their predictions, late ones
    a day after; each partition's events batched into messages of 1 to 20."""
    rng = random.Random(seed)
    timed: list[tuple[pd.Timestamp, str, int, dict[str, Any]]] = []
    for event in event_dicts(preds):
        timed.append((pd.Timestamp(event["ts"]), PREDICTIONS,
                      zlib.crc32(str(event["prediction_id"]).encode()) % PREDICTION_PARTITIONS,
                      event))
    for event in event_dicts(labels):
        jitter = pd.Timedelta(minutes=rng.uniform(0, 45))
        timed.append((pd.Timestamp(event["ts"]) + jitter, LABELS,
                      zlib.crc32(str(event.get("prediction_id")).encode()) % LABEL_PARTITIONS,
                      event))
    timed.sort(key=lambda item: (item[0], item[1]))
    offsets: dict[tuple[str, int], int] = {}
    open_messages: dict[tuple[str, int], list[dict[str, Any]]] = {}
    messages: list[Side] = []

    def flush(key: tuple[str, int]) -> None:
        items = open_messages.pop(key)
        offset = offsets.get(key, 0)
        offsets[key] = offset + 1
        messages.append((key[0], RawMessage(key[1], offset, encode_events(items))))

    for _, side, partition, event in timed:
        key = (side, partition)
        open_messages.setdefault(key, []).append(event)
        if len(open_messages[key]) >= rng.randint(1, 20):
            flush(key)
    for key in sorted(open_messages):
        flush(key)
    return messages


def batches(messages: list[Side], seed: int) -> Iterator[tuple[str, list[RawMessage]]]:
    """Micro-batches of one side, as a worker's agents take them."""
    rng = random.Random(seed)
    start = 0
    while start < len(messages):
        side = messages[start][0]
        end = start
        while end < len(messages) and messages[end][0] == side and end - start < rng.randint(
                1, 40):
            end += 1
        yield side, [message for _, message in messages[start:end]]
        start = end


def stored(store: SqlStore, metric: str) -> pd.DataFrame:
    values = store.read_values(metric=metric, stage="streaming", limit=None)
    return values.drop(columns="stage").reset_index(drop=True)


def held(store: SqlStore, targets: list[Target]) -> tuple[int, int]:
    with store.database.connect() as conn:
        found = [held_counts(conn, t.metric.name, t.version) for t in targets]
    return sum(p for p, _ in found), sum(lab for _, lab in found)


def test_streaming_joins_labels_as_research_does(
        store: SqlStore, app: Monitor, events: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    preds, labels = events
    targets = promote(store, app)
    clock = Clock()
    stage = processor(store, app, targets, clock)
    messages = arrivals(preds, labels, seed=3)
    first_stored: float | None = None
    held_over_time = []
    for number, (side, batch) in enumerate(batches(messages, seed=4)):
        stage.handle(side, batch)
        stage.tick()
        if number % 7 == 3:  # a redelivery: everything in it is at or below the offsets
            assert stage.handle(side, batch).skipped == len(batch)
        if number == 150:  # a crash mid-batch: absorbed, never stored; a new worker resumes
            stage.absorb(stage.prepare(side, batch))
            stage = processor(store, app, targets, clock)
            assert stage.handle(side, batch).skipped == len(batch)
        first = _labelled_of_first_window(store)
        if first_stored is None and first is not None:
            first_stored = first
        held_over_time.append(held(store, targets)[0])
    assert first_stored is not None, "the first window closed while labels still came"
    before_the_end = held(store, targets)[0]

    clock.later(60)  # every partition idle: its mark goes to the wall clock, far ahead
    stage.tick()
    for target in targets:
        expected = evaluate(target.metric, preds, labels=labels).drop(columns="stage")
        pd.testing.assert_frame_equal(stored(store, target.metric.name), expected,
                                      check_exact=True, check_dtype=False)
    # the alert rules judged every window of every segment (all mature: their horizon
    # passed long before the wall clock)
    with store.database.connect() as conn:
        judged = conn.execute(text(
            "SELECT segment, max(last_window_end) FROM alert_states WHERE metric = "
            "'click_auc' AND stage = 'streaming' GROUP BY segment")).all()
    assert sorted(segment for segment, _ in judged) == ["*", "device=ios", "device=web"]
    last_end = preds["ts"].max().floor("1h") + pd.Timedelta("1h")
    assert [pd.Timestamp(end).tz_localize(None) for _, end in judged] == [
        last_end.tz_localize(None)] * 3
    # the first window was stored before most of its labels came, and revised as they did
    final = _labelled_of_first_window(store)
    assert final is not None and first_stored < final
    # rows held: some windows were forgotten before the end, all of them after it
    assert before_the_end < len(preds) * len(targets)
    assert max(held_over_time) <= len(preds) * len(targets)
    assert held(store, targets) == (0, 0)


def test_two_workers_at_once_join_rows_of_partitions_they_do_not_share(
        store: SqlStore, app: Monitor, events: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """Each worker owns some partitions of each topic: a prediction and its label held by
    different workers still meet. On Postgres they store at the same time (threads), so
    revisions of one window by both must not lose either's rows; SQLite has one writer,
    so there they take turns batch by batch."""
    preds, labels = events
    targets = promote(store, app)
    clock = Clock()
    shares = [((0, 1), (0,)), ((2, 3), (1, 2))]
    messages = arrivals(preds, labels, seed=5)
    workers = []
    for seed, owns in enumerate(shares):
        mine = [(side, m) for side, m in messages
                if m.partition in owns[0 if side == PREDICTIONS else 1]]
        workers.append((processor(store, app, targets, clock, owns),
                        list(batches(mine, seed=seed))))
    if store.database.dialect == "postgresql":
        failures: list[BaseException] = []

        def feed(stage: LabelJoinProcessor, work: list[tuple[str, list[RawMessage]]]) -> None:
            try:
                for side, batch in work:
                    stage.handle(side, batch)
                    stage.tick()
            except BaseException as err:  # reported by the test's thread
                failures.append(err)

        threads = [threading.Thread(target=feed, args=worker) for worker in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not failures, failures
    else:
        for step in range(max(len(work) for _, work in workers)):
            for stage, work in workers:
                if step < len(work):
                    stage.handle(*work[step])
                    stage.tick()
    clock.later(60)  # every partition idle: each worker moves its marks to the wall clock
    for stage, _ in workers:
        stage.tick()
    for target in targets:
        expected = evaluate(target.metric, preds, labels=labels).drop(columns="stage")
        pd.testing.assert_frame_equal(stored(store, target.metric.name), expected,
                                      check_exact=True, check_dtype=False)
    assert held(store, targets) == (0, 0)


def test_bad_labels_are_dead_letters_with_their_reason(
        store: SqlStore, app: Monitor, events: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    _, labels = events
    targets = promote(store, app)
    clock = Clock()
    stage = processor(store, app, targets, clock)
    bad = labels[labels["prediction_id"].isna() | (labels["prediction_id"] == "")
                 | ~labels["clicked"].map(lambda v: isinstance(v, bool | np.bool_))]
    assert len(bad) == 3
    stage.handle(LABELS, [RawMessage(0, i, encode_events([event]))
                          for i, event in enumerate(event_dicts(bad))])
    with store.database.connect() as conn:
        reasons = sorted(row[0] for row in conn.execute(text(
            "SELECT reason FROM dead_letters WHERE source = 'stream:home-outcomes'")))
        counted = conn.execute(text(
            "SELECT value FROM metric_values WHERE metric = 'outcomes.label_join.dead_letters'"
            " AND segment = '*'")).scalar()
    assert len(reasons) == 3
    assert any("'prediction_id' is empty" in r for r in reasons)
    assert any("'prediction_id' is null" in r for r in reasons)
    assert any("'clicked'" in r for r in reasons)
    assert counted == 3
    assert held(store, targets) == (0, 0)


def _labelled_of_first_window(store: SqlStore) -> float | None:
    values = store.read_values(metric="click_accuracy", stage="streaming", limit=None)
    first = values[(values["field"] == "labelled")
                   & (values["window_start"] == values["window_start"].min())]
    return None if first.empty else float(first["value"].iloc[0])


def test_a_metric_of_another_stream_is_refused(app: Monitor) -> None:
    other = dataclasses.replace(app.streams["home"], name="elsewhere")
    with pytest.raises(ValueError, match="is not one of stream 'elsewhere'"):
        # no database: the definition is refused before the store is used
        LabelJoinProcessor(SqlHeldStore(None), other,  # type: ignore[arg-type]
                           app.streams["outcomes"], 1, 1,
                           [Target(app.metrics["click_auc"], 1)])
