"""Consistency: do the events of one key agree on a field within a window?

"Events with the same ``request_id`` agree on ``prediction``", "a user sees at most two
rankers an hour": a key violates the check when its events in the window (and segment)
hold more than ``max_values`` distinct values of the field (nulls left out). That depends
on the set of a key's values only, never on the order the events came in, so the state
merges exactly: a union of value sets.

**Why distinct values, not changes.** "A user's top carousel changes at most N times an
hour" counts changes in event-time order, and that needs all of a key's (time, value)
pairs: two parts of a window, cut anywhere, interleave in time, so no bounded summary of
each part tells how many changes their union makes. The distinct values of a key merge
by union, and at most ``max_values + 1`` of them decide the check. Since a key with
``d`` distinct values changed at least ``d - 1`` times, ``max_values=N + 1`` never flags
a key that changed at most N times; it misses a key flapping between two values.

Values per segment and window:

- ``violating_keys``: keys with more than ``max_values`` distinct values;
- ``violating_key_rate``: violating keys / keys with a non-null value;
- ``keys``: keys with a non-null value;
- ``exact``: 1.0 while the state holds every key; 0.0 once the window had more than
  ``max_keys`` keys, when the other three are estimates (below).

**Memory.** The state keeps, for at most ``max_keys`` keys (those of the smallest hash of
the key, :mod:`metrics.key_table`), the key's text, its count of events and at most
``max_values + 1`` of its distinct values (those of the smallest hash of their canonical
JSON text): so at most ``max_keys`` x (``max_values`` + 2) texts, whatever the number of
events. A window with more keys keeps a uniform sample of them, each complete: the rate
is the sample's and ``violating_keys`` and ``keys`` are estimated from it (relative error
about ``1 / sqrt(max_keys)``), identically in every stage, and ``exact`` says so.

The examples to look at are the violating keys of the smallest hash of the key (up to
``k``), each with its events and its conflicting values.

>>> check = consistency("prediction", key="request_id", k=2)
>>> state = check.new_state()
>>> state.update(pd.DataFrame({"request_id": ["r1", "r2", "r1", "r3", "r2"],
...                            "prediction": ["cat", "dog", "cow", None, "dog"]}))
>>> check.value(state)
{'violating_keys': 1.0, 'violating_key_rate': 0.5, 'keys': 2.0, 'exact': 1.0}
>>> check.examples(state)
[{'id': 'r1', 'severity': 2.0, 'events': 2, 'values': ['cow', 'cat']}]
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import pandas as pd

from metrics.assertions import ID
from metrics.base import Aggregate, ColumnKind, canonical_json, input_column
from metrics.bottom_k import BottomK, id_hash, id_hashes
from metrics.counters import ratio
from metrics.groups import Groups
from metrics.json_values import json_value
from metrics.key_table import MAX_KEYS, KeyChunk, estimated_keys, offer

__all__ = ["Consistency", "ConsistencyState", "consistency"]

MAX_VALUES = 100  # a key keeps at most this many + 1 distinct values
MAX_EXAMPLES = 10_000

# A key's record: its events, and its lowest distinct values as (hash, JSON text), sorted
KeyRecord = tuple[int, tuple[tuple[int, str], ...]]


class _Union:
    """Combines two records of a key: events added, values united and cut to ``keep``."""

    __slots__ = ("keep",)

    def __init__(self, keep: int) -> None:
        self.keep = keep

    def __call__(self, a: KeyRecord, b: KeyRecord) -> KeyRecord:
        if a[1] == b[1]:
            return a[0] + b[0], a[1]
        return a[0] + b[0], tuple(sorted(set(a[1]) | set(b[1]))[: self.keep])


class ConsistencyState:
    """The records of the window's keys of the lowest hash (see the module's Memory)."""

    __slots__ = ("keys", "spec")

    def __init__(self, spec: Consistency) -> None:
        self.spec = spec
        self.keys: BottomK[KeyRecord] = BottomK(spec.max_keys,
                                                combine=_Union(spec.max_values + 1))

    def update(self, frame: pd.DataFrame) -> None:
        self.spec.update_groups([self], frame, Groups(np.zeros(len(frame), np.intp), 1))

    def merge(self, other: Self) -> None:
        if other.spec != self.spec:
            raise ValueError(f"cannot merge a consistency state of {other.spec.to_dict()} "
                             f"into one of {self.spec.to_dict()}")
        self.keys.merge(other.keys)

    def violating(self) -> int:
        """Keys held with more than ``max_values`` distinct values."""
        limit = self.spec.max_values
        return sum(1 for _, (_, values) in self.keys.items() if len(values) > limit)

    def to_bytes(self) -> bytes:
        keys = [[text, events, [value for _, value in values]]
                for text, (events, values) in self.keys.items()]
        return canonical_json({"dropped": self.keys.dropped, "keys": keys}).encode()

    def load(self, data: bytes) -> Self:
        """Fill this empty state from :meth:`to_bytes` output, checking what it holds."""
        raw = json.loads(data)
        keys = raw["keys"]
        spec = self.spec
        if len(keys) > spec.max_keys or (raw["dropped"] and len(keys) != spec.max_keys):
            raise ValueError(f"stored consistency state holds {len(keys)} keys "
                             f"(max_keys={spec.max_keys}, dropped={raw['dropped']})")
        for text, events, values in keys:
            if not (isinstance(text, str) and 1 <= len(values) <= spec.max_values + 1
                    and len(set(values)) == len(values) and int(events) >= len(values)):
                raise ValueError(f"stored consistency state is inconsistent for key "
                                 f"{text!r}: {events} events, values {values}")
        hashes = id_hashes(value for _, _, values in keys for value in values).tolist()
        records = []
        at = 0
        for text, events, values in keys:
            pairs = tuple(sorted(zip(hashes[at: at + len(values)], values, strict=True)))
            at += len(values)
            records.append((text, id_hash(text), (int(events), pairs)))
        self.keys.offer_many(records)
        if len(self.keys) != len(keys):
            raise ValueError("stored consistency state holds a key twice")
        self.keys.dropped = bool(raw["dropped"])
        return self

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ConsistencyState) and self.spec == other.spec
                and self.keys.dropped == other.keys.dropped and self.keys == other.keys)

    def __repr__(self) -> str:
        return (f"ConsistencyState(keys={len(self.keys)}, violating={self.violating()}, "
                f"dropped={self.keys.dropped})")


@dataclass(frozen=True)
class Consistency(Aggregate):
    """Keys whose events disagree on a field within a window (see the module)."""

    column: str | None  # the field compared; None until a per-event function binds it
    key: str
    max_values: int = 1
    k: int = 20
    max_keys: int = 20_000
    kind = "consistency"

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise ValueError("consistency key= must name the column whose events must agree")
        for name, value, low, high in (("max_values", self.max_values, 1, MAX_VALUES),
                                       ("k", self.k, 1, MAX_EXAMPLES),
                                       ("max_keys", self.max_keys, 1, MAX_KEYS)):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"consistency {name}={value!r}: must be a whole number from "
                                 f"{low} to {high}")
        if self.column is not None and self.column == self.key:
            raise ValueError(f"consistency compares another field than its key "
                             f"{self.key!r}")

    @property
    def keep(self) -> tuple[str, ...]:
        """The fields of an example besides its id and severity."""
        return ("events", "values")

    def columns(self) -> dict[str, ColumnKind]:
        return {input_column(self): "any", self.key: ID}

    def fields(self) -> tuple[str, ...]:
        return ("violating_keys", "violating_key_rate", "keys", "exact")

    def new_state(self) -> ConsistencyState:
        input_column(self)  # a check without its field fails here, not in update
        return ConsistencyState(self)

    def state_from_bytes(self, data: bytes) -> ConsistencyState:
        return self.new_state().load(data)

    def value(self, state: ConsistencyState) -> dict[str, float]:
        violating = state.violating()
        rate = ratio(violating, len(state.keys))
        keys = estimated_keys(state.keys)
        exact = not state.keys.dropped
        return {
            "violating_keys": float(violating) if exact else rate * keys,
            "violating_key_rate": rate,
            "keys": keys,
            "exact": 1.0 if exact else 0.0,
        }

    def examples(self, state: ConsistencyState) -> list[dict[str, Any]]:
        """Up to ``k`` violating keys of the lowest hash: the key's text as ``id``, its
        number of distinct values kept as ``severity``, its ``events`` and its
        ``values`` (at most ``max_values + 1``, by hash of their JSON text)."""
        found = []
        for text, (events, values) in state.keys.items():
            if len(values) > self.max_values:
                found.append({"id": text, "severity": float(len(values)), "events": events,
                              "values": [json.loads(value) for _, value in values]})
                if len(found) == self.k:
                    break
        return found

    def update_groups(self, states: Sequence[ConsistencyState], frame: pd.DataFrame,
                      groups: Groups) -> None:
        field = frame[input_column(self)]
        judged = ~field.isna().to_numpy()  # a list is not null; a null list is
        chunk = KeyChunk(frame[self.key])
        judged &= chunk.codes >= 0
        rows = np.arange(len(groups.codes)) if groups.rows is None else groups.rows
        entries = judged[rows]
        if not entries.any():
            return
        rows, codes = rows[entries], groups.codes[entries]
        value_codes, value_texts = _value_codes(field, np.flatnonzero(judged))
        # each distinct text ranked in (hash, text) order, so that a key's values come out
        # of one sort in the order its record keeps them (two codes may spell one text)
        pairs = sorted(set(zip(id_hashes(value_texts).tolist(), value_texts, strict=True)))
        rank_of = {text: rank for rank, (_, text) in enumerate(pairs)}
        ranks = np.array([rank_of[text] for text in value_texts], dtype=np.intp)
        group, key, value, counts = _distinct(codes, chunk.codes[rows],
                                              ranks[value_codes[rows]], groups.n,
                                              len(chunk.texts), len(pairs))
        # one run per (group, key): its events, and its values from the lowest
        key_starts = np.flatnonzero(np.r_[True, (group[1:] != group[:-1])
                                          | (key[1:] != key[:-1])])
        events = np.add.reduceat(counts, key_starts).tolist()
        sizes = np.diff(np.r_[key_starts, len(key)]).tolist()
        firsts, values = key_starts.tolist(), value.tolist()
        keep = self.max_values + 1

        def records(run_of: dict[int, int]) -> Callable[[int], KeyRecord]:
            """A group's record of each key code, from its run of the sorted entries."""
            def record(code: int) -> KeyRecord:
                run = run_of[code]
                first = firsts[run]
                kept = values[first: first + min(sizes[run], keep)]
                return events[run], tuple(pairs[v] for v in kept)
            return record

        run_group, run_key = group[key_starts], key[key_starts]
        group_starts = np.flatnonzero(np.r_[True, run_group[1:] != run_group[:-1]])
        for begin, stop in zip(group_starts.tolist(),
                               [*group_starts[1:].tolist(), len(key_starts)], strict=True):
            run_of = dict(zip(run_key[begin:stop].tolist(), range(begin, stop), strict=True))
            offer(states[int(run_group[begin])].keys, chunk, run_key[begin:stop],
                  records(run_of))


