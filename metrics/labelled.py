"""An aggregate over the labelled predictions of a window, with the window's label coverage.

A metric that needs labels (accuracy, AUC ... of a prediction stream whose labels come on
another stream) sees every prediction of its window, each with its label joined when one
was found (:mod:`monitor.label_join` does the join and marks the rows that got one in the
column :data:`LABELLED`). :class:`Labelled` wraps the metric's aggregate: the inner
aggregate absorbs the labelled rows only, and two exact counters keep how many
predictions and how many labelled predictions the window had. Its values are the inner
aggregate's fields plus:

- ``label_coverage``: labelled / predictions (NaN for a window without predictions);
- ``labelled`` and ``predictions``: the two counts, as floats like every stored value.

Counts are integers and the inner state merges exactly, so a labelled metric keeps every
promise of its inner aggregate: any chunking and merge order give the same bytes.

>>> import metrics
>>> agg = Labelled(metrics.accuracy("clicked", "predicted"))
>>> state = agg.new_state()
>>> state.update(pd.DataFrame({"clicked": [True, None, False, None],
...                            "predicted": [True, True, True, False],
...                            LABELLED: [True, False, True, False]}))
>>> agg.value(state)
{'accuracy': 0.5, 'label_coverage': 0.5, 'labelled': 2.0, 'predictions': 4.0}
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import pandas as pd

from metrics.base import Aggregate, ColumnKind, State, aggregate_from_dict
from metrics.counters import ratio
from metrics.groups import Groups

__all__ = ["LABELLED", "LABEL_FIELDS", "Labelled", "LabelledState"]

# The join's mark of a prediction that got a label. User column names start with a letter,
# so this one cannot clash with a field of a stream.
LABELLED = "__labelled"
LABEL_FIELDS = ("label_coverage", "labelled", "predictions")

_HEADER = struct.Struct("<4sqq")  # magic, predictions, labelled
_MAGIC = b"DML1"


class LabelledState:
    """The inner aggregate's state over labelled rows, and the two counts."""

    __slots__ = ("inner", "labelled", "predictions")

    def __init__(self, inner: State) -> None:
        self.inner = inner
        self.predictions = 0
        self.labelled = 0

    def update(self, frame: pd.DataFrame) -> None:
        mask = labelled_mask(frame)
        self.predictions += len(frame)
        self.labelled += int(np.count_nonzero(mask))
        self.inner.update(frame if mask.all() else frame[mask])

    def merge(self, other: Self) -> None:
        self.inner.merge(other.inner)
        self.predictions += other.predictions
        self.labelled += other.labelled

    def to_bytes(self) -> bytes:
        return _HEADER.pack(_MAGIC, self.predictions, self.labelled) + self.inner.to_bytes()

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, LabelledState) and self.inner == other.inner
                and (self.predictions, self.labelled) == (other.predictions, other.labelled))

    def __repr__(self) -> str:
        return (f"LabelledState({self.inner!r}, predictions={self.predictions}, "
                f"labelled={self.labelled})")


def labelled_mask(frame: pd.DataFrame) -> np.ndarray:
    """The rows of ``frame`` that got a label; a ValueError when no join marked them."""
    if LABELLED not in frame.columns:
        raise ValueError(
            f"a labelled aggregate needs predictions joined to their labels (column "
            f"{LABELLED!r}, set by monitor.label_join.join_labels); these events were not "
            "joined: pass the metric's labels to the stage")
    return frame[LABELLED].to_numpy(dtype=bool, na_value=False)


@dataclass(frozen=True)
class Labelled(Aggregate):
    """``inner`` over the predictions that got a label, with the window's label coverage."""

    inner: Aggregate
    kind = "labelled"

    def __post_init__(self) -> None:
        if not isinstance(self.inner, Aggregate) or isinstance(self.inner, Labelled):
            raise ValueError(f"Labelled wraps one metrics aggregate, got {self.inner!r}")
        try:
            clash = set(LABEL_FIELDS) & set(self.inner.fields())
        except ValueError:  # fields follow a reference profile not bound yet
            clash = set()
        if clash:
            raise ValueError(f"{self.inner.kind} has fields {sorted(clash)}, which the label "
                             "coverage fields use")

    def columns(self) -> dict[str, ColumnKind]:
        return {**self.inner.columns(), LABELLED: "bool"}

    def fields(self) -> tuple[str, ...]:
        return (*self.inner.fields(), *LABEL_FIELDS)

    def new_state(self) -> LabelledState:
        return LabelledState(self.inner.new_state())

    def state_from_bytes(self, data: bytes) -> LabelledState:
        if len(data) < _HEADER.size:
            raise ValueError("not labelled state bytes (too short)")
        magic, predictions, labelled = _HEADER.unpack_from(data)
        if magic != _MAGIC or not 0 <= labelled <= predictions:
            raise ValueError("not labelled state bytes (bad header)")
        state = LabelledState(self.inner.state_from_bytes(data[_HEADER.size:]))
        state.predictions, state.labelled = predictions, labelled
        return state

    def value(self, state: LabelledState) -> dict[str, float]:
        return {**self.inner.value(state.inner), **_label_values(state)}

    def window_values(self, states: Mapping[str, Any]) -> dict[str, dict[str, float]]:
        # the inner aggregate values its segments together (drift corrects over them)
        inner = self.inner.window_values({s: state.inner for s, state in states.items()})
        return {s: {**inner[s], **_label_values(state)} for s, state in states.items()}

    def explain(self, field: str, values: Mapping[str, float], count: int | None
                ) -> str | None:
        why = self.inner.explain(field, values, count)
        coverage = values.get("label_coverage")
        if field in LABEL_FIELDS or coverage is None or coverage != coverage:
            return why
        labelled = (f"over {values['labelled']:.0f} labelled of "
                    f"{values['predictions']:.0f} predictions ({coverage:.1%} coverage)")
        return labelled if why is None else f"{why}; {labelled}"

    def update_groups(self, states: Sequence[Any], frame: pd.DataFrame, groups: Groups
                      ) -> None:
        mask = labelled_mask(frame)
        sizes = groups.sizes().tolist()
        labelled = groups.sums(mask).tolist()
        for state, n, k in zip(states, sizes, labelled, strict=True):
            state.predictions += n
            state.labelled += k
        rows = np.arange(len(frame)) if groups.rows is None else groups.rows
        keep = mask[rows]
        position = np.cumsum(mask) - 1  # a labelled row's position among the labelled
        inner_groups = Groups(groups.codes[keep], groups.n,
                              None if groups.rows is None else position[rows[keep]])
        self.inner.update_groups([s.inner for s in states],
                                 frame if mask.all() else frame[mask], inner_groups)

    # -- binding and serialization: the inner aggregate's ----------------------------------

    def unbound_column(self) -> bool:
        return self.inner.unbound_column()

    def with_column(self, column: str) -> Self:
        return type(self)(self.inner.with_column(column))

    def reference_name(self) -> str | None:
        return self.inner.reference_name()

    def judges_unknown_fields(self) -> bool:
        return self.inner.judges_unknown_fields()

    def bind_reference(self, profile: Any) -> Self:
        return type(self)(self.inner.bind_reference(profile))

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Self:
        return cls(aggregate_from_dict(params["inner"]))


def _label_values(state: LabelledState) -> dict[str, float]:
    return {"label_coverage": ratio(state.labelled, state.predictions),
            "labelled": float(state.labelled), "predictions": float(state.predictions)}
