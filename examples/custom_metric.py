"""A metric state of your own: the worst (highest) carousel rank a user was shown.

A state needs ``update`` (a DataFrame chunk, vectorised), ``merge`` (associative and
commutative: stages split the events any way they like), and ``to_bytes``; its aggregate
(a frozen dataclass with a ``kind``) says which columns it reads, which fields it
returns, and how to rebuild a state from bytes. Keep it deterministic and exact and it
runs unchanged in research, batch and streaming, with identical values in each.

>>> import pandas as pd
>>> aggregate = WorstRank("fav_carousel_rank")
>>> a, b = aggregate.new_state(), aggregate.new_state()
>>> a.update(pd.DataFrame({"fav_carousel_rank": [1, 4, 2]}))
>>> b.update(pd.DataFrame({"fav_carousel_rank": [3, None]}))
>>> a.merge(b)
>>> aggregate.value(a)
{'worst': 4.0, 'seen': 4.0}
>>> aggregate.value(aggregate.state_from_bytes(a.to_bytes())) == aggregate.value(a)
True

Register it like a built-in::

    mon.metric("worst_rank", "home", WorstRank("fav_carousel_rank"), window="1h",
               segment_by=["country"])
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import ClassVar, Self

import pandas as pd

from metrics.base import Aggregate, ColumnKind


class WorstRankState:
    __slots__ = ("column", "seen", "worst")

    def __init__(self, column: str, worst: float = -math.inf, seen: int = 0) -> None:
        self.column = column
        self.worst = worst
        self.seen = seen

    def update(self, frame: pd.DataFrame) -> None:
        values = frame[self.column].dropna()
        if len(values):
            self.worst = max(self.worst, float(values.max()))
            self.seen += len(values)

    def merge(self, other: Self) -> None:
        self.worst = max(self.worst, other.worst)
        self.seen += other.seen

    def to_bytes(self) -> bytes:
        return json.dumps([self.worst if self.seen else None, self.seen]).encode()


@dataclass(frozen=True)
class WorstRank(Aggregate):
    kind: ClassVar[str] = "example.worst_rank"
    column: str

    def columns(self) -> dict[str, ColumnKind]:
        return {self.column: "numeric"}

    def fields(self) -> tuple[str, ...]:
        return ("worst", "seen")

    def new_state(self) -> WorstRankState:
        return WorstRankState(self.column)

    def state_from_bytes(self, data: bytes) -> WorstRankState:
        worst, seen = json.loads(data)
        return WorstRankState(self.column, -math.inf if worst is None else worst, seen)

    def value(self, state: WorstRankState) -> dict[str, float]:
        return {"worst": state.worst if state.seen else math.nan, "seen": float(state.seen)}
