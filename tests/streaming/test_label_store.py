"""The label join's held store on SQLite and Postgres: rows held once with their offsets,
windows valued from the database when they close and again when a row lands for them,
held rows forgotten when purged, and conflicting checkpoints refused."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

import pandas as pd
import pytest
from sqlalchemy import text

from monitor.engine import Engine
from monitor.spec import MetricSpec
from monitor.storage.database import Database
from monitor.storage.records import WindowResult
from monitor.windows import utc_from_ns
from streaming.held_rows import event_payloads, held_frame
from streaming.label_ports import (
    Forgotten,
    HeldLabel,
    HeldPrediction,
    HeldWindow,
    JoinCutoff,
    JoinMarks,
    MetricHeld,
    Refused,
    Valued,
)
from streaming.label_store import SqlHeldStore, held_counts
from streaming.partition import PartitionState
from streaming.ports import CheckpointConflict
from tests.label_data import label_app, predictions

HOUR = 3_600 * 10**9
T0 = pd.Timestamp("2026-03-02T00:00:00Z").value
SOURCE = "home joined"


@pytest.fixture
def metric() -> MetricSpec:
    return label_app().metrics["click_accuracy"]


@pytest.fixture
def held_store(results_url: str) -> Iterator[SqlHeldStore]:
    with Database(results_url) as database:
        yield SqlHeldStore(database)


class Recorder:
    """A valuer that remembers what it was given and stores the counts it saw."""

    def __init__(self) -> None:
        self.seen: list[HeldWindow] = []
        self.refused: list[Forgotten] = []

    def refuse(self, forgotten: Sequence[Forgotten]) -> Refused:
        self.refused.extend(forgotten)
        return Refused({}, [])

    def __call__(self, metric: MetricSpec, window: HeldWindow) -> Valued:
        self.seen.append(window)
        start = utc_from_ns(window.window_start_ns)
        return Valued([WindowResult("*", start, utc_from_ns(window.window_start_ns + HOUR),
                                    len(window.predictions),
                                    {"labels": float(len(window.labels))})])


def state(partition: int, offset: int, stored_offset: int = -1) -> PartitionState:
    partition_state = PartitionState(SOURCE, partition, Engine([]))
    partition_state.checkpoint.offset = stored_offset
    partition_state.offset, partition_state.moved = offset, True
    return partition_state


def prediction(offset: int, pid: str, hour: int, event: int = 0) -> HeldPrediction:
    t = T0 + hour * HOUR + 60 * 10**9
    return HeldPrediction(0, offset, event, pid, t, T0 + hour * HOUR, T0 + (hour + 1) * HOUR,
                          json.dumps({"prediction_id": pid}))


def label(offset: int, pid: str, hour: int, event: int = 0) -> HeldLabel:
    return HeldLabel(1, offset, event, pid, T0 + hour * HOUR, '{"clicked":true}')


def store(held_store: SqlHeldStore, metric: MetricSpec, recorder: Recorder,
          states: list[PartitionState], predictions: Sequence[HeldPrediction] = (),
          labels: Sequence[HeldLabel] = ()) -> dict[str, int]:
    revised = held_store.store_held(states, [MetricHeld(metric, 1, list(predictions),
                                                        list(labels))],
                                    recorder, stage="streaming", counts={},
                                    samples=[], refuse=recorder.refuse)
    for s in states:
        s.stored()
    return revised


def close(held_store: SqlHeldStore, metric: MetricSpec, recorder: Recorder, until_hour: int,
          purge_hour: int | None = None) -> dict[str, list[WindowResult]]:
    seen: list[JoinMarks] = []

    def due(marks: JoinMarks) -> dict[str, JoinCutoff]:
        seen.append(marks)
        purge = None if purge_hour is None else utc_from_ns(T0 + purge_hour * HOUR)
        return {metric.name: JoinCutoff(metric, 1, utc_from_ns(T0 + until_hour * HOUR), purge,
                                        None if purge_hour is None
                                        else T0 + purge_hour * HOUR)}

    closed = held_store.close([SOURCE], {metric.name: (metric, 1)}, due, recorder, "streaming")
    assert seen, "due is asked with the marks"
    return closed


def counts(held_store: SqlHeldStore, metric: MetricSpec) -> tuple[int, int]:
    with held_store.database.connect() as conn:
        return held_counts(conn, metric.name, 1)


def test_held_rows_read_back_as_the_events_they_were(metric: MetricSpec) -> None:
    schema = metric.stream.schema
    events, _ = schema.validate(predictions(n=200))
    times, payloads = event_payloads(events, schema)
    back = held_frame(schema, list(zip(times.tolist(), payloads, strict=True)))
    pd.testing.assert_frame_equal(back, events, check_exact=True)


def test_a_window_is_valued_when_it_closes_and_again_when_its_label_lands(
        held_store: SqlHeldStore, metric: MetricSpec) -> None:
    recorder = Recorder()
    assert store(held_store, metric, recorder, [state(0, 0)],
                 [prediction(0, "a", 0), prediction(0, "b", 1, event=1)]) == {}
    assert store(held_store, metric, recorder, [state(1, 0)], labels=[label(0, "a", 3)]) == {}
    assert recorder.seen == []  # open windows are not valued
    closed = close(held_store, metric, recorder, until_hour=1)
    assert [(w.window_start_ns, len(w.predictions), len(w.labels)) for w in recorder.seen] == [
        (T0, 1, 1)]
    assert [r.values for r in closed[metric.name]] == [{"labels": 1.0}]
    # a label for a closed window revises it in the store that holds it...
    assert store(held_store, metric, recorder, [state(1, 1, 0)], labels=[label(1, "a", 4)]
                 ) == {metric.name: 1}
    assert len(recorder.seen[-1].labels) == 2
    # ...a label for an id of no closed window revises nothing
    assert store(held_store, metric, recorder, [state(1, 2, 1)],
                 labels=[label(2, "b", 2), label(2, "zz", 2, event=1)]) == {}
    # and a late prediction for a closed window revises it too
    assert store(held_store, metric, recorder, [state(0, 1, 0)], [prediction(1, "c", 0)]
                 ) == {metric.name: 1}
    assert len(recorder.seen[-1].predictions) == 2
    assert counts(held_store, metric) == (3, 4)


def test_a_purge_forgets_the_windows_past_the_horizon_and_their_labels(
        held_store: SqlHeldStore, metric: MetricSpec) -> None:
    recorder = Recorder()
    store(held_store, metric, recorder, [state(0, 0)],
          [prediction(0, "a", 0), prediction(0, "b", 2, event=1)])
    store(held_store, metric, recorder, [state(1, 0)],
          labels=[label(0, "a", 0), label(0, "b", 3, event=1)])
    close(held_store, metric, recorder, until_hour=3, purge_hour=1)
    assert counts(held_store, metric) == (1, 1)  # window 0 and the label stamped before 1h
    # a label for a purged window's id revises nothing (its predictions are gone): it is
    # refused, not held
    assert store(held_store, metric, recorder, [state(1, 1, 0)], labels=[label(1, "a", 0)]
                 ) == {}
    assert [(f.labels, f.predictions) for f in recorder.refused] == [([label(1, "a", 0)], [])]
    assert counts(held_store, metric) == (1, 1)


def test_rows_that_can_no_longer_be_counted_are_refused_not_held(
        held_store: SqlHeldStore, metric: MetricSpec) -> None:
    """After a purge through hour 2 (horizon 1 day, early 10 minutes): a prediction of a
    forgotten window is refused, one of a held window held; a label is refused when every
    window it could join is forgotten, or when a forgotten prediction had it as a
    candidate, and held otherwise (its prediction held, or never seen)."""
    recorder = Recorder()
    store(held_store, metric, recorder, [state(0, 0)],
          [prediction(0, "a", 0), prediction(0, "b", 1, event=1),
           prediction(0, "c", 2, event=2)])
    close(held_store, metric, recorder, until_hour=3, purge_hour=2)
    assert counts(held_store, metric) == (1, 0)
    day = 24
    late = [label(0, "a", 1),            # every window it could join is forgotten
            label(0, "b", day, event=1),  # a candidate of forgotten prediction b
            label(0, "c", day, event=2),  # its prediction c is held
            label(0, "zz", day, event=3),  # no prediction of its id (yet)
            label(0, "a", day + 2, event=4)]  # stamped past a's horizon: no candidate
    store(held_store, metric, recorder, [state(1, 0)],
          [prediction(1, "d", 1), prediction(1, "e", 2, event=1)], late)
    (refused,) = recorder.refused
    assert refused.predictions == [prediction(1, "d", 1)]
    assert refused.labels == late[:2]
    assert refused.purged_through == utc_from_ns(T0 + 2 * HOUR)
    assert counts(held_store, metric) == (2, 3)


def test_rows_are_held_once_and_a_stale_checkpoint_stores_nothing(
        held_store: SqlHeldStore, metric: MetricSpec) -> None:
    recorder = Recorder()
    store(held_store, metric, recorder, [state(0, 0)], [prediction(0, "a", 0)])
    with pytest.raises(CheckpointConflict):  # loaded before offset 0 was stored
        store(held_store, metric, recorder, [state(0, 1)], [prediction(0, "a", 0),
                                                            prediction(1, "b", 0)])
    assert counts(held_store, metric) == (1, 0)
    store(held_store, metric, recorder, [state(0, 1, 0)], [prediction(0, "a", 0),
                                                           prediction(1, "b", 0)])
    assert counts(held_store, metric) == (2, 0)


def test_a_forgotten_prediction_is_remembered_once_and_not_for_ever(
        held_store: SqlHeldStore, metric: MetricSpec) -> None:
    """A topic recreated from offset 0 reuses the keys of rows forgotten before: forgetting
    them again is no conflict. And what is remembered goes once no label that could join
    it can be held (stamped before the purge less early less the horizon)."""
    recorder = Recorder()
    store(held_store, metric, recorder, [state(0, 0)], [prediction(0, "a", 0)])
    close(held_store, metric, recorder, until_hour=1, purge_hour=1)
    store(held_store, metric, recorder, [state(0, 0, 0)], [prediction(0, "a", 1)])
    close(held_store, metric, recorder, until_hour=2, purge_hour=2)
    assert forgotten(held_store) == [("a", T0 + 60 * 10**9)]  # the first, kept
    close(held_store, metric, recorder, until_hour=27, purge_hour=27)
    assert forgotten(held_store) == []  # 27h - 10 min - 1 day is past both


def forgotten(held_store: SqlHeldStore) -> list[tuple[str, int]]:
    with held_store.database.connect() as conn:
        return [tuple(row) for row in conn.execute(text(
            "SELECT prediction_id, event_time FROM label_forgotten_predictions "
            "ORDER BY event_time"))]
