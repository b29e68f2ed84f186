"""A window's scores counted per calibration bin, on each side of the decision threshold.

Two integer counts per bin: exact, mergeable by addition, and all that the expected
performance needs (:mod:`metrics.estimation.expected`). Null scores are left out; a score
that is not a finite number raises a ValueError naming the column.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Self

import numpy as np
import pandas as pd

from metrics.estimation.calibration import ScoreCalibration
from metrics.groups import Groups

__all__ = ["ScoreCountsState", "score_cells"]

_HEADER = struct.Struct("<4sI")  # magic, number of bins
_MAGIC = b"DMC1"


def score_cells(frame: pd.DataFrame, calibration: ScoreCalibration, threshold: float
                ) -> np.ndarray:
    """Each row's cell, ``2·bin + (score >= threshold)``, or -1 where the score is null."""
    column = calibration.score
    try:
        scores = frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        raise ValueError(
            f"column {column!r} must hold numeric scores to estimate performance from, "
            f"found dtype {frame[column].dtype}"
        ) from None
    finite = np.isfinite(scores)
    if finite.all():  # the usual case: no mask to apply
        return 2 * calibration.bins(scores) + (scores >= threshold)
    if np.isinf(scores).any():
        raise ValueError(f"scores in column {column!r} must be finite to estimate "
                         f"performance from, found {scores[np.isinf(scores)][0]!r}")
    cells = np.full(len(scores), -1, dtype=np.int64)
    known = scores[finite]
    cells[finite] = 2 * calibration.bins(known) + (known >= threshold)
    return cells


class ScoreCountsState:
    """Per calibration bin, how many scores fell below the threshold and how many at or
    above it."""

    __slots__ = ("above", "below", "calibration", "threshold")

    def __init__(self, calibration: ScoreCalibration, threshold: float) -> None:
        self.calibration, self.threshold = calibration, threshold
        self.below = np.zeros(calibration.size, dtype=np.int64)
        self.above = np.zeros(calibration.size, dtype=np.int64)

    def update(self, frame: pd.DataFrame) -> None:
        cells = score_cells(frame, self.calibration, self.threshold)
        self._add(np.bincount(cells[cells >= 0], minlength=2 * self.calibration.size))

    def update_groups(self, states: Sequence[Self], frame: pd.DataFrame, groups: Groups
                      ) -> None:
        """Absorb ``frame`` into ``states`` (this one among them) in one bincount."""
        cells = score_cells(frame, self.calibration, self.threshold)
        if groups.rows is not None:
            cells = cells[groups.rows]
        known = cells >= 0
        width = 2 * self.calibration.size
        counts = np.bincount(groups.codes[known] * width + cells[known],
                             minlength=groups.n * width).reshape(groups.n, width)
        for state, row in zip(states, counts, strict=True):
            state._add(row)

    def _add(self, cell_counts: np.ndarray) -> None:
        self.below += cell_counts[0::2]
        self.above += cell_counts[1::2]

    def merge(self, other: Self) -> None:
        if (other.calibration, other.threshold) != (self.calibration, self.threshold):
            raise ValueError(
                f"cannot merge score counts of {other.calibration.score!r} at threshold "
                f"{other.threshold!r} into ones of {self.calibration.score!r} at "
                f"{self.threshold!r} with another calibration or threshold"
            )
        self.below += other.below
        self.above += other.above

    def to_bytes(self) -> bytes:
        header = _HEADER.pack(_MAGIC, self.calibration.size)
        return header + self.below.astype("<i8").tobytes() + self.above.astype("<i8").tobytes()

    def load(self, data: bytes) -> Self:
        """Fill this empty state from :meth:`to_bytes` output."""
        if len(data) < _HEADER.size:
            raise ValueError("not score-count state bytes (too short)")
        magic, bins = _HEADER.unpack_from(data)
        if magic != _MAGIC or len(data) != _HEADER.size + 16 * bins:
            raise ValueError("not score-count state bytes (bad header or length)")
        if bins != self.calibration.size:
            raise ValueError(f"stored score counts have {bins} bins, the calibration "
                             f"{self.calibration.size}")
        counts = np.frombuffer(data, dtype="<i8", offset=_HEADER.size).astype(np.int64)
        self.below, self.above = counts[:bins].copy(), counts[bins:].copy()
        return self

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ScoreCountsState)
                and (self.calibration, self.threshold) == (other.calibration, other.threshold)
                and np.array_equal(self.below, other.below)
                and np.array_equal(self.above, other.above))

    def __repr__(self) -> str:
        return (f"ScoreCountsState({self.calibration.score!r}, threshold={self.threshold!r}, "
                f"below={int(self.below.sum())}, above={int(self.above.sum())})")
