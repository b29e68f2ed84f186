"""Classification metrics equal numpy/scipy references on the same data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import mannwhitneyu

from metrics.base import Aggregate
from metrics.classification import (
    AUCState,
    accuracy,
    auc,
    precision,
    recall,
    score_bins,
)
from tests.builtins import labelled


def chunked_value(aggregate: Aggregate, frame: pd.DataFrame, chunk: int = 997) -> dict:
    state = aggregate.new_state()
    for start in range(0, len(frame), chunk):
        part = aggregate.new_state()
        part.update(frame.iloc[start : start + chunk])
        state.merge(part)
    return aggregate.value(state)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return labelled(np.random.default_rng(11), 20_000)


def test_confusion_metrics_equal_numpy(frame: pd.DataFrame) -> None:
    known = frame["label"].notna() & frame["prediction"].notna()
    y = frame.loc[known, "label"].to_numpy(dtype=bool)
    p = frame.loc[known, "prediction"].to_numpy(dtype=int) == 1
    assert chunked_value(accuracy("label", "prediction"), frame) == {
        "accuracy": np.mean(y == p)}
    assert chunked_value(precision("label", "prediction"), frame) == {
        "precision": np.sum(y & p) / np.sum(p)}
    assert chunked_value(recall("label", "prediction"), frame) == {
        "recall": np.sum(y & p) / np.sum(y)}


def test_confusion_accepts_bool_int_float_and_object_columns() -> None:
    label = [True, False, True, None]
    for prediction in ([1, 0, 0, 1], [1.0, 0.0, 0.0, 1.0], [True, False, False, True],
                       pd.array([1, 0, 0, None], dtype="Int64")):
        agg = accuracy("y", "p")
        state = agg.new_state()
        state.update(pd.DataFrame({"y": pd.Series(label, dtype=object), "p": prediction}))
        assert agg.value(state) == {"accuracy": 2 / 3}


@pytest.mark.parametrize("bad", [[1, 2, 0], ["yes", "no", "yes"], [0.5, 1.0, 0.0]])
def test_non_binary_labels_are_refused_naming_the_column(bad: list) -> None:
    state = recall("y", "p").new_state()
    with pytest.raises(ValueError, match="column 'y' must hold booleans or 0/1"):
        state.update(pd.DataFrame({"y": bad, "p": [1, 0, 1]}))


def test_no_predicted_positives_gives_nan_precision() -> None:
    agg = precision("y", "p")
    state = agg.new_state()
    state.update(pd.DataFrame({"y": [True, False], "p": [False, False]}))
    assert math.isnan(agg.value(state)["precision"])


# -- AUC ------------------------------------------------------------------------------


def known_rows(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    known = frame["label"].notna() & frame["score"].notna()
    return (frame.loc[known, "label"].to_numpy(dtype=bool),
            frame.loc[known, "score"].to_numpy(dtype=float))


def reference_auc(y: np.ndarray, s: np.ndarray) -> float:
    statistic = mannwhitneyu(s[y], s[~y], alternative="two-sided").statistic
    return float(statistic / (np.sum(y) * np.sum(~y)))


@pytest.mark.parametrize("bins", [2, 10, 1000, 100_000])
def test_auc_equals_scipy_exactly_on_binned_scores(frame: pd.DataFrame, bins: int) -> None:
    y, s = known_rows(frame)
    expected = reference_auc(y, score_bins(s, bins).astype(float))
    assert chunked_value(auc("label", "score", bins), frame) == {"auc": expected}


@pytest.mark.parametrize("bins", [10, 100, 1000])
def test_auc_within_the_stated_binning_error_of_raw_scores(frame: pd.DataFrame,
                                                           bins: int) -> None:
    y, s = known_rows(frame)
    agg = auc("label", "score", bins)
    state = agg.new_state()
    state.update(frame)
    pos = np.bincount(score_bins(s[y], bins), minlength=bins)
    neg = np.bincount(score_bins(s[~y], bins), minlength=bins)
    bound = 0.5 * float(np.sum(pos * neg)) / (pos.sum() * neg.sum())
    assert state.max_binning_error() == pytest.approx(bound, rel=1e-12)
    assert bound <= 0.5 * neg.max() / neg.sum()
    assert abs(agg.value(state)["auc"] - reference_auc(y, s)) <= bound + 1e-15


def test_auc_of_perfect_and_inverted_scores() -> None:
    frame = pd.DataFrame({"y": [0, 0, 1, 1], "s": [0.0, 0.1, 0.9, 1.0]})
    state = auc("y", "s").new_state()
    state.update(frame)
    assert state.auc() == 1.0
    frame["y"] = 1 - frame["y"]
    state = auc("y", "s").new_state()
    state.update(frame)
    assert state.auc() == 0.0


def test_auc_without_both_classes_is_nan() -> None:
    agg = auc("y", "s")
    state = agg.new_state()
    state.update(pd.DataFrame({"y": [True, True], "s": [0.3, 0.6]}))
    assert math.isnan(agg.value(state)["auc"])
    assert math.isnan(state.max_binning_error())


@pytest.mark.parametrize("score", [1.5, -0.1, math.inf])
def test_scores_outside_unit_interval_are_refused_naming_the_column(score: float) -> None:
    state = auc("y", "s").new_state()
    with pytest.raises(ValueError, match=r"column 's' must be in \[0, 1\]"):
        state.update(pd.DataFrame({"y": [1, 0], "s": [0.5, score]}))
    assert state == auc("y", "s").new_state()  # nothing was half-added


def test_auc_merge_refuses_other_bins() -> None:
    with pytest.raises(ValueError, match="cannot merge an AUC state"):
        auc("y", "s", 10).new_state().merge(auc("y", "s", 20).new_state())
    with pytest.raises(ValueError, match="has 20 bins, expected 10"):
        auc("y", "s", 10).state_from_bytes(auc("y", "s", 20).new_state().to_bytes())


@pytest.mark.parametrize("bins", [1, 0, 2.5, True, "100"])
def test_bins_are_validated(bins: object) -> None:
    with pytest.raises(ValueError, match="bins must be an integer"):
        auc("y", "s", bins)  # type: ignore[arg-type]


def test_auc_counts_exactly_beyond_int64_products() -> None:
    """Counts whose pair products overflow int64 still give an exact ratio."""
    state = AUCState("y", "s", 2)
    state.positives[:] = [2**40, 2**40]
    state.negatives[:] = [2**40, 0]
    # pairs: positives in bin 1 beat all negatives, bin 0 ties them: (1 + 1/2) / 2
    assert state.auc() == 0.75
