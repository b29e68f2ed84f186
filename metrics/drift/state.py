"""The running state of drift: counts of the current window over a reference profile's bins.

Counts and fixed-point sums are integers, the overflow extremes a min and a max and the
rare far outliers summed exactly (:class:`~metrics.exact_sum.ExactSum`), so merging is
exact in any order and every drift value is a pure function of the merged state: the same
events give bit-identical values whatever the chunking.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

import numpy as np
import pandas as pd

from metrics.drift.columns import (
    Beyond,
    CategoricalProfile,
    ColumnProfile,
    NumericProfile,
    float_array,
)
from metrics.drift.profile import ReferenceProfile
from metrics.groups import Groups

__all__ = ["BinCountsState", "ColumnCounts"]


@dataclass(frozen=True)
class ColumnCounts:
    """One column of the current window: counts per reference bin and the overflow bins.

    For numeric columns, ``offsets`` are the per-bin sums of fixed-point positions (see
    :mod:`metrics.drift.columns`), ``low`` is the smallest value below the first edge and
    ``high`` the largest above the last edge (None while that overflow bin is empty),
    ``below`` and ``above`` how far beyond the edges the overflow values lie
    (:class:`~metrics.drift.columns.Beyond`); all are None for categories.
    """

    counts: np.ndarray
    offsets: np.ndarray | None = None
    low: float | None = None
    high: float | None = None
    below: Beyond | None = None
    above: Beyond | None = None

    @property
    def n(self) -> int:
        return int(self.counts.sum())


class BinCountsState:
    """Current-window counts over the bins of some columns of one reference profile.

    Build it from a profile directly (``BinCountsState(profile, ["x"])``) or through a
    drift aggregate's ``new_state()``. Numeric columns also keep the extremes and exact
    sums of the values outside the reference range (see :class:`ColumnCounts`).

    >>> ref = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]})
    >>> profile = ReferenceProfile.fit(ref, bins=2)
    >>> a, b = BinCountsState(profile, ["x"]), BinCountsState(profile, ["x"])
    >>> a.update(pd.DataFrame({"x": [0.0, 2.0]}))
    >>> b.update(pd.DataFrame({"x": [3.0, 7.0, None]}))
    >>> a.merge(b)
    >>> current = a.column("x")
    >>> current.counts.tolist(), current.low, current.high
    ([1, 1, 1, 1], 0.0, 7.0)
    """

    __slots__ = ("_columns", "above", "below", "counts", "high", "low", "offsets", "profile_id")

    def __init__(self, profile: ReferenceProfile, columns: Sequence[str]) -> None:
        if not columns:
            raise ValueError("a drift state needs at least one column")
        self.profile_id = profile.id
        self._columns: dict[str, ColumnProfile] = {c: profile.column(c) for c in columns}
        self.counts = {c: np.zeros(p.n_bins, dtype=np.int64) for c, p in self._columns.items()}
        self.low: dict[str, float | None] = dict.fromkeys(self._columns)
        self.high: dict[str, float | None] = dict.fromkeys(self._columns)
        numeric = [c for c, p in self._columns.items() if isinstance(p, NumericProfile)]
        self.offsets = {c: np.zeros(self._columns[c].n_bins, dtype=np.int64) for c in numeric}
        self.below = {c: Beyond(-1) for c in numeric}
        self.above = {c: Beyond(+1) for c in numeric}

    def update(self, frame: pd.DataFrame) -> None:
        for name, profile in self._columns.items():
            series = _column(frame, name)
            if isinstance(profile, NumericProfile):
                self.add_numeric(name, _numeric(name, series))
            else:
                self.add_categories(name, series)

    def add_numeric(self, name: str, values: np.ndarray) -> None:
        """Count float values (NaN for nulls) of a numeric column."""
        profile = self._columns[name]
        assert isinstance(profile, NumericProfile)
        tally = profile.count(values)
        self.counts[name] += tally.counts
        self.offsets[name] += tally.offsets
        self.low[name] = _lower(self.low[name], tally.low)
        self.high[name] = _higher(self.high[name], tally.high)
        self.below[name].merge(tally.below)
        self.above[name].merge(tally.above)

    def add_categories(self, name: str, values: pd.Series) -> None:
        """Count the values of a categorical column."""
        profile = self._columns[name]
        assert isinstance(profile, CategoricalProfile)
        self.counts[name] += profile.count(values)

    def update_groups(self, states: Sequence[BinCountsState], frame: pd.DataFrame,
                      groups: Groups) -> None:
        """Update many states of this definition (this one need not be among them), each
        on its group of ``frame``; numeric columns are converted once and cut with numpy."""
        categorical = []
        for name, profile in self._columns.items():
            series = _column(frame, name)
            if isinstance(profile, NumericProfile):
                parts = groups.split(_numeric(name, series))
                for state, part in zip(states, parts, strict=True):
                    state.add_numeric(name, part)
            else:
                categorical.append(name)
        if categorical:
            for state, rows in zip(states, groups.frames(frame[categorical]), strict=True):
                for name in categorical:
                    state.add_categories(name, rows[name])

    def merge(self, other: Self) -> None:
        if other.profile_id != self.profile_id:
            raise ValueError(
                f"cannot merge drift counts over reference profile {other.profile_id} into "
                f"counts over {self.profile_id}: the reference was refit"
            )
        if list(other.counts) != list(self.counts):
            raise ValueError(
                f"cannot merge drift counts of columns {list(other.counts)} into counts of "
                f"{list(self.counts)}"
            )
        for name, counts in other.counts.items():
            self.counts[name] += counts
            self.low[name] = _lower(self.low[name], other.low[name])
            self.high[name] = _higher(self.high[name], other.high[name])
            if name in self.below:
                self.offsets[name] += other.offsets[name]
                self.below[name].merge(other.below[name])
                self.above[name].merge(other.above[name])

    def column(self, name: str) -> ColumnCounts:
        return ColumnCounts(
            self.counts[name], self.offsets.get(name), self.low[name], self.high[name],
            self.below.get(name), self.above.get(name),
        )

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "profile": self.profile_id,
                "columns": {name: self._column_bytes(name) for name in self.counts},
            },
            separators=(",", ":"),
        ).encode()

    def _column_bytes(self, name: str) -> list[object]:
        entry: list[object] = [self.counts[name].tolist()]
        if name in self.below:
            entry += [self.offsets[name].tolist(), _hex(self.low[name]), _hex(self.high[name]),
                      self.below[name].to_list(), self.above[name].to_list()]
        return entry

    def load(self, data: bytes) -> Self:
        """Fill this empty state from :meth:`to_bytes` output."""
        raw = json.loads(data)
        if raw["profile"] != self.profile_id:
            raise ValueError(
                f"stored drift counts are over reference profile {raw['profile']}, "
                f"not {self.profile_id}"
            )
        if list(raw["columns"]) != list(self.counts):
            raise ValueError(
                f"stored drift counts have columns {list(raw['columns'])}, "
                f"not {list(self.counts)}"
            )
        for name, (counts, *outside) in raw["columns"].items():
            array = np.asarray(counts, dtype=np.int64)
            if array.shape != self.counts[name].shape:
                raise ValueError(
                    f"stored drift counts of {name!r} have {len(array)} bins, "
                    f"not {len(self.counts[name])}"
                )
            self.counts[name] = array
            if name in self.below:
                offsets, low, high, below, above = outside
                self.offsets[name] = np.asarray(offsets, dtype=np.int64)
                self.low[name], self.high[name] = _unhex(low), _unhex(high)
                self.below[name] = Beyond.from_list(-1, below)
                self.above[name] = Beyond.from_list(+1, above)
        return self

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, BinCountsState)
            and self.profile_id == other.profile_id
            and list(self.counts) == list(other.counts)
            and all(np.array_equal(c, other.counts[n]) for n, c in self.counts.items())
            and self.offsets.keys() == other.offsets.keys()
            and all(np.array_equal(o, other.offsets[n]) for n, o in self.offsets.items())
            and self.low == other.low
            and self.high == other.high
            and self.below == other.below
            and self.above == other.above
        )

    def __repr__(self) -> str:
        return f"BinCountsState(profile={self.profile_id}, columns={list(self.counts)})"


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    try:
        return frame[name]
    except KeyError:
        raise ValueError(f"the frame has no column {name!r} to compare for drift") from None


def _numeric(name: str, series: pd.Series) -> np.ndarray:
    try:
        return float_array(series)
    except ValueError as err:
        raise ValueError(f"column {name!r} is numeric in the reference: {err}") from None


def _lower(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _higher(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def _hex(value: float | None) -> str | None:
    return None if value is None else float.hex(value)


def _unhex(value: str | None) -> float | None:
    return None if value is None else float.fromhex(value)
