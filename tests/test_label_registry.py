"""Declaring a metric's labels: what registration accepts, and errors that name the metric
and the fix."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

import metrics
from metrics.labelled import Labelled
from monitor import DefinitionError, Labels, Monitor, Threshold


def app(**outcomes: str) -> Monitor:
    mon = Monitor()
    mon.stream("home", schema={"prediction_id": "str", "score": "float", "device": "str",
                               "request": "str"})
    mon.stream("outcomes", schema=outcomes or {"prediction_id": "str", "clicked": "bool"})
    return mon


def register(mon: Monitor, aggregate: Any = None, **options: Any) -> Any:
    labels = options.pop("labels", Labels("outcomes", on="prediction_id"))
    return mon.metric("click_auc", "home", aggregate or metrics.auc("clicked", "score"),
                      labels=labels, **options)


def test_a_labelled_metric_reads_labels_and_carries_coverage() -> None:
    spec = register(app(), alerts=[Threshold(below=0.6)])
    assert isinstance(spec.aggregate, Labelled)
    assert spec.fields == ("auc", "label_coverage", "labelled", "predictions")
    assert [rule.field for rule in spec.alerts] == ["auc"]  # the metric's own field
    assert spec.labels.rule("ts").label_columns == ("clicked",)
    assert (spec.labels.horizon, spec.labels.early, spec.labels.mature_at) == ("7d", "7d", 1.0)


def test_on_a_pair_of_columns_of_a_stream_given_as_declared() -> None:
    mon = app(request_id="str", clicked="bool")
    outcomes = mon.streams["outcomes"]
    spec = register(mon, labels=Labels(outcomes, on=("prediction_id", "request_id")))
    assert (spec.labels.prediction_id, spec.labels.label_id) == ("prediction_id", "request_id")


@pytest.mark.parametrize(("labels", "outcomes", "aggregate", "options", "problem"), [
    (Labels("clicks", on="prediction_id"), {}, None, {},
     "unknown label stream 'clicks'; declare it with mon.stream() first (known: home, "
     "outcomes)"),
    (Labels("outcomes", on="request"), {}, None, {},
     "id column 'request' is not in the schema of stream 'outcomes'"),
    (Labels("outcomes", on=("pid", "prediction_id")), {}, None, {},
     "id column 'pid' is not in the schema of stream 'home'"),
    (Labels("outcomes", on="prediction_id"), {"prediction_id": "int", "clicked": "bool"},
     None, {}, "id column 'prediction_id' is str in stream 'home' but 'prediction_id' is int"),
    (Labels("outcomes", on="prediction_id"), {}, metrics.auc("converted", "score"), {},
     "unknown column 'converted': stream 'home' has ts, prediction_id, score, device, "
     "request and label stream 'outcomes' adds clicked"),
    (Labels("outcomes", on="prediction_id"),
     {"prediction_id": "str", "clicked": "bool", "device": "str"}, None, {},
     "label column(s) 'device' of stream 'outcomes' have the same name as a column of "
     "stream 'home'; rename them"),
    (Labels("outcomes", on="prediction_id", horizon="soon"), {}, None, {},
     "labels horizon: bad duration 'soon'"),
    (Labels("outcomes", on="prediction_id", horizon="0s"), {}, None, {},
     "labels horizon '0s' must be longer than zero"),
    (Labels("outcomes", on="prediction_id", mature_at=1.5), {}, None, {},
     "labels mature_at=1.5: give the share"),
    (Labels("outcomes", on=""), {}, None, {}, "on= must name the id column"),
    (Labels("outcomes", on="prediction_id"), {}, metrics.mean("score"), {},
     "joins labels from stream 'outcomes' but its mean reads none of its columns (clicked)"),
    (Labels("outcomes", on="prediction_id"), {}, None, {"segment_by": ["clicked"]},
     "segment column 'clicked' comes from the label stream"),
    ("outcomes", {}, None, {}, "labels= takes monitor.Labels(stream, on=..., horizon=...)"),
    (Labels("home", on="prediction_id"), {}, None, {},
     "labels come from another stream than the predictions ('home')"),
    (Labels("outcomes", on="prediction_id"), {}, metrics.rate("clicked"),
     {"alerts": [Threshold(below=0.2, confidence=0.99)]},
     "confidence= is not supported on a metric that joins labels yet"),
])
def test_bad_declarations_fail_naming_the_metric(labels: Any, outcomes: dict[str, str],
                                                 aggregate: Any, options: dict[str, Any],
                                                 problem: str) -> None:
    mon = app(**outcomes)
    with pytest.raises(DefinitionError) as caught:
        register(mon, aggregate, labels=labels, **options)
    assert str(caught.value).startswith("metric 'click_auc': ")
    assert problem in str(caught.value)
    assert "click_auc" not in mon.metrics


def test_a_per_event_function_sees_the_label_columns() -> None:
    mon = app()

    @mon.metric("click_error", "home", aggregate=metrics.mean(),
                labels=Labels("outcomes", on="prediction_id", horizon="1h"))
    def click_error(events: pd.DataFrame) -> pd.Series:
        return (events["clicked"].astype("Float64") - events["score"]).abs()

    assert mon.get("click_error").fields == ("mean", "label_coverage", "labelled",
                                             "predictions")


def test_the_label_source_is_part_of_the_identity_but_mature_at_is_not() -> None:
    ids = []
    for labels in (Labels("outcomes", on="prediction_id", horizon="7d"),
                   Labels("outcomes", on="prediction_id", horizon="7d", mature_at=0.5),
                   Labels("outcomes", on="prediction_id", horizon="1d")):
        ids.append(register(app(), labels=labels).id)
    assert ids[0] == ids[1] != ids[2]
    plain = app().metric("click_auc", "home", metrics.mean("score"))
    assert "labels" not in plain.identity() and "labels" not in plain.to_dict()
