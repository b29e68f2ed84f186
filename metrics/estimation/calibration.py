"""A score calibration: the probability of a positive label for each interval of scores,
fitted once on a labelled reference by isotonic regression and kept as a small table.

Isotonic regression (scipy's pool-adjacent-violators, weighted by how many reference rows
share each distinct score) cuts the score axis into blocks over which the fitted
probability is constant. The table keeps those blocks and nothing else: ``edges`` between
them and the reference's positive and negative counts in each. A block's probability is
``positives / (positives + negatives)`` — the value isotonic regression fits there — read
as one correctly rounded division of two integers, so every machine derives the same
float from the stored table and the table (part of the reference profile's id) pins the
calibration exactly.

Bin ``k`` holds the scores ``edges[k-1] <= s < edges[k]`` (bin 0 everything below the
first edge, the last bin everything from the last edge up): a score beyond the reference's
range gets the probability of the nearest block, as isotonic calibrators do when they
clip. An edge lies halfway between the last reference score of one block and the first of
the next.

Scores may be any finite numbers ordered like the probability of a positive (a
probability, a logit, a margin); labels are booleans or 0/1. Rows where either is null
are left out of the fit.

Why blocks and not finer bins: within a block every score has the same calibrated
probability, so how scores are ordered inside a block changes neither the expected
confusion matrix nor the expected ROC AUC (a pair inside a block is expected to be
ordered right as often as wrong). Counting a window per block therefore loses nothing the
calibration knows.

>>> cal = ScoreCalibration.fit(np.array([0.125, 0.25, 0.375, 0.5, 0.75, 0.875]),
...                            np.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0]), "score", "label")
>>> cal.edges, cal.positives, cal.negatives
((0.1875, 0.8125), (0, 2, 1), (1, 2, 0))
>>> cal.probabilities().tolist()
[0.0, 0.5, 1.0]
>>> cal.bins(np.array([-3.0, 0.1875, 0.5, 0.8125, 2.0])).tolist()
[0, 1, 1, 2, 2]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from scipy.optimize import isotonic_regression

__all__ = ["ScoreCalibration"]

_GRID = 4096  # cells of the grid that guesses a score's bin (see ScoreCalibration.bins)


@dataclass(frozen=True)
class ScoreCalibration:
    """How scores in column ``score`` map to the probability that ``label`` is positive."""

    score: str
    label: str
    edges: tuple[float, ...]  # between bins: len(positives) - 1 of them, increasing
    positives: tuple[int, ...]  # reference rows with a positive label, per bin
    negatives: tuple[int, ...]  # and with a negative one

    def __post_init__(self) -> None:
        object.__setattr__(self, "edges", tuple(float(e) for e in self.edges))
        object.__setattr__(self, "positives", tuple(int(n) for n in self.positives))
        object.__setattr__(self, "negatives", tuple(int(n) for n in self.negatives))
        what = f"calibration of {self.score!r} against {self.label!r}"
        bins = len(self.positives)
        if bins == 0 or len(self.negatives) != bins or len(self.edges) != bins - 1:
            raise ValueError(f"{what}: needs one more bin than edges and both counts per bin")
        if not all(math.isfinite(e) for e in self.edges) or any(
                a >= b for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError(f"{what}: edges must be finite and strictly increasing")
        if any(p < 0 or n < 0 or p + n == 0
               for p, n in zip(self.positives, self.negatives, strict=True)):
            raise ValueError(f"{what}: every bin needs reference rows, and no count is negative")
        # Cross-multiplied integers: exact, unlike comparing the rounded probabilities.
        if any(p0 * (p1 + n1) > p1 * (p0 + n0) for p0, n0, p1, n1 in zip(
                self.positives, self.negatives, self.positives[1:], self.negatives[1:],
                strict=False)):
            raise ValueError(f"{what}: probabilities must not decrease as the score grows")
        if sum(self.positives) == 0 or sum(self.negatives) == 0:
            raise ValueError(f"{what}: the reference needs both positive and negative labels")

    @classmethod
    def fit(cls, scores: np.ndarray, labels: np.ndarray, score: str, label: str
            ) -> ScoreCalibration:
        """Fit on reference ``scores`` (finite or NaN) and ``labels`` (1.0, 0.0 or NaN)."""
        scores = np.asarray(scores, dtype=np.float64)
        labels = np.asarray(labels, dtype=np.float64)
        known = ~(np.isnan(scores) | np.isnan(labels))
        scores, labels = scores[known], labels[known]
        if np.isinf(scores).any():
            raise ValueError(f"reference scores in {score!r} must be finite, found "
                             f"{scores[np.isinf(scores)][0]!r}")
        if not ((labels == 0.0) | (labels == 1.0)).all():
            raise ValueError(f"reference labels in {label!r} must be booleans or 0/1")
        positives, negatives = int(labels.sum()), int(len(labels) - labels.sum())
        if positives == 0 or negatives == 0:
            raise ValueError(
                f"reference labels in {label!r} need both classes to calibrate {score!r} "
                f"against, found {positives} positive and {negatives} negative rows"
            )
        order = np.argsort(scores, kind="stable")
        sorted_scores, sorted_labels = scores[order], labels[order].astype(np.int64)
        distinct, starts = np.unique(sorted_scores, return_index=True)
        sizes = np.diff(np.append(starts, len(sorted_scores)))
        hits = np.add.reduceat(sorted_labels, starts)
        blocks = isotonic_regression(hits / sizes, weights=sizes.astype(np.float64),
                                     increasing=True).blocks
        first = blocks[:-1]
        block_hits = np.add.reduceat(hits, first)
        block_sizes = np.add.reduceat(sizes, first)
        edges = [_between(float(distinct[b - 1]), float(distinct[b])) for b in first[1:]]
        return cls(score, label, tuple(edges), tuple(block_hits.tolist()),
                   tuple((block_sizes - block_hits).tolist()))

    def probabilities(self) -> np.ndarray:
        """The calibrated probability of each bin: its reference positives over its rows
        (read-only)."""
        return self._probabilities

    @cached_property
    def _probabilities(self) -> np.ndarray:
        probabilities = np.array([p / (p + n) for p, n in zip(self.positives, self.negatives,
                                                               strict=True)], dtype=np.float64)
        probabilities.flags.writeable = False
        return probabilities

    def bins(self, scores: np.ndarray) -> np.ndarray:
        """The bin of each (finite) score: ``np.searchsorted(edges, scores, side="right")``.

        A binary search per score is slow on unsorted scores (a mispredicted branch a
        step), so each score first takes the bin of its cell in a uniform grid over the
        edges, checked against that bin's bounds; the few scores whose guess fails (their
        cell holds an edge) are searched.
        """
        scores = np.asarray(scores, dtype=np.float64)
        edges = np.asarray(self.edges, dtype=np.float64)
        if len(edges) < 2:
            return np.searchsorted(edges, scores, side="right")
        low, scale, guesses, bounds = self._grid
        if not math.isfinite(scale):  # edges too close together for a grid
            return np.searchsorted(edges, scores, side="right")
        with np.errstate(over="ignore"):  # a far score: clipped to the cell beyond the grid
            cells = np.clip((scores - low) * scale, -1.0, _GRID).astype(np.int64) + 1
        guess = guesses[cells]
        wrong = ~((bounds[guess] <= scores) & (scores < bounds[guess + 1]))
        if wrong.any():
            guess[wrong] = np.searchsorted(edges, scores[wrong], side="right")
        return guess

    @cached_property
    def _grid(self) -> tuple[float, float, np.ndarray, np.ndarray]:
        """The grid :meth:`bins` guesses with: its start, cells per unit of score, the bin
        of each cell's start (with one cell below the grid and one above), and each bin's
        bounds (``bounds[k] <= score < bounds[k + 1]``)."""
        edges = np.asarray(self.edges, dtype=np.float64)
        low, high = float(edges[0]), float(edges[-1])
        with np.errstate(over="ignore", divide="ignore"):
            scale = _GRID / (high - low)
        if not math.isfinite(scale):
            return low, scale, np.zeros(0, dtype=np.int64), np.zeros(0)
        starts = low + np.arange(_GRID + 1) / scale
        guesses = np.concatenate([[0], np.searchsorted(edges, starts, side="right")])
        bounds = np.concatenate([[-np.inf], edges, [np.inf]])
        return low, scale, guesses, bounds

    @property
    def size(self) -> int:
        """How many bins the calibration has."""
        return len(self.positives)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; floats are written with repr by ``json``, so they read back exactly."""
        return {"score": self.score, "label": self.label, "edges": list(self.edges),
                "positives": list(self.positives), "negatives": list(self.negatives)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoreCalibration:
        return cls(data["score"], data["label"], tuple(data["edges"]),
                   tuple(data["positives"]), tuple(data["negatives"]))


def _between(low: float, high: float) -> float:
    """A float halfway between two distinct scores, strictly above ``low``."""
    middle = low / 2 + high / 2  # halves first: low + high could overflow
    return middle if low < middle <= high else high
