"""Data expectations: what each event's fields should be, as a share of events failing.

Each expectation is an aggregate whose values per segment and window are

- ``failure_rate``: the events that fail it / the events it checked;
- ``failed`` and ``checked``: those counts (exact);
- ``passed``: 1.0 when ``failure_rate`` is at most ``tolerance`` (or nothing was
  checked), else 0.0 — the default alert rule of :meth:`monitor.Monitor.expectations` is
  ``failure_rate`` above ``tolerance``, and its validation summary counts ``passed``.

What is checked: every event for :func:`expect_not_null` and
:func:`expect_no_unknown_fields`; the events with a value for :func:`expect_in_range`,
:func:`expect_in_set` and :func:`expect_match` (a null is ``expect_not_null``'s to judge,
as Great Expectations has it). :func:`expect_unique` is in :mod:`metrics.uniqueness`.

>>> check = expect_in_range("score", low=0.0, high=1.0)
>>> state = check.new_state()
>>> state.update(pd.DataFrame({"score": [0.2, 1.5, None, -0.1, 1.0]}))
>>> check.value(state)
{'failure_rate': 0.5, 'failed': 2.0, 'checked': 4.0, 'passed': 0.0}
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Self

import numpy as np
import pandas as pd

from metrics.base import Aggregate, ColumnKind, input_column
from metrics.counters import CounterState, RowCounting, ratio

__all__ = [
    "BOOKKEEPING_PREFIX",
    "UNKNOWN_FIELDS",
    "Expectation",
    "InRange",
    "InSet",
    "Matches",
    "NoUnknownFields",
    "NotNull",
    "expect_in_range",
    "expect_in_set",
    "expect_match",
    "expect_no_unknown_fields",
    "expect_not_null",
    "passes",
]

# Columns a stage adds to the events it hands the metrics (a Kafka message's partition
# and offset): not fields of the event, so never unknown ones.
BOOKKEEPING_PREFIX = "__"
# Streaming reads only the schema's fields of a message's events, and marks in this
# column the events that had another one with a value (streaming.messages).
UNKNOWN_FIELDS = BOOKKEEPING_PREFIX + "unknown_fields"


def passes(failed: int, checked: int, tolerance: float) -> bool:
    """Whether a window passes: nothing checked, or a failure rate of at most tolerance."""
    return checked == 0 or failed / checked <= tolerance


def check_tolerance(kind: str, tolerance: float) -> None:
    if (isinstance(tolerance, bool) or not isinstance(tolerance, int | float)
            or not 0.0 <= tolerance < 1.0):
        raise ValueError(f"{kind} tolerance={tolerance!r}: the share of events allowed to "
                         "fail, from 0 (none, the default) to under 1")


class Expectation(RowCounting, Aggregate):
    """An expectation that judges each event on its own: two counters."""

    counter_names = ("checked", "failed")
    tolerance: float

    def __post_init__(self) -> None:
        check_tolerance(self.kind, self.tolerance)

    def judge(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Which rows it checks, and which of those fail."""
        raise NotImplementedError

    def row_counts(self, frame: pd.DataFrame) -> Mapping[str, np.ndarray]:
        checked, failed = self.judge(frame)
        return {"checked": checked, "failed": checked & failed}

    def fields(self) -> tuple[str, ...]:
        return ("failure_rate", "failed", "checked", "passed")

    def passes(self, state: CounterState) -> bool:
        return passes(state.counts["failed"], state.counts["checked"], self.tolerance)

    def value(self, state: CounterState) -> dict[str, float]:
        failed, checked = state.counts["failed"], state.counts["checked"]
        return {"failure_rate": ratio(failed, checked), "failed": float(failed),
                "checked": float(checked), "passed": 1.0 if self.passes(state) else 0.0}


def _present(values: pd.Series) -> np.ndarray:
    return ~values.isna().to_numpy()


