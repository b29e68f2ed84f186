"""Research on a metric joined to labels: values against numpy/scipy on a reference join,
the same bits whatever the labels' order, labels from a file, and the backtest judging
mature windows only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import metrics
from examples.music_home_events import write_events
from monitor import Labels
from monitor.errors import MetricComputeError
from monitor.research import backtest, evaluate, run
from tests.label_data import (
    END,
    HORIZON,
    HOURS,
    START,
    label_app,
    labels_for,
    predictions,
    reference_join,
    reference_values,
)


@pytest.fixture(scope="module")
def preds() -> pd.DataFrame:
    return predictions()


@pytest.fixture(scope="module")
def labels(preds: pd.DataFrame) -> pd.DataFrame:
    return labels_for(preds)


def wide(values: pd.DataFrame) -> pd.DataFrame:
    return values.pivot_table(index=["segment", "window_start"], columns="field",
                              values="value").reset_index()


def test_values_match_numpy_and_scipy_on_a_reference_join(preds: pd.DataFrame,
                                                         labels: pd.DataFrame) -> None:
    app = label_app()
    expected = reference_values(reference_join(preds, labels)).sort_values(
        ["segment", "window_start"]).reset_index(drop=True)
    auc = wide(evaluate(app.get("click_auc"), preds, labels=labels))
    accuracy = wide(evaluate(app.get("click_accuracy"), preds, labels=labels))
    assert len(auc) == HOURS * 3 and len(accuracy) == HOURS
    assert auc["window_start"].tolist() == expected["window_start"].tolist()
    np.testing.assert_allclose(auc["auc"], expected["auc"], rtol=1e-12)
    for field in ("label_coverage", "labelled", "predictions"):
        assert auc[field].tolist() == expected[field].tolist(), field
    overall = expected[expected["segment"] == "*"].reset_index(drop=True)
    assert accuracy["accuracy"].tolist() == overall["accuracy"].tolist()  # bit for bit
    assert 0.6 < overall["label_coverage"].min() < overall["label_coverage"].max() < 0.85


def test_shuffled_or_redelivered_labels_give_identical_values(preds: pd.DataFrame,
                                                              labels: pd.DataFrame) -> None:
    metric = label_app().get("click_auc")
    first = evaluate(metric, preds, labels=labels)
    again = evaluate(metric, preds.sample(frac=1.0, random_state=1),
                     labels=pd.concat([labels.sample(frac=1.0, random_state=2),
                                       labels.iloc[:500]], ignore_index=True))
    pd.testing.assert_frame_equal(again, first, check_exact=True)


def test_labels_from_a_file_and_what_became_of_them(preds: pd.DataFrame, labels: pd.DataFrame,
                                                   tmp_path: Path) -> None:
    metric = label_app().get("click_accuracy")
    path = write_events(labels, tmp_path / "outcomes.jsonl")
    result = run(metric, preds, labels=str(path))
    pd.testing.assert_frame_equal(result.values, evaluate(metric, preds, labels=labels),
                                  check_exact=True)
    counts = result.label_counts
    assert counts is not None and result.label_rejects is not None
    assert counts.offered == len(labels)
    assert counts.matched + counts.duplicates + counts.unmatched + counts.rejected \
        == counts.offered
    assert counts.unmatched >= 60  # the unknown ids, and labels outside the horizon
    assert sorted(result.label_rejects["reason"]) == [
        "field 'clicked' is not a boolean", "field 'prediction_id' is null",
        "label id 'prediction_id' is empty"]
    # the end of the data: the latest label, hours after the last prediction
    assert result.as_of is not None and result.as_of > END
    maturity = result.maturity()
    assert len(maturity) == HOURS and maturity["mature"].all()  # every horizon passed
    early = run(metric, preds, labels=labels, as_of=END).maturity()
    assert not early["mature"].any()  # coverage < 0.9 and no horizon passed yet


def test_a_metric_with_labels_needs_them_and_one_without_takes_none(
        preds: pd.DataFrame, labels: pd.DataFrame) -> None:
    app = label_app()
    with pytest.raises(MetricComputeError, match=r"click_auc.*'outcomes'.*pass its label"):
        evaluate(app.get("click_auc"), preds)
    plain = app.metric("scores", "home", metrics.mean("score"))
    with pytest.raises(MetricComputeError, match=r"'scores': has no label source"):
        evaluate(plain, preds, labels=labels)


def test_the_backtest_waits_for_mature_windows(preds: pd.DataFrame,
                                               labels: pd.DataFrame) -> None:
    """Every window's AUC is below the rule's 0.55 once the scores are reversed; labels
    trickle in, so early on coverage is low: as of an hour after the data, no window is
    mature (coverage < 0.9 and horizon open) and nothing fires; once every horizon has
    passed, every window fires."""
    metric = label_app(mature_at=0.9).get("click_auc")
    reversed_scores = preds.assign(score=1.0 - preds["score"])
    soon = backtest(metric, reversed_scores, labels=labels, as_of=END + pd.Timedelta("1h"))
    assert soon.empty
    later = backtest(metric, reversed_scores, labels=labels, as_of=END + HORIZON)
    assert set(later["segment"]) == {"*", "device=ios", "device=web"}
    assert later["fired_window_start"].min() == START
    # with a low bar, a window is mature as soon as enough of its labels are in
    eager = label_app(prefix="eager_", mature_at=0.05).get("eager_click_auc")
    early = backtest(eager, reversed_scores, labels=labels, as_of=END + pd.Timedelta("1h"))
    assert not early.empty


def test_a_per_event_function_reads_the_joined_label(preds: pd.DataFrame,
                                                     labels: pd.DataFrame) -> None:
    app = label_app()

    @app.metric("click_error", "home", aggregate=metrics.mean(), window="1h",
                labels=Labels("outcomes", on="prediction_id", horizon="1d", early="10m"))
    def click_error(events: pd.DataFrame) -> pd.Series:
        return (events["clicked"].astype("Float64") - events["score"]).abs()

    got = wide(evaluate(app.get("click_error"), preds, labels=labels))
    joined = reference_join(preds, labels)
    known = joined[joined["clicked"].notna()]
    error = (known["clicked"].astype(float) - known["score"]).abs()
    expected = error.groupby(known["ts"].dt.floor("1h")).mean()
    np.testing.assert_allclose(got["mean"], expected.to_numpy(), rtol=1e-12)
    assert got["labelled"].tolist() == known.groupby(known["ts"].dt.floor("1h")).size().tolist()
