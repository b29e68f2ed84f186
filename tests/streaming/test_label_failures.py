"""A per-event function of a label-joined metric that fails on some events' data in the
streaming label join: those events leave that metric only and go to dead letters with a
reason naming it — as in the plain streaming path — instead of stopping the worker; the
other events' values are research's."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pandas as pd
import pytest
from sqlalchemy import text

import metrics
from monitor import Labels, Monitor
from monitor.research import evaluate
from monitor.segments import segment_label
from monitor.stage_switch import EPOCH
from monitor.storage.store import SqlStore
from monitor.targets import batch_targets
from streaming.codec import encode_events, event_dicts
from streaming.label_processor import LABELS, PREDICTIONS, LabelJoinProcessor
from streaming.label_store import SqlHeldStore
from streaming.messages import RawMessage
from streaming.processor import StreamSettings
from tests.label_data import LABEL_SCHEMA, PREDICTION_SCHEMA, labels_for, predictions
from tests.streaming.clock import Clock

TOPICS = ("fragile-predictions", "fragile-outcomes")
RAISES = 0.013  # a score the fragile function cannot judge (rounded: exact in JSON)


def fragile_app() -> Monitor:
    mon = Monitor("fragile-labels")
    mon.stream("home", schema=PREDICTION_SCHEMA, topic=TOPICS[0])
    mon.stream("outcomes", schema=LABEL_SCHEMA, topic=TOPICS[1])
    source = Labels("outcomes", on="prediction_id", horizon="1d", early="10m")

    @mon.metric("sure_misses", "home", window="1h", labels=source,
                aggregate=metrics.assertion(id="prediction_id", keep=("score",), k=5))
    def sure_misses(events: pd.DataFrame) -> pd.Series:
        if (events["score"] == RAISES).any():
            raise ValueError("cannot judge this score")
        return (events["score"] > 0.9) & (events["clicked"] == False)  # noqa: E712

    mon.metric("accuracy", "home", metrics.accuracy("clicked", "predicted"), window="1h",
               labels=source)
    return mon


@pytest.fixture
def store(results_url: str) -> Iterator[SqlStore]:
    with SqlStore.open(results_url) as store:
        yield store


def test_failed_events_are_dead_letters_once_and_the_rest_is_researchs(
        store: SqlStore) -> None:
    app = fragile_app()
    preds = predictions(n=600)
    preds["score"] = preds["score"].round(6)
    failing = [3, 250, 251]  # two in one window, one in another
    preds.loc[failing, "score"] = RAISES
    labels = labels_for(preds)
    for spec in app.metrics.values():
        version = store.register_metric(spec).version
        for to_stage in ("batch", "streaming"):
            store.record_stage_change(spec.name, version, to_stage, by="test", reason="t",
                                      effective_from=EPOCH)
    targets = batch_targets(app, store, stages=("streaming",))
    clock = Clock()
    stage = LabelJoinProcessor(SqlHeldStore(store.database), app.streams["home"],
                               app.streams["outcomes"], 1, 1, targets,
                               StreamSettings(idle_timeout_s=5),
                               clock=lambda: clock.monotonic, wall_clock=lambda: clock.wall)
    stage.assign(PREDICTIONS, [0])
    stage.assign(LABELS, [0])
    # predictions, then their labels: every window is valued when it closes and again
    # when it is forgotten (its final values), in one transaction
    for side, frame in ((PREDICTIONS, preds), (LABELS, labels)):
        dicts = list(event_dicts(frame))
        stage.handle(side, [RawMessage(0, at // 50, encode_events(dicts[at:at + 50]))
                            for at in range(0, len(dicts), 50)])
    clock.later(60)  # every partition idle: its mark goes to the wall clock, far ahead
    stage.tick()
    stage.tick()  # nothing left to value: nothing is written again

    with store.database.connect() as conn:
        letters = conn.execute(text(
            "SELECT reason, payload FROM dead_letters WHERE source = "
            "'stream:fragile-predictions'")).all()
        counted = conn.execute(text(
            "SELECT segment, value FROM metric_values WHERE metric = "
            "'home.label_join.dead_letters'")).all()
    # one letter per failing prediction, however often its window was valued
    assert len(letters) == len(failing)
    for reason, _ in letters:
        assert reason.startswith("per-event function of metric 'sure_misses' failed: ")
        assert reason.endswith("raised ValueError: cannot judge this score"), reason
    assert sorted(json.loads(payload)["prediction_id"] for _, payload in letters) == sorted(
        preds.loc[failing, "prediction_id"])
    assert dict(counted) == {
        "*": len(failing),
        segment_label({"reason": "per-event function of metric 'sure_misses' failed"}):
            len(failing)}
    # the metric leaves those events out, as research does; the other metric keeps them
    for spec in app.metrics.values():
        expected = evaluate(spec, preds, labels=labels).drop(columns="stage")
        got = store.read_values(metric=spec.name, stage="streaming", limit=None)
        pd.testing.assert_frame_equal(got.drop(columns="stage").reset_index(drop=True),
                                      expected, check_exact=True, check_dtype=False)
    accuracy = store.read_values(metric="accuracy", stage="streaming", limit=None)
    assert accuracy.query("field == 'label_coverage'")["count"].sum() == len(preds)
