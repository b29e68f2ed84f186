"""The contract every metric aggregate follows: a frozen definition plus a mergeable state.

An :class:`Aggregate` is the *definition*: frozen, serializable, hashable, with a stable
``kind`` name. It makes fresh :class:`State` objects and turns a state into values.
A state is the *running aggregate*: ``update`` on a DataFrame chunk, ``merge`` with a
state of the same definition, ``to_bytes``/``from_bytes``; no I/O.

Research, batch and streaming all call the same methods, so a metric computes the same
numbers in every stage. (The engine feeds many states at once through
:meth:`Aggregate.update_groups`, which by default is ``update`` on each group's rows.)
Built-in states are deterministic and merge exactly, which makes the values
bit-identical whatever the chunking, ordering or partitioning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import pandas as pd

from metrics.groups import Groups

__all__ = [
    "Aggregate",
    "ColumnKind",
    "State",
    "aggregate_from_dict",
    "aggregate_kinds",
    "canonical_json",
    "input_column",
    "values_segments_together",
]

# What an aggregate needs of an input column; checked against the stream schema at
# registration so a mistyped metric fails before it sees data.
# "scalar" is any one value per event (what drift bins), "any" includes a list.
ColumnKind = str  # "numeric" | "bool" | "category" | "str" | "list[str]" | "scalar" | "any"


@runtime_checkable
class State(Protocol):
    """A mergeable running aggregate with no I/O."""

    def update(self, frame: pd.DataFrame) -> None:
        """Absorb a chunk of events (vectorised)."""

    def merge(self, other: Self) -> None:
        """Absorb another state of the same definition; associative and commutative."""

    def to_bytes(self) -> bytes:
        """Serialize exactly; the aggregate's ``state_from_bytes`` gives an equal state back.

        Deserializing goes through the aggregate rather than a ``State.from_bytes``
        classmethod because the parameters (sketch accuracy, reference bins) belong to the
        definition and need not be repeated in every stored state.
        """


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the input of every stable hash."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


_KINDS: dict[str, type[Aggregate]] = {}


class Aggregate(ABC):
    """A frozen, serializable definition of how events become values.

    Subclasses are frozen dataclasses with a class attribute ``kind``: a stable type name
    that, with the parameters, makes the aggregate's id. Renaming a Python module does not
    change it, so stored results survive refactoring.
    """

    kind: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("kind")
        if kind is None:
            return
        if kind in _KINDS and _KINDS[kind].__qualname__ != cls.__qualname__:
            raise TypeError(f"aggregate kind {kind!r} is defined twice")
        _KINDS[kind] = cls

    # -- the definition ---------------------------------------------------------------

    @abstractmethod
    def columns(self) -> dict[str, ColumnKind]:
        """The input columns this aggregate reads, with what kind of column each must be."""

    @abstractmethod
    def fields(self) -> tuple[str, ...]:
        """The names of the values :meth:`value` returns, in a stable order."""

    @abstractmethod
    def new_state(self) -> State:
        """An empty state."""

    @abstractmethod
    def state_from_bytes(self, data: bytes) -> State:
        """Rebuild a state of this aggregate from :meth:`State.to_bytes` output."""

    @abstractmethod
    def value(self, state: Any) -> dict[str, float]:
        """The values of a state, one per field."""

    def window_values(self, states: Mapping[str, Any]) -> dict[str, dict[str, float]]:
        """The values of one window's states, per segment label.

        Every stage computes stored values through this, with all the segments of a
        window at once, so an aggregate whose decisions are tests can control the error
        rate over every segment tested together (drift does: one correction over the
        columns and segments of a window). By default each state is valued on its own.
        """
        return {segment: self.value(state) for segment, state in states.items()}

    def explain(self, field: str, values: Mapping[str, float], count: int | None
                ) -> str | None:
        """Why a window's ``field`` has its value, from the window's ``values`` (all its
        fields) and ``count``, for an alert's text; None when the value says it all."""
        return None

    def update_groups(self, states: Sequence[Any], frame: pd.DataFrame, groups: Groups
                      ) -> None:
        """Absorb ``frame`` into many states: row ``i`` goes to ``states[groups.codes[i]]``.

        Each state must end up exactly as ``update`` on its rows would leave it. This
        default does just that, group by group; built-ins override it with one vectorised
        pass over the whole frame, which is what keeps a micro-batch touching hundreds of
        (segment, window) states cheap.
        """
        # Only the declared columns, as ``update`` on one state gets them: the engine hands
        # over the whole chunk (bookkeeping columns included) for the vectorised overrides.
        columns = frame[list(self.columns())]
        for state, rows in zip(states, groups.frames(columns), strict=True):
            state.update(rows)

    # -- binding ----------------------------------------------------------------------

    def unbound_column(self) -> bool:
        """True when the aggregate's input column is left for a per-event function to fill."""
        return getattr(self, "column", "") is None

    def with_column(self, column: str) -> Self:
        """A copy reading ``column``: how ``@mon.metric`` feeds a per-event function in."""
        if not dataclasses.is_dataclass(self) or "column" not in {
            f.name for f in dataclasses.fields(self)
        }:
            raise TypeError(f"{self.kind} aggregates more than one column")
        return dataclasses.replace(self, column=column)

    def bind_schema(self, names: Sequence[str]) -> Self:
        """A copy that knows the field names of the stream it is registered on (the
        registry asks every aggregate); only one that judges the fields beyond the schema
        needs them (``metrics.expect_no_unknown_fields``): the others return themselves."""
        return self

    def judges_unknown_fields(self) -> bool:
        """Whether it reads the fields an event has beyond the stream's schema (the
        streaming stage marks the events that have one only when a metric does: see
        :func:`streaming.messages.decode_messages`)."""
        return False

    def reference_name(self) -> str | None:
        """The name of the reference profile this aggregate compares against, if any."""
        return None

    def reference_calibrations(self) -> tuple[tuple[str, str], ...]:
        """The (score, label) column pairs whose calibration this aggregate reads from its
        reference profile, to be fitted with the profile from labelled reference data
        (performance estimation needs one); none by default."""
        return ()

    def bind_reference(self, profile: Any) -> Self:
        """A copy that compares against ``profile``; only drift aggregates take one."""
        raise TypeError(f"{self.kind} does not compare against a reference profile")

    # -- serialization ----------------------------------------------------------------

    def params(self) -> dict[str, Any]:
        """The parameters that define this aggregate, JSON-ready."""
        if not dataclasses.is_dataclass(self):
            raise TypeError(f"{type(self).__name__} must be a dataclass")
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.params()}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Self:
        """Inverse of :meth:`params`; subclasses with nested parameters override it."""
        return cls(**params)

    @property
    def id(self) -> str:
        """A stable hash of the kind and parameters."""
        return hashlib.sha256(canonical_json(self.to_dict()).encode()).hexdigest()[:16]


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


