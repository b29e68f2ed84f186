"""Classification performance when a label column is present: accuracy, precision, recall, AUC.

Labels and predictions are binary: booleans or 0/1 numbers; a row where either is null is
left out. Any other value raises a ValueError naming the column, rather than being guessed
at. All four are integer counts underneath, so they merge exactly and give bit-identical
values whatever the chunking.

AUC comes from binned scores. Scores must lie in [0, 1] (a score outside raises: clipping
would hide a model that emits logits or percentages); each is put in one of ``bins``
equal-width bins, ``floor(score * bins)``, with 1.0 in the last. The AUC is then computed
exactly from the per-bin counts of positives and negatives, a positive and a negative in
the same bin counting as a tie (1/2), as in the Mann–Whitney U statistic.

Binning error: only positive–negative pairs that share a bin can be counted differently
from the raw scores, and each by at most 1/2, so

    |AUC(binned) - AUC(raw)| <= 1/2 * sum_b pos_b * neg_b / (P * N) <= 1/2 * max_b neg_b / N

where ``pos_b``/``neg_b`` are the counts in bin ``b`` and ``P``/``N`` the totals. With the
default 1000 bins and scores spread over [0, 1] that is a few parts in ten thousand; scores
crowded into a narrow range lose resolution and need more bins.
:meth:`AUCState.max_binning_error` gives the bound for the data actually seen.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self

import numpy as np
import pandas as pd

from metrics.base import Aggregate, ColumnKind
from metrics.counters import CounterState, RowCounting, ratio

__all__ = ["AUC", "AUCState", "Accuracy", "Precision", "Recall", "accuracy", "auc",
           "binary_column", "precision", "recall", "score_bins"]

_CONFUSION = ("false_negatives", "false_positives", "true_negatives", "true_positives")


def binary_column(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A label-like column as float64 1.0/0.0, NaN for nulls; ValueError on other values."""
    try:
        values = frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        raise ValueError(f"column {column!r} must hold booleans or 0/1") from None
    bad = ~((values == 0.0) | (values == 1.0) | np.isnan(values))
    if bad.any():
        raise ValueError(
            f"column {column!r} must hold booleans or 0/1, found {values[bad][0]!r}"
        )
    return values


@dataclass(frozen=True)
class _ConfusionAggregate(RowCounting, Aggregate):
    """An aggregate of a binary confusion matrix: four integer counters."""

    label: str
    prediction: str
    counter_names = _CONFUSION

    def columns(self) -> dict[str, ColumnKind]:
        return {self.label: "bool", self.prediction: "bool"}

    def row_counts(self, frame: pd.DataFrame) -> Mapping[str, np.ndarray]:
        label = binary_column(frame, self.label)
        prediction = binary_column(frame, self.prediction)
        known = ~(np.isnan(label) | np.isnan(prediction))
        actual, predicted = known & (label == 1.0), known & (prediction == 1.0)
        return {
            "true_positives": actual & predicted,
            "false_positives": predicted & ~actual,
            "false_negatives": actual & ~predicted,
            "true_negatives": known & ~actual & ~predicted,
        }


@dataclass(frozen=True)
class Accuracy(_ConfusionAggregate):
    """The share of labelled rows where the prediction equals the label."""

    kind = "accuracy"

    def fields(self) -> tuple[str, ...]:
        return ("accuracy",)

    def value(self, state: CounterState) -> dict[str, float]:
        c = state.counts
        right = c["true_positives"] + c["true_negatives"]
        return {"accuracy": ratio(right, right + c["false_positives"] + c["false_negatives"])}


@dataclass(frozen=True)
class Precision(_ConfusionAggregate):
    """Of the rows predicted positive, the share that are positive (NaN if none predicted)."""

    kind = "precision"

    def fields(self) -> tuple[str, ...]:
        return ("precision",)

    def value(self, state: CounterState) -> dict[str, float]:
        c = state.counts
        hits = c["true_positives"]
        return {"precision": ratio(hits, hits + c["false_positives"])}


