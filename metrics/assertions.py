"""Assertions: how many events violate a rule, and a sample of them to look at.

An assertion reads one value per event — True where the event violates it, or a severity
score (a violation where it is above 0) — usually a per-event function's output
(``@mon.metric(..., aggregate=metrics.assertion(id=...))``). Its values per segment and
window are exact counts:

- ``violations``: the events that violate it;
- ``violation_rate``: violations / the events it judged (a null value judges nothing);
- ``max_severity``: the highest severity among the violations (1.0 for a boolean; NaN
  without a violation).

Its state also keeps the violating events to relabel: their id, severity and the fields
named in ``keep``, for at most ``k`` distinct ids — those of the smallest hash of the id
(:mod:`metrics.bottom_k`). The sample is a uniform sample of the violating ids, the same
in every stage whatever the chunking or order, and merges exactly; the state's size is
bounded by ``k`` however many events violate. While the state is updated, its candidates
wait as arrays and are spelled as records only when the state is serialized, compared or
its examples read, those queued since the last read alone (:mod:`metrics.queued_sample`:
in memory, at most ``3 * max(4k, 256) + k`` candidates).

>>> agg = assertion("too_slow", id="view_id", keep=("latency_ms",), k=2)
>>> state = agg.new_state()
>>> state.update(pd.DataFrame({"view_id": [1, 2, 3, 4],
...                            "latency_ms": [900.0, 10.0, 1200.0, 3000.0],
...                            "too_slow": [True, False, True, True]}))
>>> agg.value(state)
{'violations': 3.0, 'violation_rate': 0.75, 'max_severity': 1.0}
>>> agg.examples(state)
[{'id': 3, 'severity': 1.0, 'latency_ms': 1200.0}, {'id': 4, 'severity': 1.0, 'latency_ms': 3000.0}]
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple, Self

import numpy as np
import pandas as pd

from metrics.base import Aggregate, ColumnKind, canonical_json, input_column
from metrics.bottom_k import id_hash, id_hashes, id_text, id_texts_at
from metrics.conditions import Condition, nan_rows
from metrics.counters import ratio
from metrics.frame_columns import column_values, series_values
from metrics.groups import Groups
from metrics.json_values import float_from_json, float_json
from metrics.queued_sample import ColumnBatch, QueuedSample
from metrics.sample_records import (
    Taken,
    as_is,
    float_texts,
    object_array,
    quote,
    quoted,
    take_column,
)

__all__ = ["ID", "MAX_K", "Assertion", "AssertionState", "assertion"]

# The column kind of an id: a string or integer field that every event has (a violation
# without an id could not be sampled the same way in every stage).
ID: ColumnKind = "non-null id"
MAX_K = 10_000  # the sample's bound; a state holds at most this many records


class AssertionState:
    """Exact counts of judged and violating events, their highest severity, and the
    bottom-k sample of violating ids with their records."""

    __slots__ = ("judged", "max_severity", "sample", "spec", "violations")

    def __init__(self, spec: Assertion) -> None:
        self.spec = spec
        self.judged = 0
        self.violations = 0
        self.max_severity = -math.inf  # -inf: no violation yet
        self.sample = QueuedSample(spec.k)

    def update(self, frame: pd.DataFrame) -> None:
        self.spec.update_groups([self], frame, Groups(np.zeros(len(frame), np.intp), 1))

    def merge(self, other: Self) -> None:
        if other.spec != self.spec:
            raise ValueError(f"cannot merge an assertion state of {other.spec.to_dict()} into "
                             f"one of {self.spec.to_dict()}")
        self.judged += other.judged
        self.violations += other.violations
        self.max_severity = max(self.max_severity, other.max_severity)
        self.sample.merge(other.sample)

    def to_bytes(self) -> bytes:
        # the records are canonical JSON already: joined as they are, in sample order
        records = self.sample.joined_records()  # spelled now, or kept from the last time
        highest = self.max_severity  # json.dumps spells a finite float as float's repr
        highest_text = (float.__repr__(highest) if math.isfinite(highest)
                        else json.dumps(float_json(highest)))
        return (f'{{"judged":{self.judged},"max_severity":{highest_text},"sample":[{records}],'
                f'"violations":{self.violations}}}').encode()

    def load(self, data: bytes) -> Self:
        """Fill this empty state from :meth:`to_bytes` output, checking what it holds."""
        raw = json.loads(data)
        judged, violations = int(raw["judged"]), int(raw["violations"])
        records = raw["sample"]
        if not 0 <= violations <= judged or len(records) > min(violations, self.spec.k):
            raise ValueError(f"stored assertion state is inconsistent: {violations} "
                             f"violations of {judged} judged with {len(records)} examples "
                             f"(k={self.spec.k})")
        self.judged, self.violations = judged, violations
        self.max_severity = float_from_json(raw["max_severity"])
        held = self.sample.restore([(id_text(r["id"]), id_hash(id_text(r["id"])),
                                     canonical_json(r)) for r in records])
        if held != len(records):
            raise ValueError("stored assertion state holds an id twice")
        return self

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, AssertionState) and self.spec == other.spec
                and (self.judged, self.violations) == (other.judged, other.violations)
                and self.max_severity == other.max_severity and self.sample == other.sample)

    def __repr__(self) -> str:
        return (f"AssertionState(violations={self.violations}, judged={self.judged}, "
                f"sample={len(self.sample)})")


@dataclass(frozen=True)
class Assertion(Aggregate):
    """Violations of a per-event rule, counted exactly, with a deterministic sample."""

    column: str | None  # True / a severity per event; None until a per-event function binds it
    id_column: str
    keep: tuple[str, ...] = ()
    k: int = 100
    kind = "assertion"

    def __post_init__(self) -> None:
        object.__setattr__(self, "keep", tuple(self.keep))  # a list, from stored JSON
        if not isinstance(self.id_column, str) or not self.id_column:
            raise ValueError("assertion id= must name the column that identifies an event")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or not 1 <= self.k <= MAX_K:
            raise ValueError(f"assertion k={self.k!r}: the sample keeps 1 to {MAX_K} events")
        if len(set(self.keep)) != len(self.keep) or not all(
                isinstance(c, str) for c in self.keep):
            raise ValueError(f"assertion keep={list(self.keep)!r} must name distinct columns")
        if self.column is not None:
            self._condition  # noqa: B018 - an expression that does not parse fails here
        if clash := {"id", "severity"} & set(self.keep):
            raise ValueError(f"assertion keep= cannot name {sorted(clash)}: every example has "
                             "its id and severity already")

    @cached_property
    def _condition(self) -> Condition | None:  # parsed once per definition; not in its id
        column = input_column(self)
        if column.isidentifier():
            return None
        try:
            return Condition(column)
        except SyntaxError as err:
            raise ValueError(f"assertion {column!r} is neither a column nor an expression: "
                             f"{err.msg}") from None

    @cached_property
    def sorted_keep(self) -> tuple[str, ...]:
        """The kept fields in the order a record spells them (canonical JSON's)."""
        return tuple(sorted(self.keep))

    @cached_property
    def record_parts(self) -> tuple[str, ...]:
        """A sampled event's record as canonical JSON, cut around the JSON text of each
        kept field (in sorted order), then of the id, then of the severity."""
        names = [quote(name) for name in self.sorted_keep]
        fields = ([f'{{"fields":{{{names[0]}:', *(f",{name}:" for name in names[1:]),
                   '},"id":'] if names else ['{"fields":{},"id":'])
        return (*fields, ',"severity":', "}")

    def columns(self) -> dict[str, ColumnKind]:
        condition = self._condition
        read = ({input_column(self): "numeric"} if condition is None
                else dict.fromkeys(condition.names, "any"))
        return {**read, **dict.fromkeys(self.keep, "any"), self.id_column: ID}

    def _outcome(self, columns: _Columns) -> _Outcome:
        """Each event's outcome: whether it violates, whether it judges nothing (a null
        outcome, or, for an expression, a null in a column it names, as a rate leaves it
        out), and its severity."""
        condition = self._condition
        if condition is None:
            name = input_column(self)
            values = columns.array_of(name)
            if isinstance(values, np.ndarray) and values.dtype.kind == "b":
                return _Outcome(values, None, None)  # a per-event function's flags
            return _Outcome.of_severity(columns[name].to_numpy(dtype=np.float64,
                                                               na_value=np.nan))
        arrays = {name: columns.array_of(name) for name in condition.names}
        compared = condition.evaluate_arrays(arrays)
        if compared is not None:  # numpy float or bool columns: no pandas around numpy
            # flags, not converted to a severity: a violation's is 1.0
            nan = nan_rows(arrays)  # a null judges nothing
            return _Outcome(compared if nan is None else compared & ~nan, nan, None)
        named = {name: columns[name] for name in condition.names}
        outcome = condition.evaluate_columns(columns.frame, named)
        if not isinstance(outcome, pd.Series):  # a constant, or an array from eval
            outcome = pd.Series(outcome, index=columns.frame.index)
        values = series_values(outcome)
        if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
            # a plain array (the usual outcome, booleans): a copy without pandas' NA checks
            severity = values.astype(np.float64)
        else:
            severity = outcome.to_numpy(dtype=np.float64, na_value=np.nan)
        for name in named:
            severity[np.asarray(pd.isna(columns.array_of(name)), dtype=bool)] = np.nan
        return _Outcome.of_severity(severity)

    def fields(self) -> tuple[str, ...]:
        return ("violations", "violation_rate", "max_severity")

    def new_state(self) -> AssertionState:
        input_column(self)  # an assertion without its column fails here, not in update
        return AssertionState(self)

    def state_from_bytes(self, data: bytes) -> AssertionState:
        return self.new_state().load(data)

    def value(self, state: AssertionState) -> dict[str, float]:
        return {
            "violations": float(state.violations),
            "violation_rate": ratio(state.violations, state.judged),
            "max_severity": state.max_severity if state.violations else float("nan"),
        }

    def examples(self, state: AssertionState) -> list[dict[str, Any]]:
        """The sampled violations, in sample order: id, severity, then the kept fields."""
        records = (json.loads(record) for _, record in state.sample.items())
        return [{"id": r["id"], "severity": float_from_json(r["severity"]), **r["fields"]}
                for r in records]

    def update_groups(self, states: Sequence[AssertionState], frame: pd.DataFrame,
                      groups: Groups) -> None:
        columns = _Columns(frame)
        outcome = self._outcome(columns)
        violated, unjudged = outcome.violated, outcome.unjudged
        judged_counts = (groups.sizes() if unjudged is None else groups.sums(~unjudged)
                         ).tolist()
        # The violating entries (a row is in several groups): the counts, the highest
        # severity and the sample all need them alone, a few per cent of the entries
        entries = np.flatnonzero(violated if groups.rows is None else violated[groups.rows])
        codes = groups.codes[entries]
        rows = entries if groups.rows is None else groups.rows[entries]
        violation_counts = np.bincount(codes, minlength=groups.n).tolist()
        for state, n_judged, n_violated in zip(states, judged_counts, violation_counts,
                                               strict=True):
            state.judged += n_judged
            state.violations += n_violated
        if not len(entries):
            return
        values = None if outcome.severity is None else outcome.severity[rows]
        if values is None or values.min() == values.max():  # every violation's the same
            highest = 1.0 if values is None else float(values[0])  # 1.0: a boolean outcome
            for state, n_violated in zip(states, violation_counts, strict=True):
                if n_violated and highest > state.max_severity:
                    state.max_severity = highest
        else:
            by_group = np.full(groups.n, -np.inf)
            np.maximum.at(by_group, codes, values)
            for state, value in zip(states, by_group.tolist(), strict=True):
                state.max_severity = max(state.max_severity, value)
        _Sampler(self, columns, outcome, np.flatnonzero(violated)).offer(states, rows, codes)


class _Outcome(NamedTuple):
    """A chunk's outcome per event (see :meth:`Assertion._outcome`)."""

    violated: np.ndarray  # bool
    unjudged: np.ndarray | None  # bool; None when every event is judged
    # float, NaN where unjudged; None for a boolean outcome (a violation's severity is
    # 1.0): a comparison's flags are not converted to floats for the few violations
    severity: np.ndarray | None

    @classmethod
    def of_severity(cls, severity: np.ndarray) -> _Outcome:
        unjudged = np.isnan(severity)
        return cls(severity > 0,  # NaN (judges nothing) is not above 0
                   unjudged if unjudged.any() else None, severity)


class _Columns(dict[str, pd.Series]):
    """A chunk's columns, each looked up once: ``frame[name]`` costs tens of µs, and the
    rule's columns are often kept fields too. The id and the kept fields need only the
    values, which :func:`metrics.frame_columns.column_values` gets without a Series."""

    def __init__(self, frame: pd.DataFrame) -> None:
        super().__init__()
        self.frame = frame
        self._values: dict[str, Any] = {}

    def __missing__(self, name: str) -> pd.Series:
        column = self[name] = self.frame[name]
        return column

    def array_of(self, name: str) -> Any:
        """The column's values (a numpy or extension array), not copied."""
        found = self._values.get(name)
        if found is None:
            found = self._values[name] = (series_values(self[name]) if name in self
                                          else column_values(self.frame, name))
        return found


class _Sampler:
    """One chunk's violating rows, each id hashed once, queued to every group's sample.

    Every violating row's id is spelled and hashed (a BLAKE2b of a short text is cheaper
    than finding the distinct ids first); then, with numpy, only the entries whose hash
    may still get into their group's sample are kept, and their rows are taken as arrays
    once for all groups (:class:`~metrics.queued_sample.ColumnBatch`): no record is
    spelled here."""

    def __init__(self, spec: Assertion, columns: _Columns, outcome: _Outcome,
                 violating: np.ndarray) -> None:
        self.spec, self.columns, self.outcome = spec, columns, outcome
        self.id_values = columns.array_of(spec.id_column)
        # the violating rows with an id (a null id is counted, not sampled), ascending
        self.texts, self.rows = id_texts_at(self.id_values, violating)
        self.hashes = id_hashes(self.texts)
        self.null_ids = len(self.rows) < len(violating)

    def offer(self, states: Sequence[AssertionState], rows: np.ndarray, codes: np.ndarray
              ) -> None:
        """Queue to each group its violating rows (``rows[i]`` is in group ``codes[i]``)
        whose hash may be among the k smallest of the group and of its sample, ties
        included: taken as arrays once for every group, and spelled as records only if
        the sample is read with them in it (:mod:`metrics.queued_sample`)."""
        # Each entry's place in texts and hashes: self.rows (ascending) holds every row
        # of rows bar those of a null id
        slots = np.searchsorted(self.rows, rows)
        if self.null_ids:
            with_id = slots < len(self.rows)
            with_id[with_id] = self.rows[slots[with_id]] == rows[with_id]
            slots, codes = slots[with_id], codes[with_id]
        hashes = self.hashes[slots]
        # Each group's bound (no larger hash can get in), at once for all rows
        bounds = np.array([state.sample.bound() for state in states], dtype=np.uint64)
        held = hashes <= bounds[codes]
        if not held.all():
            slots, codes, hashes = slots[held], codes[held], hashes[held]
        slots, codes = self._smallest_of_each(slots, codes, hashes)
        if not len(slots):
            return
        # One batch of every group's candidates: the same rows are often offered twice
        # (overall and in their segment)
        chosen = np.zeros(len(self.texts), dtype=bool)
        chosen[slots] = True
        taken = np.flatnonzero(chosen)
        batch = self._batch(taken)
        places = np.searchsorted(taken, slots)  # each entry's place in the batch
        if codes[0] == codes[-1] and (codes == codes[0]).all():  # one group (no segments)
            states[int(codes[0])].sample.add(batch, places)
            return
        order = codes.argsort(kind="stable")
        codes, places = codes[order], places[order]
        starts = [0, *(np.flatnonzero(codes[1:] != codes[:-1]) + 1).tolist()]
        for code, begin, stop in zip(codes[starts].tolist(), starts, [*starts[1:], len(codes)],
                                     strict=True):
            states[code].sample.add(batch, places[begin:stop])

    def _smallest_of_each(self, slots: np.ndarray, codes: np.ndarray, hashes: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray]:
        """Of a group with more than k entries, only those whose hash is at most its k-th
        smallest distinct hash. Distinct ids are told apart by their hash: two that
        collide count as one, which only lets more entries through."""
        k = self.spec.k
        if len(codes) <= k:  # the usual chunk: no group can have more than k
            return slots, codes
        crowded = np.flatnonzero(np.bincount(codes) > k)
        if not len(crowded):
            return slots, codes
        keep = np.ones(len(slots), dtype=bool)
        for group in crowded.tolist():
            members = np.flatnonzero(codes == group)
            distinct = np.unique(hashes[members])
            if len(distinct) > k:
                keep[members[hashes[members] > distinct[k - 1]]] = False
        return slots[keep], codes[keep]

    def _batch(self, slots: np.ndarray) -> ColumnBatch:
        """The violating rows at ``slots`` (of self.rows) as arrays: id texts, hashes, and
        the columns of their records as canonical JSON would spell ``{"fields": {...},
        "id": ..., "severity": ...}`` (keys sorted), not spelled yet."""
        rows = self.rows[slots]
        columns = [take_column(self.columns.array_of(name), rows)
                   for name in self.spec.sorted_keep]
        texts = self.texts
        id_texts = object_array(texts if len(slots) == len(texts)  # every row: the usual
                                else [texts[slot] for slot in slots.tolist()])
        dtype = self.id_values.dtype
        # An id's JSON from its text when the column's type says how: an integer's text
        # is its JSON, a string's is quoted; else (objects) take_column spells it. (An
        # integer dtype by its kind: pandas' is_integer_dtype costs 3 µs a chunk.)
        if dtype.kind in "iu":
            columns.append(Taken(as_is, id_texts))
        elif isinstance(dtype, pd.StringDtype):
            columns.append(Taken(quoted, id_texts))
        else:
            columns.append(take_column(self.id_values, rows))
        if self.outcome.severity is None:  # a boolean outcome: every severity is 1.0
            columns.append(Taken(unit_texts, np.ones(len(rows))))
        else:
            columns.append(Taken(float_texts, self.outcome.severity[rows]))
        return ColumnBatch(self.hashes[slots], id_texts, self.spec.record_parts,
                           tuple(columns))


def unit_texts(ones: np.ndarray) -> list[str]:
    """The JSON text of severities that are all 1.0 (a boolean outcome's), as
    :func:`~metrics.sample_records.float_texts` spells them without a repr each."""
    return ["1.0"] * len(ones)


def assertion(column: str | None = None, *, id: str, keep: Sequence[str] = (),
              k: int = 100) -> Assertion:
    """Violations of a rule per event, with a sample of up to ``k`` violating events.

    ``column`` holds the rule's outcome per event (True, or a severity above 0, is a
    violation; null judges nothing), or is an expression of the columns as a rate's
    condition is (``"score > 0.99 and new_user"``: an event with a null in a column it
    names is not judged); leave it out to use the assertion as the aggregate of a
    per-event function (``@mon.metric``). ``id`` names the column that identifies
    an event (a string or integer every event has); the sample keeps the ``k`` violating
    ids of the smallest hash, each with its severity and the fields named in ``keep``.
    Fields: ``violations``, ``violation_rate``, ``max_severity``.

    >>> agg = assertion("score", id="user", keep=("country",), k=1)
    >>> state = agg.new_state()
    >>> state.update(pd.DataFrame({"user": ["a", "b", "c"], "country": ["SE", "DE", None],
    ...                            "score": [0.0, 2.5, 0.5]}))
    >>> agg.value(state)
    {'violations': 2.0, 'violation_rate': 0.6666666666666666, 'max_severity': 2.5}
    >>> agg.examples(state)
    [{'id': 'b', 'severity': 2.5, 'country': 'DE'}]
    """
    return Assertion(column, id, tuple(keep), k)
