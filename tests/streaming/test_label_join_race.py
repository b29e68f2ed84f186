"""The rebalance race of the label join, forced: an idle prediction partition and an idle
label partition resume within one tick of another worker's close, which forgets one
window (W1: every label partition passed it by the horizon) and closes another (W2).

Whether the resumed partitions' worker stores just before that tick or just after it, and
whether that worker or one that took the partitions over holds them, every row is either
counted — in the values, equal to research's join of the rows counted — or a dead letter
with its reason, never neither; and a row is a dead letter only when nothing could count
it any more (after the tick: the predictions of W1 and the labels that could have joined
one of W1's predictions). Before the fix, a row stored after the tick was held and
forgotten without a trace. The steps are called one at a time in each order (prepare and
absorb, then the store; the other worker's tick in between or after), never raced with
sleeps.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from monitor import Monitor
from monitor.research import evaluate
from monitor.storage.store import SqlStore
from monitor.targets import Target
from streaming.alert_hook import evaluate_alerts
from streaming.codec import encode_events, event_dicts
from streaming.label_processor import LABELS, PREDICTIONS, LabelJoinProcessor
from streaming.label_store import SqlHeldStore
from streaming.messages import RawMessage
from streaming.processor import StreamSettings
from tests.label_data import START, label_app
from tests.streaming.clock import Clock
from tests.streaming.test_label_processor import promote

IDLE_S = 5.0
TOPICS = ("race-predictions", "race-outcomes")
HOUR = pd.Timedelta("1h")
DAY = pd.Timedelta("1D")  # the metrics' horizon (label_app); lateness 0
W1, W2 = START, START + DAY  # W1 is forgotten by the tick, W2 closed by it
# The tick's marks: every partition idle at this wall clock less IDLE_S. It closes the
# windows ending by it and forgets those ending by the hour boundary a horizon before.
WALL = START + DAY + HOUR + pd.Timedelta("30min")


@pytest.fixture
def store(results_url: str) -> Iterator[SqlStore]:
    with SqlStore.open(results_url) as store:
        yield store


@pytest.fixture(scope="module")
def app() -> Monitor:
    return label_app(topics=TOPICS)


def worker(store: SqlStore, app: Monitor, targets: list[Target], clock: Clock,
           predictions: list[int], labels: list[int]) -> LabelJoinProcessor:
    stage = LabelJoinProcessor(SqlHeldStore(store.database), app.streams["home"],
                               app.streams["outcomes"], 2, 2, targets,
                               StreamSettings(idle_timeout_s=IDLE_S),
                               after_final=evaluate_alerts, clock=lambda: clock.monotonic,
                               wall_clock=lambda: clock.wall)
    stage.assign(PREDICTIONS, predictions)
    stage.assign(LABELS, labels)
    return stage


def predictions_at(name: str, start: pd.Timestamp, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    score = rng.random(n)
    return pd.DataFrame({
        "ts": start + pd.to_timedelta(np.sort(rng.integers(0, 3_000_000, n)), unit="ms"),
        "prediction_id": [f"{name}{i}" for i in range(n)], "score": score,
        "predicted": score > 0.5, "device": rng.choice(["ios", "web"], n).astype(object)})


def labels_of(predictions: pd.DataFrame, delay: pd.Timedelta, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"ts": predictions["ts"] + delay,
                         "prediction_id": predictions["prediction_id"],
                         "clicked": rng.random(len(predictions)) < predictions["score"]})


def message(partition: int, offset: int, events: pd.DataFrame) -> list[RawMessage]:
    return [RawMessage(partition, offset, encode_events(list(event_dicts(events))))]


@pytest.mark.parametrize("handed_over", [False, True], ids=["same_owner", "handed_over"])
@pytest.mark.parametrize("order", ["store_then_close", "close_then_store"])
def test_a_resumed_partition_is_counted_or_a_dead_letter_whatever_the_order(
        store: SqlStore, app: Monitor, order: str, handed_over: bool) -> None:
    """A owns prediction partition 1 and label partition 1, B partitions 0 (C after a
    hand-over). A's predictions are in W1 and W2, B's on time in W1 only, so B's
    partitions resume with events their own watermarks do not call late."""
    targets = promote(store, app)
    a_predictions = pd.concat([predictions_at("a", W1, 40, 1), predictions_at("b", W2, 40, 2)])
    a_labels = labels_of(a_predictions[:20], pd.Timedelta("5min"), 3)
    b_predictions = predictions_at("c", W1, 40, 4)
    b_labels = labels_of(b_predictions[:20], pd.Timedelta("5min"), 5)
    resumed_predictions = pd.concat([predictions_at("d", W1, 30, 6),  # W1: forgotten
                                     predictions_at("e", W2, 30, 7)])  # W2: held, closed
    too_late_labels = pd.concat([  # once W1 is forgotten
        labels_of(b_predictions[20:30], pd.Timedelta("10min"), 8),  # all windows forgotten
        labels_of(a_predictions[20:30], pd.Timedelta("20h"), 9)])  # a forgotten candidate
    resumed_labels = pd.concat([
        too_late_labels,
        labels_of(a_predictions[40:60], pd.Timedelta("15min"), 10),  # of W2: held
        labels_of(resumed_predictions[:10], pd.Timedelta("20h"), 11),  # of resumed W1 ones
    ]).sort_values("ts", kind="stable")  # in time order: none late by its watermark
    clock = Clock(WALL)
    a = worker(store, app, targets, clock, [1], [1])
    b = worker(store, app, targets, clock, [0], [0])
    a.handle(PREDICTIONS, message(1, 0, a_predictions))
    a.handle(LABELS, message(1, 0, a_labels))
    b.handle(PREDICTIONS, message(0, 0, b_predictions))
    b.handle(LABELS, message(0, 0, b_labels))
    clock.later(IDLE_S + 1)
    closed_early = b.tick()  # B's partitions idle; A's watermark (in W2) closes W1 only
    assert {pd.Timestamp(r.window_start) for f in closed_early for r in f.windows} == {W1}
    if handed_over:  # a rebalance: B lets go, C loads both partitions 0
        b.revoke(PREDICTIONS, [0])
        b.revoke(LABELS, [0])
        b = worker(store, app, targets, clock, [0], [0])
    # Partitions 0 resume: their micro-batches are decided and absorbed...
    prepared = [b.prepare(PREDICTIONS, message(0, 1, resumed_predictions))]
    b.absorb(prepared[0])
    prepared.append(b.prepare(LABELS, message(0, 1, resumed_labels)))
    b.absorb(prepared[1])
    assert not any(p.rejected for p in prepared)
    if order == "store_then_close":
        b.store_or_reload(prepared[1])
        closed = a.tick()  # A's partitions idle: W1 forgotten, W2 closed
    else:
        closed = a.tick()
        b.store_or_reload(prepared[1])
    assert {pd.Timestamp(r.window_start) for f in closed for r in f.windows} == {W2}
    for _ in range(2):
        clock.later(IDLE_S + 1)
        a.tick()
        b.tick()

    # every row counted (the values are research's join of the rows not refused) or a
    # dead letter, never neither
    refused_predictions, refused_labels, counted = dead_letters(store)
    predictions = pd.concat([a_predictions, b_predictions, resumed_predictions])
    labels = pd.concat([a_labels, b_labels, resumed_labels])
    predictions = predictions[~keys_in(predictions, refused_predictions)]
    labels = labels[~keys_in(labels, refused_labels)]
    for target in targets:
        expected = evaluate(target.metric, predictions, labels=labels).drop(columns="stage")
        got = store.read_values(metric=target.metric.name, stage="streaming", limit=None)
        pd.testing.assert_frame_equal(got.drop(columns="stage").reset_index(drop=True),
                                      expected, check_exact=True, check_dtype=False,
                                      obj=f"streaming values of {target.metric.name}")
    # and refused only when nothing could count it any more
    if order == "store_then_close":  # stored before anything was forgotten: all counted
        assert (refused_predictions, refused_labels) == (set(), set())
    else:  # W1's rows, and the labels that could join a prediction of it
        assert refused_predictions == keys(resumed_predictions[:30])
        assert refused_labels == keys(too_late_labels)
    assert counted == {"race-predictions": len(refused_predictions),
                       "race-outcomes": len(refused_labels)}


Key = tuple[str, pd.Timestamp]


def keys(events: pd.DataFrame) -> set[Key]:
    return {(pid, pd.Timestamp(ts)) for pid, ts in zip(events["prediction_id"], events["ts"],
                                                       strict=True)}


def keys_in(events: pd.DataFrame, wanted: set[Key]) -> np.ndarray:
    return np.array([(pid, pd.Timestamp(ts)) in wanted
                     for pid, ts in zip(events["prediction_id"], events["ts"], strict=True)],
                    dtype=bool)


def dead_letters(store: SqlStore) -> tuple[set[Key], set[Key], dict[str, int]]:
    """The rows refused (predictions, labels: id and time, from the letters' payloads,
    each stored once) and the dead letters counted per topic."""
    found: dict[str, set[Key]] = {TOPICS[0]: set(), TOPICS[1]: set()}
    with store.database.connect() as conn:
        for source, reason, payload in conn.execute(text(
                "SELECT source, reason, payload FROM dead_letters")):
            assert reason.startswith("late: too late: ") and "forgotten" in reason, reason
            event = json.loads(payload)
            found[source.removeprefix("stream:")].add(
                (event["prediction_id"], pd.Timestamp(event["ts"])))
        counts: dict[str, float] = dict(conn.execute(text(
            "SELECT metric, sum(value) FROM metric_values WHERE metric LIKE "
            "'%.label_join.dead_letters' AND segment = '*' GROUP BY metric")).all())
    counted = {TOPICS[0]: int(counts.get("home.label_join.dead_letters", 0)),
               TOPICS[1]: int(counts.get("outcomes.label_join.dead_letters", 0))}
    return found[TOPICS[0]], found[TOPICS[1]], counted


def test_a_row_later_than_the_lateness_is_counted_while_its_window_is_held(
        store: SqlStore, app: Monitor) -> None:
    """Lateness is not judged by a partition's own watermark: a prediction and a label of
    W1 that come after their partitions' events of W2 closed W1 revise it (its rows are
    held until every label partition passes it by the horizon), where they were dead
    letters before."""
    targets = promote(store, app)
    clock = Clock(WALL)
    stage = worker(store, app, targets, clock, [0, 1], [0, 1])
    on_time = [predictions_at(f"p{p}", W1, 40, p) for p in (0, 1)]
    later = [predictions_at(f"q{p}", W2, 40, 2 + p) for p in (0, 1)]
    labels = [labels_of(part[:20], pd.Timedelta("5min"), 4 + p)
              for p, part in enumerate(on_time)]
    for p in (0, 1):
        stage.handle(PREDICTIONS, message(p, 0, pd.concat([on_time[p], later[p]])))
        stage.handle(LABELS, message(p, 0, labels[p]))
    closed = stage.tick()
    assert {pd.Timestamp(r.window_start) for f in closed for r in f.windows} == {W1}
    late_prediction = predictions_at("late", W1, 5, 6)
    late_label = labels_of(on_time[0][20:25], pd.Timedelta("10min"), 7)
    stage.handle(PREDICTIONS, message(0, 1, late_prediction))
    stage.handle(LABELS, message(0, 1, late_label))
    assert dead_letters(store) == (set(), set(), {TOPICS[0]: 0, TOPICS[1]: 0})
    predictions = pd.concat([*on_time, *later, late_prediction])
    every_label = pd.concat([*labels, late_label])
    for target in targets:
        expected = evaluate(target.metric, predictions[predictions["ts"] < W1 + HOUR],
                            labels=every_label).drop(columns="stage")
        got = store.read_values(metric=target.metric.name, stage="streaming", limit=None)
        pd.testing.assert_frame_equal(got.drop(columns="stage").reset_index(drop=True),
                                      expected, check_exact=True, check_dtype=False,
                                      obj=f"streaming values of {target.metric.name}")