def _distinct(groups: np.ndarray, keys: np.ndarray, values: np.ndarray, n_groups: int,
              n_keys: int, n_values: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The distinct (group, key, value) entries, sorted, and how many rows each has: one
    1-d sort of a combined code while it fits in 62 bits, else a sort of the rows."""
    if n_groups * n_keys * n_values < 2**62:
        combined = (groups.astype(np.int64) * n_keys + keys) * n_values + values
        distinct, counts = np.unique(combined, return_counts=True)
        group_key, value = np.divmod(distinct, n_values)
        group, key = np.divmod(group_key, n_keys)
        return group, key, value, counts
    triples, counts = np.unique(np.stack([groups, keys, values], axis=1), axis=0,
                                return_counts=True)
    return triples[:, 0], triples[:, 1], triples[:, 2], counts


def _value_codes(field: pd.Series, judged: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Each judged row's code into the distinct values' canonical JSON texts (-1
    elsewhere), and the texts: equal values spell the same in every stage (a float zero
    of either sign as 0.0)."""
    codes = np.full(len(field), -1, dtype=np.intp)
    values = field.iloc[judged]
    if values.dtype == object:  # lists or mixed objects: unhashable, so by text
        texts = [_value_text(v) for v in values.tolist()]
        value_codes, uniques = pd.factorize(pd.Series(texts, dtype=object))
        codes[judged] = value_codes
        return codes, list(uniques)
    value_codes, uniques = pd.factorize(values)
    codes[judged] = value_codes
    return codes, [_value_text(v) for v in uniques.tolist()]


def _value_text(value: Any) -> str:
    value = json_value(value)
    if isinstance(value, float) and value == 0.0:
        value = 0.0  # -0.0 equals 0.0: one value, one text
    return canonical_json(value)


def consistency(field: str | None = None, *, key: str, max_values: int = 1, k: int = 20,
                max_keys: int = 20_000) -> Consistency:
    """Keys whose events hold more than ``max_values`` distinct values of ``field`` in a
    window (1: the events of a key must agree).

    ``key`` names a string or integer column every event has; ``field`` any column (a
    list, such as a ranking, is compared whole), or leave it out to compare a per-event
    function's output (``@mon.metric``). A null value is left out. The state keeps at most
    ``max_keys`` keys (see :mod:`metrics.key_consistency`: past that, ``exact`` is 0 and the
    counts are estimates from a uniform sample of keys) and the examples ``k`` violating
    keys with their values. Fields: ``violating_keys``, ``violating_key_rate``, ``keys``,
    ``exact``.

    >>> check = consistency("carousel", key="user", max_values=2)
    >>> state = check.new_state()
    >>> state.update(pd.DataFrame({"user": [1, 1, 1, 2, 2],
    ...                            "carousel": ["mix", "radio", "hits", "mix", "mix"]}))
    >>> check.value(state)["violating_keys"], check.examples(state)[0]["id"]
    (1.0, '1')
    """
    return Consistency(field, key, max_values, k, max_keys)