@dataclass(frozen=True)
class NotNull(Expectation):
    """Every event has a value in ``column``."""

    column: str | None
    tolerance: float = 0.0
    kind = "expect_not_null"

    def columns(self) -> dict[str, ColumnKind]:
        return {input_column(self): "any"}

    def judge(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        present = _present(frame[input_column(self)])
        return np.ones(len(frame), dtype=bool), ~present


@dataclass(frozen=True)
class InRange(Expectation):
    """A number in ``[low, high]`` (either bound may be left open)."""

    column: str | None
    low: float | None = None
    high: float | None = None
    tolerance: float = 0.0
    kind = "expect_in_range"

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, bound in (("low", self.low), ("high", self.high)):
            if bound is not None and (isinstance(bound, bool) or not isinstance(
                    bound, int | float) or not math.isfinite(bound)):
                raise ValueError(f"expect_in_range {name}={bound!r} must be a finite number")
        if self.low is None and self.high is None:
            raise ValueError("expect_in_range needs low=, high= or both")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"expect_in_range low={self.low} is above high={self.high}")

    def columns(self) -> dict[str, ColumnKind]:
        return {input_column(self): "numeric"}

    def judge(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        values = frame[input_column(self)].to_numpy(dtype=np.float64, na_value=np.nan)
        checked = ~np.isnan(values)
        failed = np.zeros(len(values), dtype=bool)
        with np.errstate(invalid="ignore"):
            if self.low is not None:
                failed |= values < self.low
            if self.high is not None:
                failed |= values > self.high
        return checked, failed


@dataclass(frozen=True)
class InSet(Expectation):
    """A value among ``values`` (strings, integers or booleans; kept sorted, so the order
    they were given in is not part of the definition)."""

    column: str | None
    values: tuple[Any, ...]
    tolerance: float = 0.0
    kind = "expect_in_set"

    def __post_init__(self) -> None:
        super().__post_init__()
        values = tuple(self.values) if not isinstance(self.values, str) else None
        if not values or not all(isinstance(v, str | int) for v in values):
            raise ValueError(f"expect_in_set values={self.values!r}: give a non-empty list "
                             "of strings, integers or booleans")
        object.__setattr__(self, "values", tuple(sorted(set(values), key=repr)))

    def columns(self) -> dict[str, ColumnKind]:
        return {input_column(self): "category"}

    def judge(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        column = frame[input_column(self)]
        return _present(column), ~column.isin(self.values).to_numpy(dtype=bool)


@dataclass(frozen=True)
class Matches(Expectation):
    """A string that ``pattern`` (a Python regular expression) matches in full."""

    column: str | None
    pattern: str
    tolerance: float = 0.0
    kind = "expect_match"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._regex  # noqa: B018 - a pattern that does not compile fails here

    @cached_property
    def _regex(self) -> re.Pattern[str]:
        if not isinstance(self.pattern, str):
            raise ValueError(f"expect_match pattern={self.pattern!r} must be a string")
        try:
            return re.compile(self.pattern)
        except re.error as err:
            raise ValueError(f"expect_match pattern {self.pattern!r} does not compile: "
                             f"{err}") from None

    def columns(self) -> dict[str, ColumnKind]:
        return {input_column(self): "str"}

    def judge(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        column = frame[input_column(self)]
        checked = _present(column)
        regex = self._regex
        matched = np.zeros(len(column), dtype=bool)
        rows = np.flatnonzero(checked)
        matched[rows] = [regex.fullmatch(text) is not None
                         for text in column.iloc[rows].tolist()]
        return checked, ~matched


@dataclass(frozen=True)
class NoUnknownFields(Expectation):
    """No field besides ``known`` (the stream's, filled in at registration when None).

    An unknown field is one the events carry beyond the schema: it reaches the metrics of
    events read from JSON lines, CSV and Parquet files as a column, from Kafka messages as
    the mark :data:`UNKNOWN_FIELDS`, and never from a SQL table (the batch stage selects
    the schema's columns). A field present with a null value is not counted, as JSON
    ``null`` and a missing key read the same.
    """

    known: tuple[str, ...] | None = None
    tolerance: float = 0.0
    kind = "expect_no_unknown_fields"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.known is not None:
            object.__setattr__(self, "known", tuple(sorted(set(self.known))))

    def bind_schema(self, names: Sequence[str]) -> Self:
        if self.known is not None:
            return self
        return type(self)(tuple(names), self.tolerance)

    def judges_unknown_fields(self) -> bool:
        return True

    def columns(self) -> dict[str, ColumnKind]:
        return {}

    def judge(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        if self.known is None:
            raise ValueError("expect_no_unknown_fields has no known fields: register it "
                             "on a stream (mon.metric or mon.expectations), or pass known=")
        known = set(self.known)
        failed = np.zeros(len(frame), dtype=bool)
        if UNKNOWN_FIELDS in frame.columns:  # a stream's events, marked as they were read
            failed |= frame[UNKNOWN_FIELDS].to_numpy(dtype=bool)
        for name in frame.columns:
            if name not in known and not str(name).startswith(BOOKKEEPING_PREFIX):
                failed |= _present(frame[name])
        return np.ones(len(frame), dtype=bool), failed


def expect_not_null(column: str | None = None, *, tolerance: float = 0.0) -> NotNull:
    """Events must have a value in ``column``; ``tolerance``: the share allowed without.

    >>> check = expect_not_null("user_id")
    >>> state = check.new_state()
    >>> state.update(pd.DataFrame({"user_id": ["a", None, "c", "d"]}))
    >>> check.value(state)
    {'failure_rate': 0.25, 'failed': 1.0, 'checked': 4.0, 'passed': 0.0}
    """
    return NotNull(column, tolerance)


def expect_in_range(column: str | None = None, *, low: float | None = None,
                    high: float | None = None, tolerance: float = 0.0) -> InRange:
    """A number in ``column`` must lie in ``[low, high]`` (nulls are not checked).

    >>> check = expect_in_range("latency_ms", low=0, tolerance=0.01)
    >>> state = check.new_state()
    >>> state.update(pd.DataFrame({"latency_ms": [12.0, -3.0, 40.0, 7.5]}))
    >>> check.value(state)["failure_rate"], check.value(state)["passed"]
    (0.25, 0.0)
    """
    return InRange(column, low, high, tolerance)


def expect_in_set(column: str | None = None, *, values: Sequence[Any],
                  tolerance: float = 0.0) -> InSet:
    """A value of ``column`` must be one of ``values`` (nulls are not checked).

    >>> check = expect_in_set("country", values=["SE", "DE"])
    >>> state = check.new_state()
    >>> state.update(pd.DataFrame({"country": ["SE", "XX", None, "DE"]}))
    >>> check.value(state)
    {'failure_rate': 0.3333333333333333, 'failed': 1.0, 'checked': 3.0, 'passed': 0.0}
    """
    return InSet(column, tuple(values), tolerance)


def expect_match(column: str | None = None, *, pattern: str, tolerance: float = 0.0
                 ) -> Matches:
    """A string in ``column`` must match ``pattern`` in full (nulls are not checked).

    >>> check = expect_match("model", pattern=r"ranker-\\d{4}\\.\\d{2}\\.\\d+")
    >>> state = check.new_state()
    >>> state.update(pd.DataFrame({"model": ["ranker-2026.02.3", "ranker-latest"]}))
    >>> check.value(state)["failed"]
    1.0
    """
    return Matches(column, pattern, tolerance)


def expect_no_unknown_fields(known: Sequence[str] | None = None, *,
                             tolerance: float = 0.0) -> NoUnknownFields:
    """Events must carry no field besides ``known`` (by default the stream's schema, filled
    in when the metric is registered) with a value.

    >>> check = expect_no_unknown_fields(["ts", "user_id"])
    >>> state = check.new_state()
    >>> state.update(pd.DataFrame({"ts": [1, 2], "user_id": ["a", "b"],
    ...                            "debug": [None, "x"]}))
    >>> check.value(state)["failed"]
    1.0
    """
    return NoUnknownFields(None if known is None else tuple(known), tolerance)
