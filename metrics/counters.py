"""A state made of named integer counters: exact, mergeable and cheap to serialize.

Most exact aggregates (counts, rates, shares, null rates, confusion matrices) are a few
integers; this is their shared state so each aggregate only says how each row counts
(:class:`RowCounting`), which serves one state (a sum) and many at once (a bincount).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Self

import numpy as np
import pandas as pd

from metrics.groups import Groups
from metrics.row_memo import RowMemo

Counter = Callable[[pd.DataFrame], Mapping[str, int]]


class CounterState:
    """Integer counters updated by a counting function fixed at construction."""

    __slots__ = ("_count", "counts")

    def __init__(self, count: Counter, names: tuple[str, ...]) -> None:
        self._count = count
        self.counts: dict[str, int] = dict.fromkeys(names, 0)

    def update(self, frame: pd.DataFrame) -> None:
        for name, n in self._count(frame).items():
            self.counts[name] += int(n)

    def merge(self, other: Self) -> None:
        if other.counts.keys() != self.counts.keys():
            raise ValueError(
                f"cannot merge counters {sorted(other.counts)} into {sorted(self.counts)}"
            )
        for name, n in other.counts.items():
            self.counts[name] += n

    def to_bytes(self) -> bytes:
        return json.dumps(self.counts, sort_keys=True).encode()

    def load(self, data: bytes) -> Self:
        """Fill this empty state from :meth:`to_bytes` output."""
        counts = json.loads(data)
        if counts.keys() != self.counts.keys():
            raise ValueError(f"stored counters {sorted(counts)} do not match {sorted(self.counts)}")
        self.counts = {k: int(v) for k, v in counts.items()}
        return self

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CounterState) and self.counts == other.counts

    def __repr__(self) -> str:
        return f"CounterState({self.counts})"


def ratio(numerator: int, denominator: int) -> float:
    """numerator / denominator, NaN when there is nothing to divide by."""
    return numerator / denominator if denominator else float("nan")


class RowCounting:
    """Mixin for aggregates whose state is counters: each row adds 0 or 1 to each counter.

    Subclasses name their ``counter_names`` and say per row what counts in
    :meth:`row_counts`; one state's update and the grouped update both follow from it.
    """

    counter_names: tuple[str, ...]

    def row_counts(self, frame: pd.DataFrame) -> Mapping[str, np.ndarray]:
        """Per counter, a boolean array: does each row of ``frame`` count."""
        raise NotImplementedError

    def count(self, frame: pd.DataFrame) -> dict[str, int]:
        return {name: int(np.count_nonzero(hits))
                for name, hits in self.row_counts(frame).items()}

    def new_state(self) -> CounterState:
        return CounterState(self.count, self.counter_names)

    def state_from_bytes(self, data: bytes) -> CounterState:
        return self.new_state().load(data)

    def update_groups(self, states: Sequence[CounterState], frame: pd.DataFrame,
                      groups: Groups) -> None:
        self._add_counts(states, groups, self.row_counts(frame))

    def update_groups_memo(self, states: Sequence[CounterState], frame: pd.DataFrame,
                           groups: Groups, memo: RowMemo) -> None:
        """:meth:`update_groups`, with the per-row counts another metric reading the same
        rows may have computed already (:mod:`metrics.row_memo`)."""
        self._add_counts(states, groups, memo.row_counts(self, frame))

    @staticmethod
    def _add_counts(states: Sequence[CounterState], groups: Groups,
                    row_counts: Mapping[str, np.ndarray]) -> None:
        for name, hits in row_counts.items():
            for state, n in zip(states, groups.sums(hits).tolist(), strict=True):
                state.counts[name] += n


def every_row(frame: pd.DataFrame) -> np.ndarray:
    return np.ones(len(frame), dtype=bool)