def aggregate_from_dict(data: dict[str, Any]) -> Aggregate:
    """Rebuild an aggregate from :meth:`Aggregate.to_dict`."""
    params = dict(data)
    kind = params.pop("kind")
    try:
        cls = _KINDS[kind]
    except KeyError:
        known = ", ".join(sorted(_KINDS))
        raise ValueError(f"unknown aggregate kind {kind!r}; known kinds: {known}") from None
    return cls.from_params(params)


def input_column(aggregate: Aggregate) -> str:
    """The one column ``aggregate`` reads; a ValueError while it is left open for a
    per-event function to fill (see :meth:`Aggregate.unbound_column`)."""
    column: str | None = getattr(aggregate, "column", None)
    if column is None:
        raise ValueError(
            f"{aggregate.kind} has no input column: pass one, or use it as the aggregate of "
            "a per-event function with @mon.metric"
        )
    return column


def aggregate_kinds() -> Mapping[str, type[Aggregate]]:
    """Every registered aggregate kind and its class (a kind registers when its class is
    defined, so only those of imported modules)."""
    return MappingProxyType(_KINDS)


def values_segments_together(aggregate: Aggregate) -> bool:
    """Whether ``aggregate`` values a window's segments together (overrides
    :meth:`Aggregate.window_values`): then a change to one segment may change the others."""
    return type(aggregate).window_values is not Aggregate.window_values
