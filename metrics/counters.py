"""A state made of named integer counters: exact, mergeable and cheap to serialize.

Most exact aggregates (counts, rates, shares, null rates, confusion matrices) are a few
integers; this is their shared state so each aggregate only says how a chunk counts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Self

import pandas as pd

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