@dataclass(frozen=True)
class Recall(_ConfusionAggregate):
    """Of the positive rows, the share predicted positive (NaN if there are none)."""

    kind = "recall"

    def fields(self) -> tuple[str, ...]:
        return ("recall",)

    def value(self, state: CounterState) -> dict[str, float]:
        c = state.counts
        hits = c["true_positives"]
        return {"recall": ratio(hits, hits + c["false_negatives"])}


# -- AUC from binned scores -----------------------------------------------------------

_AUC_HEADER = struct.Struct("<4sI")  # magic, number of bins
_AUC_MAGIC = b"DMA1"


def score_bins(scores: np.ndarray, bins: int) -> np.ndarray:
    """The bin of each score in [0, 1]: ``floor(score * bins)``, with 1.0 in the last bin."""
    index = (np.asarray(scores, dtype=np.float64) * bins).astype(np.int64)
    return np.minimum(index, bins - 1)


class AUCState:
    """Per-bin counts of positive and negative rows."""

    __slots__ = ("bins", "label", "negatives", "positives", "score")

    def __init__(self, label: str, score: str, bins: int) -> None:
        self.label, self.score, self.bins = label, score, bins
        self.positives = np.zeros(bins, dtype=np.int64)
        self.negatives = np.zeros(bins, dtype=np.int64)

    def update(self, frame: pd.DataFrame) -> None:
        label = binary_column(frame, self.label)
        scores = frame[self.score].to_numpy(dtype=np.float64, na_value=np.nan)
        outside = (scores < 0.0) | (scores > 1.0)
        if outside.any():
            raise ValueError(
                f"scores in column {self.score!r} must be in [0, 1] for a binned AUC, "
                f"found {scores[outside][0]!r}"
            )
        known = ~(np.isnan(label) | np.isnan(scores))
        index = score_bins(scores[known], self.bins)
        positive = label[known] == 1.0
        self.positives += np.bincount(index[positive], minlength=self.bins)
        self.negatives += np.bincount(index[~positive], minlength=self.bins)

    def merge(self, other: Self) -> None:
        mine, theirs = (self.label, self.score, self.bins), (other.label, other.score, other.bins)
        if mine != theirs:
            raise ValueError(
                f"cannot merge an AUC state of (label, score, bins) {theirs} into one of {mine}"
            )
        self.positives += other.positives
        self.negatives += other.negatives

    def auc(self) -> float:
        """The Mann–Whitney AUC of the binned scores, rounded once; NaN without both classes."""
        twice_wins = 0  # exact Python integers: counts can be large enough to overflow int64
        negatives_below = 0
        for pos, neg in zip(self.positives.tolist(), self.negatives.tolist(), strict=True):
            twice_wins += pos * (2 * negatives_below + neg)
            negatives_below += neg
        pairs = int(self.positives.sum()) * negatives_below
        return twice_wins / (2 * pairs) if pairs else float("nan")

    def max_binning_error(self) -> float:
        """The bound on |AUC(binned) - AUC(raw scores)| for the rows seen: half the share of
        positive-negative pairs that share a bin."""
        shared = sum(p * n for p, n in zip(self.positives.tolist(), self.negatives.tolist(),
                                           strict=True))
        pairs = int(self.positives.sum()) * int(self.negatives.sum())
        return shared / (2 * pairs) if pairs else float("nan")

    def to_bytes(self) -> bytes:
        header = _AUC_HEADER.pack(_AUC_MAGIC, self.bins)
        return header + self.positives.astype("<i8").tobytes() + self.negatives.astype(
            "<i8").tobytes()

    def load(self, data: bytes) -> Self:
        """Fill this empty state from :meth:`to_bytes` output."""
        if len(data) < _AUC_HEADER.size:
            raise ValueError("not AUC state bytes (too short)")
        magic, bins = _AUC_HEADER.unpack_from(data)
        if magic != _AUC_MAGIC or len(data) != _AUC_HEADER.size + 16 * bins:
            raise ValueError("not AUC state bytes (bad header or length)")
        if bins != self.bins:
            raise ValueError(f"stored AUC state has {bins} bins, expected {self.bins}")
        counts = np.frombuffer(data, dtype="<i8", offset=_AUC_HEADER.size).astype(np.int64)
        self.positives, self.negatives = counts[:bins].copy(), counts[bins:].copy()
        return self

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, AUCState)
                and (self.label, self.score, self.bins) == (other.label, other.score, other.bins)
                and np.array_equal(self.positives, other.positives)
                and np.array_equal(self.negatives, other.negatives))

    def __repr__(self) -> str:
        return (f"AUCState({self.label!r}, {self.score!r}, bins={self.bins}, "
                f"positives={int(self.positives.sum())}, negatives={int(self.negatives.sum())})")


