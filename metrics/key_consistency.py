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
events (and, between reads, recent chunks' keys not yet merged in: fewer than
``max(max_keys, 4096)``, see :mod:`metrics.key_table`). A window with more keys keeps a
uniform sample of them, each complete: the rate is the sample's and ``violating_keys``
and ``keys`` are estimated from it (relative error about ``1 / sqrt(max_keys)``),
identically in every stage, and ``exact`` says so. A rule on an estimated count fires by
chance near its threshold: :func:`metrics.consistency_alarms.rule_fire_chance` says how
often, to size ``max_keys`` by.

**Bytes.** The state packs (:mod:`metrics.packed`) its keys' events, their numbers of
values kept, the keys' texts and the values' JSON texts, in the table's canonical order,
behind a header of the magic ``DMK1``, whether keys were dropped, and the numbers of keys
and values. It was canonical JSON before; a state stored so still loads (its first byte,
``{``, tells), and is written packed when stored again.

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
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import pandas as pd

from metrics.assertions import ID
from metrics.base import Aggregate, ColumnKind, canonical_json, input_column
from metrics.bottom_k import id_hashes
from metrics.counters import ratio
from metrics.groups import Groups
from metrics.json_values import json_value
from metrics.key_table import (
    MAX_KEYS,
    KeyChunk,
    Keys,
    KeyTable,
    add_by_group,
    estimated_keys,
    text_array,
)
from metrics.packed import Reader, pack_counts, pack_texts

__all__ = ["Consistency", "ConsistencyState", "consistency"]

MAX_VALUES = 100  # a key keeps at most this many + 1 distinct values
MAX_EXAMPLES = 10_000
_MAGIC = b"DMK1"
_HEADER = struct.Struct("<4sBQQ")  # magic, dropped (0 or 1), keys, values

class ConsistencyState:
    """The records of the window's keys of the lowest hash (see the module's Memory)."""

    __slots__ = ("keys", "spec")

    def __init__(self, spec: Consistency) -> None:
        self.spec = spec
        self.keys = KeyTable(spec.max_keys, keep=spec.max_values + 1)

    def update(self, frame: pd.DataFrame) -> None:
        self.spec.update_groups([self], frame, Groups(np.zeros(len(frame), np.intp), 1))

    def merge(self, other: Self) -> None:
        if other.spec != self.spec:
            raise ValueError(f"cannot merge a consistency state of {other.spec.to_dict()} "
                             f"into one of {self.spec.to_dict()}")
        self.keys.merge(other.keys)

    def value_counts(self) -> np.ndarray:
        """Each key's number of distinct values kept, keys in hash order."""
        held = self.keys.held()
        return np.bincount(held.owners, minlength=len(held.hashes))

    def violating(self) -> int:
        """Keys held with more than ``max_values`` distinct values."""
        return int((self.value_counts() > self.spec.max_values).sum())

    def to_bytes(self) -> bytes:
        """The packed state (see the module's Bytes)."""
        held = self.keys.held()
        return (_HEADER.pack(_MAGIC, int(self.keys.dropped), len(held.hashes),
                             len(held.value_hashes))
                + pack_counts(held.events) + pack_counts(self.value_counts())
                + pack_texts(held.texts.tolist()) + pack_texts(held.value_texts.tolist()))

    def load(self, data: bytes) -> Self:
        """Fill this empty state from :meth:`to_bytes` output (or the JSON of states
        stored before the packed format), checking what it holds."""
        if data[:1] == b"{":
            return self._load_json(data)
        reader = Reader(data, "stored consistency state")
        magic, dropped, keys, values = reader.unpack(_HEADER)
        if magic != _MAGIC or dropped not in (0, 1):
            raise ValueError("not consistency state bytes (bad header)")
        assert isinstance(keys, int) and isinstance(values, int)
        self._check_size(keys, bool(dropped))
        events, sizes = reader.counts(keys), reader.counts(keys)
        texts, value_texts = reader.texts(keys), reader.texts(values)
        reader.end()
        bad = (sizes < 1) | (sizes > self.spec.max_values + 1) | (events < sizes)
        if bad.any():
            key = int(np.argmax(bad))
            raise ValueError(f"stored consistency state is inconsistent for key "
                             f"{texts[key]!r}: {int(events[key])} events, "
                             f"{int(sizes[key])} values")
        if int(sizes.sum()) != values:
            raise ValueError(f"stored consistency state holds {values} values, its keys "
                             f"{int(sizes.sum())}")
        return self._restore(texts, events, value_texts, sizes, bool(dropped))

    def _load_json(self, data: bytes) -> Self:
        raw = json.loads(data)
        keys = raw["keys"]
        self._check_size(len(keys), bool(raw["dropped"]))
        for text, events, values in keys:
            if not (isinstance(text, str) and 1 <= len(values) <= self.spec.max_values + 1
                    and int(events) >= len(values)):
                raise ValueError(f"stored consistency state is inconsistent for key "
                                 f"{text!r}: {events} events, values {values}")
        return self._restore([text for text, _, _ in keys],
                             np.array([int(events) for _, events, _ in keys], np.int64),
                             [value for _, _, values in keys for value in values],
                             np.array([len(values) for _, _, values in keys], np.int64),
                             bool(raw["dropped"]))

    def _check_size(self, keys: int, dropped: bool) -> None:
        if keys > self.spec.max_keys or (dropped and keys != self.spec.max_keys):
            raise ValueError(f"stored consistency state holds {keys} keys "
                             f"(max_keys={self.spec.max_keys}, dropped={dropped})")

    def _restore(self, texts: list[str], events: np.ndarray, value_texts: list[str],
                 sizes: np.ndarray, dropped: bool) -> Self:
        """Fill the table; a key twice, or a value twice for a key, is refused (the
        table unites them, so its sizes tell)."""
        self.keys.restore(Keys(id_hashes(texts), text_array(texts), events,
                               np.repeat(np.arange(len(texts)), sizes),
                               id_hashes(value_texts), text_array(value_texts)),
                          dropped=dropped)
        held = self.keys.held()
        if len(held.hashes) != len(texts):
            raise ValueError("stored consistency state holds a key twice")
        if len(held.value_hashes) != len(value_texts):
            raise ValueError("stored consistency state holds a value twice for a key")
        return self

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ConsistencyState) and self.spec == other.spec
                and self.keys == other.keys)

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
        held = state.keys.held()
        counts = state.value_counts()
        firsts = np.r_[0, np.cumsum(counts)[:-1]]
        found = []
        for key in np.flatnonzero(counts > self.max_values)[: self.k].tolist():
            first, n = int(firsts[key]), int(counts[key])
            found.append({"id": held.texts[key], "severity": float(n),
                          "events": int(held.events[key]),
                          "values": [json.loads(value) for value
                                     in held.value_texts[first:first + n].tolist()]})
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
        # one run per (group, key): its events, and its lowest values (the first)
        starts = np.r_[True, (group[1:] != group[:-1]) | (key[1:] != key[:-1])]
        run_of = np.cumsum(starts) - 1
        firsts = np.flatnonzero(starts)
        kept = np.arange(len(key)) - firsts[run_of] < self.max_values + 1
        add_by_group([state.keys for state in states], chunk, group[firsts], key[firsts],
                     np.add.reduceat(counts, firsts), run_of[kept],
                     np.array([h for h, _ in pairs], dtype=np.uint64)[value[kept]],
                     text_array([text for _, text in pairs])[value[kept]])


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
    if field.dtype == object:  # lists or mixed objects: unhashable, so by text
        texts = [_value_text(v) for v in field.iloc[judged].tolist()]
        value_codes, uniques = pd.factorize(pd.Series(texts, dtype=object))
        codes[judged] = value_codes
        return codes, list(uniques)
    # the whole column factorizes faster than a slice of it (arrow strings), but only the
    # judged rows' values are spelled
    value_codes, uniques = pd.factorize(field)
    used, codes[judged] = np.unique(value_codes[judged], return_inverse=True)
    return codes, [_value_text(v) for v in uniques.take(used).tolist()]


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
