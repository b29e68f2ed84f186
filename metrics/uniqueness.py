"""The expectation that a column is unique within a window: no value in two events.

Its values are an expectation's (:mod:`metrics.expectations`): ``failure_rate`` is the
share of the checked events whose value another event of the window (and segment) has
too, every one of them counted (Great Expectations' "unexpected" rows); ``failed`` and
``checked`` the counts, ``passed`` whether the rate is at most ``tolerance``; and
``exact``, as for a consistency check: the state keeps each value's count of events for
at most ``max_keys`` values, those of the smallest hash (:mod:`metrics.key_table`), so
its memory is bounded by ``max_keys`` whatever the events. A window with more distinct
values keeps a uniform sample of them, each with its full count: ``failure_rate`` is then
the sample's (``checked`` stays exact, ``failed`` is estimated from the rate) and
``exact`` is 0.0 — alike in every stage.

>>> check = expect_unique("view_id")
>>> state = check.new_state()
>>> state.update(pd.DataFrame({"view_id": [1, 2, 2, 3, 2]}))
>>> check.value(state)
{'failure_rate': 0.6, 'failed': 3.0, 'checked': 5.0, 'passed': 0.0, 'exact': 1.0}
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

import numpy as np
import pandas as pd

from metrics.assertions import ID
from metrics.base import Aggregate, ColumnKind, canonical_json, input_column
from metrics.bottom_k import id_hashes
from metrics.counters import ratio
from metrics.expectations import check_tolerance, passes
from metrics.groups import Groups
from metrics.key_table import MAX_KEYS, KeyChunk, Keys, KeyTable, add_by_group, text_array

__all__ = ["Unique", "UniqueState", "expect_unique"]


class UniqueState:
    """The events checked, and each value's events for the values of the lowest hash."""

    __slots__ = ("checked", "spec", "values")

    def __init__(self, spec: Unique) -> None:
        self.spec = spec
        self.checked = 0
        self.values = KeyTable(spec.max_keys)

    def update(self, frame: pd.DataFrame) -> None:
        self.spec.update_groups([self], frame, Groups(np.zeros(len(frame), np.intp), 1))

    def merge(self, other: Self) -> None:
        if other.spec != self.spec:
            raise ValueError(f"cannot merge a uniqueness state of {other.spec.to_dict()} "
                             f"into one of {self.spec.to_dict()}")
        self.checked += other.checked
        self.values.merge(other.values)

    def held(self) -> tuple[int, int]:
        """Events of the values held, and those of them whose value is in another event."""
        counts = self.values.held().events
        return int(counts.sum()), int(counts[counts > 1].sum())

    def to_bytes(self) -> bytes:
        held = self.values.held()
        values = [list(pair) for pair in zip(held.texts.tolist(), held.events.tolist(),
                                             strict=True)]
        return canonical_json({"checked": self.checked, "dropped": self.values.dropped,
                               "values": values}).encode()

    def load(self, data: bytes) -> Self:
        raw = json.loads(data)
        values = raw["values"]
        if (len(values) > self.spec.max_keys or sum(int(n) for _, n in values)
                > int(raw["checked"]) or any(int(n) < 1 for _, n in values)):
            raise ValueError(f"stored uniqueness state is inconsistent: {len(values)} values "
                             f"(max_keys={self.spec.max_keys}) of {raw['checked']} events")
        self.checked = int(raw["checked"])
        texts = [text for text, _ in values]
        self.values.restore(Keys(id_hashes(texts), text_array(texts),
                                 np.array([int(n) for _, n in values], dtype=np.int64)),
                            dropped=bool(raw["dropped"]))
        if len(self.values) != len(values):
            raise ValueError("stored uniqueness state holds a value twice")
        return self

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, UniqueState) and self.spec == other.spec
                and self.checked == other.checked and self.values == other.values)


@dataclass(frozen=True)
class Unique(Aggregate):
    """No value of ``column`` in two events of a window (see the module)."""

    column: str | None
    tolerance: float = 0.0
    max_keys: int = 20_000
    kind = "expect_unique"

    def __post_init__(self) -> None:
        check_tolerance(self.kind, self.tolerance)
        if (isinstance(self.max_keys, bool) or not isinstance(self.max_keys, int)
                or not 1 <= self.max_keys <= MAX_KEYS):
            raise ValueError(f"expect_unique max_keys={self.max_keys!r}: must be a whole "
                             f"number from 1 to {MAX_KEYS}")

    def columns(self) -> dict[str, ColumnKind]:
        return {input_column(self): ID}

    def fields(self) -> tuple[str, ...]:
        return ("failure_rate", "failed", "checked", "passed", "exact")

    def new_state(self) -> UniqueState:
        input_column(self)
        return UniqueState(self)

    def state_from_bytes(self, data: bytes) -> UniqueState:
        return self.new_state().load(data)

    def _rate(self, state: UniqueState) -> float:
        events, repeated = state.held()
        return ratio(repeated, events)

    def passes(self, state: UniqueState) -> bool:
        events, repeated = state.held()
        return passes(repeated, events, self.tolerance)

    def value(self, state: UniqueState) -> dict[str, float]:
        rate = self._rate(state)
        exact = not state.values.dropped
        failed = float(state.held()[1]) if exact else rate * state.checked
        return {"failure_rate": rate, "failed": failed, "checked": float(state.checked),
                "passed": 1.0 if self.passes(state) else 0.0, "exact": 1.0 if exact else 0.0}

    def update_groups(self, states: Sequence[UniqueState], frame: pd.DataFrame,
                      groups: Groups) -> None:
        chunk = KeyChunk(frame[input_column(self)])
        rows = np.arange(len(groups.codes)) if groups.rows is None else groups.rows
        known = chunk.codes[rows] >= 0
        rows, codes = rows[known], groups.codes[known]
        checked = np.bincount(codes, minlength=groups.n).tolist()
        for state, n in zip(states, checked, strict=True):
            state.checked += n
        if not len(rows):
            return
        # the distinct (group, key) pairs, sorted, with their events: one 1-d sort
        pairs, counts = np.unique(codes.astype(np.int64) * len(chunk.texts) + chunk.codes[rows],
                                  return_counts=True)
        group, key = np.divmod(pairs, len(chunk.texts))
        add_by_group([state.values for state in states], chunk, group, key, counts)


def expect_unique(column: str | None = None, *, tolerance: float = 0.0,
                  max_keys: int = 20_000) -> Unique:
    """No value of ``column`` (a string or integer every event has) may be in two events
    of a window; ``max_keys`` bounds the state (see :mod:`metrics.uniqueness`).

    >>> check = expect_unique("request_id", tolerance=0.5)
    >>> state = check.new_state()
    >>> state.update(pd.DataFrame({"request_id": ["a", "b", "a", "c"]}))
    >>> check.value(state)["failure_rate"], check.value(state)["passed"]
    (0.5, 1.0)
    """
    return Unique(column, tolerance, max_keys)
