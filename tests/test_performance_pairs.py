"""Pairing an estimate of performance with the label-joined metrics that realize it, from
definitions registered on a real Monitor (no database)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

import metrics
from metrics.drift import ReferenceProfile
from monitor import Labels, Monitor
from monitor.performance_pairs import PerformancePair, declarable, performance_pairs
from tests.test_estimation import simulate

Specs = Mapping[str, Mapping[str, Any]]


def app() -> Monitor:
    profile = ReferenceProfile.fit(simulate(np.random.default_rng(3), 5_000), ["score"],
                                   name="training", calibrations=[("score", "label")])
    mon = Monitor("pairs")
    schema = {"prediction_id": "str", "score": "float", "other_score": "float",
              "predicted": "bool", "device": "str"}
    mon.stream("home", schema=schema)
    mon.stream("search", schema=schema)
    mon.stream("outcomes", schema={"prediction_id": "str", "label": "bool", "bought": "bool"})
    labels = Labels("outcomes", on="prediction_id", horizon="1d")
    mon.metric("estimate", "home", metrics.estimated_performance("score", "label", profile),
               window="1h", segment_by=["device"])
    mon.metric("auc", "home", metrics.auc("label", "score"), window="60m", labels=labels)
    mon.metric("accuracy", "home", metrics.accuracy("label", "predicted"), window="1h",
               labels=labels)
    mon.metric("recall", "home", metrics.recall("label", "predicted"), window="1h",
               labels=labels)
    # near misses: none realizes the estimate
    mon.metric("auc_other_score", "home", metrics.auc("label", "other_score"), window="1h",
               labels=labels)
    mon.metric("auc_other_label", "home", metrics.auc("bought", "score"), window="1h",
               labels=labels)
    mon.metric("auc_daily", "home", metrics.auc("label", "score"), window="1d", labels=labels)
    mon.metric("auc_search", "search", metrics.auc("label", "score"), window="1h",
               labels=labels)
    mon.metric("mean_score", "home", metrics.mean("score"), window="1h")
    return mon


@pytest.fixture(scope="module")
def specs() -> Specs:
    return {name: spec.to_dict() for name, spec in app().metrics.items()}


def test_auc_on_the_same_stream_label_score_and_window_pairs_by_itself(specs: Specs) -> None:
    assert performance_pairs(specs) == [
        PerformancePair("estimate", "estimated_roc_auc", "auc", "auc", declared=False)]
    assert performance_pairs(specs)[0].sampling_error_field == \
        "estimated_roc_auc_sampling_error"


def test_confusion_metrics_pair_only_when_declared(specs: Specs) -> None:
    assert declarable(specs, "estimate") == ["accuracy", "recall"]
    pairs = performance_pairs(specs, declared={"recall": "estimate", "accuracy": "estimate",
                                               "auc": "estimate"})
    assert [(p.estimated_field, p.realized, p.realized_field, p.declared) for p in pairs] == [
        ("estimated_roc_auc", "auc", "auc", False),
        ("estimated_accuracy", "accuracy", "accuracy", True),
        ("estimated_recall", "recall", "recall", True)]
    # the estimate's fields named by a pair are fields it stores
    fields = set(app().metrics["estimate"].aggregate.fields())
    assert {p.estimated_field for p in pairs} | {p.sampling_error_field for p in pairs} <= fields


@pytest.mark.parametrize(("realized", "estimate", "reason"), [
    ("auc_other_score", "estimate", "AUC of score 'other_score'"),
    ("auc_other_label", "estimate", "label column 'label'"),
    ("auc_daily", "estimate", "in 1h windows"),
    ("auc_search", "estimate", "of stream 'home'"),
    ("mean_score", "estimate", "must be joined to labels"),
    ("accuracy", "auc", "'auc' is not a metrics.estimated_performance metric"),
    ("nope", "estimate", "no metric named 'nope'"),
])
def test_a_declaration_that_cannot_hold_names_both_metrics_and_why(
        specs: Specs, realized: str, estimate: str, reason: str) -> None:
    with pytest.raises(ValueError) as raised:
        performance_pairs(specs, declared={realized: estimate})
    assert f"{realized!r} declared to realize {estimate!r}" in str(raised.value)
    assert reason in str(raised.value)


def test_stored_definitions_pair_as_registered_ones(specs: Specs) -> None:
    """The catalog stores to_dict() as JSON: a round trip pairs the same."""
    stored = {name: json.loads(json.dumps(spec)) for name, spec in specs.items()}
    assert performance_pairs(stored) == performance_pairs(specs)
    assert declarable({"mean_score": specs["mean_score"]}, "mean_score") == []
    assert declarable(specs, "unknown") == []
