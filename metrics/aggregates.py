"""Exact aggregates: count, sum, mean, rate, null rate and category share.

All of them are integers or an exact float sum underneath, so they merge exactly and give
bit-identical values whatever the chunking.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Self

import numpy as np
import pandas as pd

from metrics.base import Aggregate, ColumnKind, input_column
from metrics.conditions import Condition, nan_rows
from metrics.counters import CounterState, RowCounting, every_row, ratio
from metrics.exact_sum import ExactSum
from metrics.frame_columns import column_values
from metrics.groups import Groups

__all__ = ["Count", "Mean", "NullRate", "Rate", "Share", "Sum", "count", "mean", "null_rate",
           "rate", "share", "sum_of"]


class _CounterAggregate(RowCounting, Aggregate):
    """An aggregate whose state is a few integer counters."""

    counter_names: tuple[str, ...] = ("hits", "rows")


@dataclass(frozen=True)
class Count(_CounterAggregate):
    """The number of events."""

    kind = "count"
    counter_names = ("rows",)

    def columns(self) -> dict[str, ColumnKind]:
        return {}

    def fields(self) -> tuple[str, ...]:
        return ("count",)

    def row_counts(self, frame: pd.DataFrame) -> Mapping[str, np.ndarray]:
        return {"rows": every_row(frame)}

    def value(self, state: CounterState) -> dict[str, float]:
        return {"count": float(state.counts["rows"])}


class SumState:
    """An exact sum and the number of non-null values behind it."""

    __slots__ = ("column", "n", "total")

    def __init__(self, column: str) -> None:
        self.column = column
        self.total = ExactSum()
        self.n = 0

    def update(self, frame: pd.DataFrame) -> None:
        values = frame[self.column].to_numpy(dtype=np.float64, na_value=np.nan)
        self.add(values[~np.isnan(values)])

    def add(self, values: np.ndarray) -> None:
        """Add non-null values; raises on inf (the stages reject it before it gets here)."""
        self.total.add(values)
        self.n += len(values)

    def merge(self, other: Self) -> None:
        if other.column != self.column:
            raise ValueError(f"cannot merge a sum of {other.column!r} into one of {self.column!r}")
        self.total.merge(other.total)
        self.n += other.n

    def to_bytes(self) -> bytes:
        return json.dumps({"units": hex(self.total.units), "n": self.n}).encode()

    def load(self, data: bytes) -> Self:
        raw = json.loads(data)
        self.total = ExactSum(int(raw["units"], 16))
        self.n = int(raw["n"])
        return self

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, SumState) and self.column == other.column
                and self.total == other.total and self.n == other.n)


def _add_groups(states: Sequence[SumState], column: pd.Series, groups: Groups) -> None:
    """Each state's group of a column's non-null values, from one conversion."""
    values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    for state, part in zip(states, groups.split_finite(values), strict=True):
        state.add(part)


@dataclass(frozen=True)
class _OverExactSum(Aggregate):
    """An aggregate whose state is a numeric column's exact sum and count (nulls skipped)."""

    column: str | None

    def columns(self) -> dict[str, ColumnKind]:
        return {input_column(self): "numeric"}

    def new_state(self) -> SumState:
        return SumState(input_column(self))

    def update_groups(self, states: Sequence[SumState], frame: pd.DataFrame, groups: Groups
                      ) -> None:
        _add_groups(states, frame[input_column(self)], groups)

    def state_from_bytes(self, data: bytes) -> SumState:
        return self.new_state().load(data)


@dataclass(frozen=True)
class Sum(_OverExactSum):
    """The exact sum of a numeric column (nulls skipped)."""

    kind = "sum"

    def fields(self) -> tuple[str, ...]:
        return ("sum",)

    def value(self, state: SumState) -> dict[str, float]:
        return {"sum": state.total.value()}


@dataclass(frozen=True)
class Mean(_OverExactSum):
    """The mean of a numeric column (nulls skipped), from an exact sum."""

    kind = "mean"

    def fields(self) -> tuple[str, ...]:
        return ("mean",)

    def value(self, state: SumState) -> dict[str, float]:
        # Python's int/int division rounds once, so the mean is as exact as a float can be.
        if state.n == 0:
            return {"mean": float("nan")}
        return {"mean": _exact_ratio(state.total.units, state.n)}


@dataclass(frozen=True)
class Rate(_CounterAggregate):
    """The share of events for which a condition holds.

    ``condition`` is a boolean column or a pandas expression such as
    ``"latency_ms > 500"``. Events where the condition is null are left out of both sides.
    """

    condition: str
    kind = "rate"

    def __post_init__(self) -> None:
        self._parsed  # noqa: B018 - a condition that does not parse fails here, at definition

    @cached_property
    def _parsed(self) -> Condition:  # parsed once per definition; not part of its id
        try:
            return Condition(self.condition)
        except SyntaxError as err:
            raise ValueError(
                f"rate condition {self.condition!r} is not an expression: {err.msg}"
            ) from None

    def columns(self) -> dict[str, ColumnKind]:
        if self.condition.isidentifier():
            return {self.condition: "bool"}
        return dict.fromkeys(self._parsed.names, "any")

    def fields(self) -> tuple[str, ...]:
        return ("rate",)

    def row_counts(self, frame: pd.DataFrame) -> Mapping[str, np.ndarray]:
        if self.condition.isidentifier():
            held = frame[self.condition]
            known = held.notna().to_numpy()
            hits = np.zeros(len(frame), dtype=bool)
            hits[known] = held[known].astype(bool).to_numpy()
            return {"hits": hits, "rows": known}
        arrays = {name: column_values(frame, name) for name in self._parsed.names}
        compared = self._parsed.evaluate_arrays(arrays)
        if compared is not None:  # numpy float or bool columns, as an assertion judges them
            nan = nan_rows(arrays)
            known = np.ones(len(frame), dtype=bool) if nan is None else ~nan
            return {"hits": compared & known, "rows": known}
        held = pd.Series(self._parsed.evaluate(frame), index=frame.index)
        known = np.logical_and.reduce(
            [frame[name].notna().to_numpy() for name in self._parsed.names]
            + [np.ones(len(frame), dtype=bool)]
        )
        # NA where a nullable column is null: those rows are not known, so count nowhere.
        return {"hits": held.to_numpy(dtype=bool, na_value=False) & known, "rows": known}

    def value(self, state: CounterState) -> dict[str, float]:
        return {"rate": ratio(state.counts["hits"], state.counts["rows"])}


