"""A window's validation summary: how many of a stream's expectations it passed.

The summary is an aggregate of its own over the expectations it names
(:mod:`metrics.expectations`, :mod:`metrics.uniqueness`): its state holds one state per
expectation, merged member by member, so it is as exact as they are and the same in
every stage; a window passes an expectation as that expectation's ``passed`` says.
(The members' states are kept again beside the expectations' own metrics: a metric's
value comes from its own state alone in every stage. The checks are not run twice: the
engine hands the summary the per-row counts the expectations' metrics computed for the
same rows (:mod:`metrics.row_memo`); only a uniqueness check, which keeps its values,
takes a second pass and a second copy of them.)

Values: ``expectations`` (how many), ``passed``, ``failed``.

>>> from metrics.expectations import expect_in_set, expect_not_null
>>> summary = validation_summary([expect_not_null("user"), expect_in_set("country",
...                                                                      values=["SE"])])
>>> state = summary.new_state()
>>> state.update(pd.DataFrame({"user": ["a", "b"], "country": ["SE", "DE"]}))
>>> summary.value(state)
{'expectations': 2.0, 'passed': 1.0, 'failed': 1.0}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self, runtime_checkable

import pandas as pd

from metrics.base import Aggregate, ColumnKind, State, aggregate_from_dict
from metrics.counters import RowCounting
from metrics.groups import Groups
from metrics.row_memo import RowMemo

__all__ = ["SummaryState", "ValidationSummary", "validation_summary"]

_LENGTH = 8  # bytes of each member state's length in the serialized summary


@runtime_checkable
class Judged(Protocol):
    """An expectation: an aggregate that says whether a window's state passes it."""

    def passes(self, state: Any) -> bool: ...


class SummaryState:
    """One state per expectation, in the summary's order."""

    __slots__ = ("members", "spec")

    def __init__(self, spec: ValidationSummary) -> None:
        self.spec = spec
        self.members: list[State] = [e.new_state() for e in spec.expectations]

    def update(self, frame: pd.DataFrame) -> None:
        for member in self.members:
            member.update(frame)

    def merge(self, other: Self) -> None:
        if other.spec != self.spec:
            raise ValueError("cannot merge the validation summary of other expectations")
        for mine, theirs in zip(self.members, other.members, strict=True):
            mine.merge(theirs)

    def to_bytes(self) -> bytes:
        return b"".join(len(data).to_bytes(_LENGTH, "big") + data
                        for data in (m.to_bytes() for m in self.members))

    def load(self, data: bytes) -> Self:
        members, at = [], 0
        for expectation in self.spec.expectations:
            size = int.from_bytes(data[at: at + _LENGTH], "big")
            at += _LENGTH
            if at + size > len(data):
                raise ValueError("stored validation summary is cut short")
            members.append(expectation.state_from_bytes(data[at: at + size]))
            at += size
        if at != len(data):
            raise ValueError("stored validation summary holds more than its expectations")
        self.members = members
        return self

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, SummaryState) and self.spec == other.spec
                and self.members == other.members)


@dataclass(frozen=True)
class ValidationSummary(Aggregate):
    """How many of ``expectations`` a window passes."""

    expectations: tuple[Aggregate, ...]
    kind = "validation_summary"

    def __post_init__(self) -> None:
        object.__setattr__(self, "expectations", tuple(self.expectations))
        if not self.expectations:
            raise ValueError("a validation summary needs at least one expectation")
        for expectation in self.expectations:
            if not isinstance(expectation, Aggregate) or not isinstance(expectation, Judged):
                raise ValueError(f"a validation summary sums expectations "
                                 f"(metrics.expect_...), not {expectation!r}")

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Self:
        return cls(tuple(aggregate_from_dict(e) for e in params["expectations"]))

    def bind_schema(self, names: Sequence[str]) -> Self:
        return type(self)(tuple(e.bind_schema(names) for e in self.expectations))

    def judges_unknown_fields(self) -> bool:
        return any(e.judges_unknown_fields() for e in self.expectations)

    def columns(self) -> dict[str, ColumnKind]:
        read: dict[str, ColumnKind] = {}
        for expectation in self.expectations:
            for column, kind in expectation.columns().items():
                if read.get(column, "any") == "any":  # the strictest need of a column
                    read[column] = kind
        return read

    def fields(self) -> tuple[str, ...]:
        return ("expectations", "passed", "failed")

    def new_state(self) -> SummaryState:
        return SummaryState(self)

    def state_from_bytes(self, data: bytes) -> SummaryState:
        return self.new_state().load(data)

    def value(self, state: SummaryState) -> dict[str, float]:
        passed = sum(1 for e, member in zip(self.expectations, state.members, strict=True)
                     if isinstance(e, Judged) and e.passes(member))
        total = len(self.expectations)
        return {"expectations": float(total), "passed": float(passed),
                "failed": float(total - passed)}

    def update_groups(self, states: Sequence[SummaryState], frame: pd.DataFrame,
                      groups: Groups) -> None:
        self.update_groups_memo(states, frame, groups, RowMemo())

    def update_groups_memo(self, states: Sequence[SummaryState], frame: pd.DataFrame,
                           groups: Groups, memo: RowMemo) -> None:
        """:meth:`update_groups`, each member that counts rows taking its per-row counts
        from ``memo``: the engine gives the summary the memo of the expectations' own
        metrics, so a check judges each row once (:mod:`metrics.row_memo`)."""
        for i, expectation in enumerate(self.expectations):
            members: list[Any] = [s.members[i] for s in states]  # the member's own kind
            if isinstance(expectation, RowCounting):
                expectation.update_groups_memo(members, frame, groups, memo)
            else:  # a uniqueness check keeps its values: its own pass
                expectation.update_groups(members, frame, groups)


def validation_summary(expectations: Sequence[Aggregate]) -> ValidationSummary:
    """How many of ``expectations`` each window passes (fields ``expectations``,
    ``passed``, ``failed``); :meth:`monitor.Monitor.expectations` registers one beside the
    expectations' own metrics.

    >>> from metrics.expectations import expect_in_range
    >>> summary = validation_summary([expect_in_range("score", low=0.0, high=1.0)])
    >>> state = summary.new_state()
    >>> state.update(pd.DataFrame({"score": [0.5, 0.7]}))
    >>> summary.value(state)["passed"]
    1.0
    """
    return ValidationSummary(tuple(expectations))