@dataclass(frozen=True)
class AUC(Aggregate):
    """Area under the ROC curve from scores in [0, 1] binned into ``bins`` bins."""

    label: str
    score: str
    bins: int = 1000
    kind = "auc"

    def __post_init__(self) -> None:
        if isinstance(self.bins, bool) or not isinstance(self.bins, int) or self.bins < 2:
            raise ValueError(f"bins must be an integer of at least 2, got {self.bins!r}")

    def columns(self) -> dict[str, ColumnKind]:
        return {self.label: "bool", self.score: "numeric"}

    def fields(self) -> tuple[str, ...]:
        return ("auc",)

    def new_state(self) -> AUCState:
        return AUCState(self.label, self.score, self.bins)

    def state_from_bytes(self, data: bytes) -> AUCState:
        return self.new_state().load(data)

    def value(self, state: AUCState) -> dict[str, float]:
        return {"auc": state.auc()}


# Presets: functions that return specs, as the rest of the library does.
def accuracy(label: str, prediction: str) -> Accuracy:
    """The share of rows with a ``label`` and a ``prediction`` where they agree (field
    ``accuracy``).

    >>> agg = accuracy("clicked", "predicted_click")
    >>> state = agg.new_state()
    >>> state.update(pd.DataFrame({"clicked": [True, False, True, None],
    ...                            "predicted_click": [1, 0, 0, 1]}))
    >>> agg.value(state)
    {'accuracy': 0.6666666666666666}
    """
    return Accuracy(label, prediction)


def precision(label: str, prediction: str) -> Precision:
    """Of the rows ``prediction`` calls positive, the share whose ``label`` is (field
    ``precision``; NaN when none is predicted positive).

    >>> agg = precision("clicked", "predicted_click")
    >>> state = agg.new_state()
    >>> state.update(pd.DataFrame({"clicked": [True, False, True, False],
    ...                            "predicted_click": [True, True, False, False]}))
    >>> agg.value(state)
    {'precision': 0.5}
    """
    return Precision(label, prediction)


def recall(label: str, prediction: str) -> Recall:
    """Of the rows whose ``label`` is positive, the share ``prediction`` calls positive (field
    ``recall``; NaN when there are none).

    >>> agg = recall("clicked", "predicted_click")
    >>> state = agg.new_state()
    >>> state.update(pd.DataFrame({"clicked": [1, 1, 1, 0], "predicted_click": [1, 1, 0, 1]}))
    >>> agg.value(state)
    {'recall': 0.6666666666666666}
    """
    return Recall(label, prediction)


def auc(label: str, score: str, bins: int = AUC.bins) -> AUC:
    """Area under the ROC curve of ``score`` (in [0, 1]) against ``label`` (field ``auc``),
    from the scores binned into ``bins`` bins; see :class:`AUC` for the error it bounds.

    >>> agg = auc("clicked", "click_score", bins=10)
    >>> state = agg.new_state()
    >>> state.update(pd.DataFrame({"clicked": [True, True, False, False, None],
    ...                            "click_score": [0.9, 0.42, 0.41, 0.1, 0.5]}))
    >>> agg.value(state)  # 0.42 and 0.41 share a bin, so that pair counts as a tie
    {'auc': 0.875}
    """
    return AUC(label, score, bins)