@dataclass(frozen=True)
class NullRate(_CounterAggregate):
    """The share of events where a column is missing."""

    column: str | None
    kind = "null_rate"

    def columns(self) -> dict[str, ColumnKind]:
        return {input_column(self): "any"}

    def fields(self) -> tuple[str, ...]:
        return ("null_rate",)

    def row_counts(self, frame: pd.DataFrame) -> Mapping[str, np.ndarray]:
        return {"hits": frame[input_column(self)].isna().to_numpy(), "rows": every_row(frame)}

    def value(self, state: CounterState) -> dict[str, float]:
        return {"null_rate": ratio(state.counts["hits"], state.counts["rows"])}


@dataclass(frozen=True)
class Share(_CounterAggregate):
    """The share of all events whose column equals a category."""

    column: str
    category: str | int | bool
    kind = "share"

    def columns(self) -> dict[str, ColumnKind]:
        return {self.column: "category"}

    def fields(self) -> tuple[str, ...]:
        return ("share",)

    def row_counts(self, frame: pd.DataFrame) -> Mapping[str, np.ndarray]:
        hits = (frame[self.column] == self.category).to_numpy(dtype=bool, na_value=False)
        return {"hits": hits, "rows": every_row(frame)}

    def value(self, state: CounterState) -> dict[str, float]:
        return {"share": ratio(state.counts["hits"], state.counts["rows"])}


def _exact_ratio(units: int, n: int) -> float:
    from metrics.exact_sum import _OFFSET

    try:
        return units / (n << _OFFSET)
    except OverflowError:
        return float("inf") if units > 0 else float("-inf")


# Presets: functions that return specs, as the rest of the library does.
def count() -> Count:
    """The number of events (field ``count``).

    >>> agg = count()
    >>> state = agg.new_state()
    >>> state.update(pd.DataFrame({"x": [1, 2, 3]}))
    >>> agg.value(state)
    {'count': 3.0}
    """
    return Count()


def sum_of(column: str | None = None) -> Sum:
    """The exact sum of ``column``, nulls skipped (field ``sum``); without a ``column``, the
    aggregate of a per-event function (``@mon.metric``).

    >>> agg = sum_of("amount")
    >>> state = agg.new_state()
    >>> state.update(pd.DataFrame({"amount": [0.1, 0.2, None]}))
    >>> agg.value(state)
    {'sum': 0.30000000000000004}
    """
    return Sum(column)


def mean(column: str | None = None) -> Mean:
    """The mean of ``column``, nulls skipped (field ``mean``); without a ``column``, the
    aggregate of a per-event function (``@mon.metric``).

    >>> agg = mean("latency_ms")
    >>> state = agg.new_state()
    >>> state.update(pd.DataFrame({"latency_ms": [10.0, 20.0, None, 30.0]}))
    >>> agg.value(state)
    {'mean': 20.0}
    """
    return Mean(column)


def rate(condition: str) -> Rate:
    """The share of events where ``condition`` holds (field ``rate``): a boolean column or a
    pandas expression such as ``"latency_ms > 500"``.

    >>> agg = rate("clicked")
    >>> state = agg.new_state()
    >>> state.update(pd.DataFrame({"clicked": [True, False, False, None]}))
    >>> agg.value(state)
    {'rate': 0.3333333333333333}
    >>> slow = rate("latency_ms > 500")
    >>> state = slow.new_state()
    >>> state.update(pd.DataFrame({"latency_ms": [100.0, 700.0, 900.0, 50.0]}))
    >>> slow.value(state)
    {'rate': 0.5}
    """
    return Rate(condition)


def null_rate(column: str | None = None) -> NullRate:
    """The share of events where ``column`` is null (field ``null_rate``); without a
    ``column``, the aggregate of a per-event function (``@mon.metric``).

    >>> agg = null_rate("country")
    >>> state = agg.new_state()
    >>> state.update(pd.DataFrame({"country": ["SE", None, "DE", None]}))
    >>> agg.value(state)
    {'null_rate': 0.5}
    """
    return NullRate(column)


def share(column: str, category: str | int | bool) -> Share:
    """The share of all events whose ``column`` equals ``category`` (field ``share``).

    >>> agg = share("device", "ios")
    >>> state = agg.new_state()
    >>> state.update(pd.DataFrame({"device": ["ios", "android", "ios", "web"]}))
    >>> agg.value(state)
    {'share': 0.5}
    """
    return Share(column, category)
