"""The join of predictions to labels (monitor.label_join): which label each prediction gets,
checked against a loop over the predictions, and that nothing about the order or the
repetition of labels changes it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metrics.labelled import LABELLED
from monitor.label_join import JoinRule, join_labels
from monitor.schema import Schema
from tests.label_data import (
    EARLY,
    HORIZON,
    LABEL_SCHEMA,
    PREDICTION_SCHEMA,
    labels_for,
    predictions,
    reference_join,
)

RULE = JoinRule("prediction_id", "ts", "prediction_id", "ts", ("clicked",),
                horizon_ns=HORIZON.value, early_ns=EARLY.value)
T = pd.Timestamp("2026-03-02T10:00:00Z")


def validated(frame: pd.DataFrame, schema: dict[str, str]) -> pd.DataFrame:
    clean, _ = Schema.parse(schema).validate(frame)
    return clean


def joined_clicks(preds: pd.DataFrame, labels: pd.DataFrame) -> list[object]:
    events = join_labels(preds, validated(labels, LABEL_SCHEMA), RULE).events
    return [None if pd.isna(v) else bool(v) for v in events["clicked"]]


def one(prediction_id: str = "a", at: pd.Timestamp = T) -> pd.DataFrame:
    return validated(pd.DataFrame({"ts": [at], "prediction_id": [prediction_id],
                                   "score": [0.5], "predicted": [True], "device": ["ios"]}),
                     PREDICTION_SCHEMA)


def labels(*rows: tuple[pd.Timedelta, str, bool]) -> pd.DataFrame:
    return pd.DataFrame([{"ts": T + delay, "prediction_id": pid, "clicked": clicked}
                         for delay, pid, clicked in rows])


def test_every_prediction_gets_the_label_the_rule_gives_it() -> None:
    preds = validated(predictions(), PREDICTION_SCHEMA)
    raw = labels_for(preds)
    expected = reference_join(preds, raw)["clicked"].tolist()
    got = joined_clicks(preds, raw)
    assert got == expected
    assert 0.5 < np.mean([v is not None for v in got]) < 0.9  # the data holds both kinds


def test_shuffled_and_repeated_labels_give_the_same_rows() -> None:
    preds = validated(predictions(seed=3, n=800), PREDICTION_SCHEMA)
    raw = labels_for(preds, seed=4)
    first = join_labels(preds, validated(raw, LABEL_SCHEMA), RULE).events
    for seed in range(3):
        shuffled = raw.sample(frac=1.0, random_state=seed)
        repeated = pd.concat([shuffled, shuffled.iloc[: len(raw) // 3]])  # redelivered
        again = join_labels(preds, validated(repeated, LABEL_SCHEMA), RULE).events
        pd.testing.assert_frame_equal(again, first)


def test_the_earliest_label_wins_whatever_its_value_or_order() -> None:
    later, earlier = (pd.Timedelta("2h"), "a", False), (pd.Timedelta("1h"), "a", True)
    assert joined_clicks(one(), labels(later, earlier)) == [True]
    assert joined_clicks(one(), labels(earlier, later)) == [True]


def test_a_tie_in_time_goes_to_the_label_whose_json_sorts_first() -> None:
    yes, no = (pd.Timedelta("1h"), "a", True), (pd.Timedelta("1h"), "a", False)
    assert joined_clicks(one(), labels(yes, no)) == [False]  # {"clicked":false,...} first
    assert joined_clicks(one(), labels(no, yes)) == [False]


def test_early_labels_join_within_early_and_late_ones_within_the_horizon() -> None:
    cases = {
        -EARLY: True, -EARLY - pd.Timedelta("1ms"): None,  # stamped before the prediction
        HORIZON: True, HORIZON + pd.Timedelta("1ms"): None,  # the horizon is inclusive
        pd.Timedelta(0): True,
    }
    for delay, expected in cases.items():
        got = joined_clicks(one(), labels((delay, "a", True)))
        assert got == [expected], delay


def test_what_became_of_each_label_is_counted() -> None:
    raw = labels((pd.Timedelta("1h"), "a", True), (pd.Timedelta("2h"), "a", False),
                 (pd.Timedelta("1h"), "zzz", True), (HORIZON * 2, "a", True),
                 (pd.Timedelta("1h"), "", True), (pd.Timedelta("1h"), "  ", True))
    joined = join_labels(one(), validated(raw, LABEL_SCHEMA), RULE)
    counts = joined.counts
    assert (counts.offered, counts.matched, counts.duplicates, counts.unmatched,
            counts.rejected) == (6, 1, 1, 2, 2)
    assert joined.rejects["reason"].tolist() == ["label id 'prediction_id' is empty"] * 2
    assert joined.rejects["row"].tolist() == [4, 5]


def test_predictions_keep_their_order_columns_and_gain_the_mark() -> None:
    preds = validated(predictions(seed=5, n=50), PREDICTION_SCHEMA)
    preds.loc[3, "prediction_id"] = None  # a prediction without an id: never labelled
    raw = pd.DataFrame({"ts": preds["ts"], "prediction_id": preds["prediction_id"].fillna("p3"),
                        "clicked": True})
    events = join_labels(preds, validated(raw, LABEL_SCHEMA), RULE).events
    pd.testing.assert_frame_equal(events[preds.columns], preds)
    assert events[LABELLED].tolist() == [i != 3 for i in range(50)]
    assert str(events["clicked"].dtype) == "boolean"


@pytest.mark.parametrize("id_type", ["int", "str"])
def test_ids_of_either_joinable_type(id_type: str) -> None:
    rule = JoinRule("pid", "ts", "label_of", "at", ("ok",), HORIZON.value, 0)
    preds = validated(pd.DataFrame({"ts": [T, T], "pid": [1, 2]}), {"pid": id_type})
    raw = pd.DataFrame({"at": [T, T], "label_of": [2, 3], "ok": [True, False]})
    clean, _ = Schema.parse({"label_of": id_type, "ok": "bool"}, time="at").validate(raw)
    events = join_labels(preds, clean, rule).events
    assert events[LABELLED].tolist() == [False, True]
