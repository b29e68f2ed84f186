"""Predictions joined to the labels that arrive for them: the one join every stage uses.

A metric that needs labels declares where they come from (:class:`monitor.labels.Labels`):
a label stream, the id that ties a label to its prediction, and a horizon. Research,
batch and streaming all call :func:`join_labels` on validated events, so the
same predictions and labels give the same joined rows, hence bit-identical values, in
every stage. Pure: frames in, frames and counts out.

The rule, for each prediction:

- its candidates are the labels with the same id whose label time lies in
  ``[prediction time - early, prediction time + horizon]`` (``early``: how long before
  its prediction a label may be stamped, e.g. clocks of two systems that disagree; by
  default the horizon);
- of several candidates (a label sent twice, or revised) the one with the **earliest
  label time** wins; a tie in time goes to the label whose columns, as canonical JSON,
  sort first. Which label a prediction gets depends only on the labels' contents, never
  on the order they were read in — so shuffled, late or replayed labels give the same
  values, and a duplicate never counts twice;
- a prediction without candidates is unlabelled: it counts in its window's predictions,
  not in the labelled rows the metric's aggregate reads;
- a label whose id is null or empty is rejected with a reason (a stage stores it as a
  dead letter); a label no prediction takes is counted as unmatched (an unknown id, or
  one outside every horizon); a candidate that lost to an earlier label as a duplicate.

Windows are those of the prediction's event time: the joined rows keep the prediction's
columns, its time included, and gain the label stream's value columns (not its id nor
its time) and the mark :data:`~metrics.labelled.LABELLED`.

Bounded reads. A prediction at time ``t`` can only take labels stamped in
``[t - early, t + horizon]``, so the predictions of ``[start, end)`` need only the labels
of ``[start - early, end + horizon)`` (:meth:`JoinRule.label_range`): batch reads exactly
that range of the label table (the time filter in the WHERE clause), and a window's
values can change only until ``end + horizon`` has passed — the batch stage recomputes
a window on every run until then.

How streaming reuses this (built in :mod:`streaming.label_processor`, which says how it
finds rows held by other partitions and workers). A worker consumes the prediction topic
and the label topic. It cannot value a window from what it has seen, as the other
stages do, because labels keep coming for ``horizon`` after the window closes. So:

1. Predictions and labels wait durably, in the database, in the same transaction as the
   offsets of the partitions they came from (the exactly-once design of
   :mod:`streaming.state_store`): a table of waiting predictions (id, time, segment
   columns, the columns the aggregates read) and one of labels (id, label time,
   value columns, the canonical-JSON tie key). A replayed message at or below the stored
   offset is skipped, so nothing is held twice.
2. When a window closes (every partition's watermark past its end plus the lateness),
   the worker values it from :func:`join_labels` over its waiting predictions and the
   held labels of :meth:`JoinRule.label_range`, stores the window's state and values
   (immature: alert rules wait, see :mod:`monitor.label_maturity`), and keeps the
   predictions.
3. A label that lands after its prediction's window closed makes the worker recompute
   that window with the same function (the rule picks the same winner whatever the
   arrival order) and upsert its state and values in the transaction that stores the
   label's offset: the stored window is revised, not added to, so a duplicate or a
   redelivered label cannot count twice.
4. A label stamped before its prediction (early) simply waits with the others: the
   prediction, when it arrives, is joined against the held labels.
5. Once the label watermark passes ``end + horizon`` (and ``label time + early`` for a
   held label) nothing can change the window any more: its predictions and its labels
   are deleted, so the rows held are bounded by the horizon, not growing with time;
   held labels no prediction took go with them (streaming does not count them as
   unmatched). A prediction that comes for a forgotten window after that, or a label
   that could have joined a forgotten prediction, is a dead letter, never held for
   nothing.

Because every step goes through :func:`join_labels`, research, batch and streaming agree
bit for bit once every horizon has passed.

>>> rule = JoinRule("prediction_id", "ts", "prediction_id", "ts", ("clicked",),
...                 horizon_ns=3_600 * 10**9, early_ns=60 * 10**9)
>>> t = pd.Timestamp("2026-03-01T10:00Z")
>>> predictions = pd.DataFrame({"ts": [t, t], "prediction_id": ["a", "b"]})
>>> labels = pd.DataFrame({"ts": [t + pd.Timedelta("5min"), t + pd.Timedelta("1min"),
...                               t + pd.Timedelta("2h")],
...                        "prediction_id": ["a", "a", "b"],
...                        "clicked": pd.array([False, True, True], dtype="boolean")})
>>> joined = join_labels(predictions, labels, rule)
>>> joined.events[["prediction_id", "clicked", LABELLED]].to_dict("list")
{'prediction_id': ['a', 'b'], 'clicked': [True, None], '__labelled': [True, False]}
>>> joined.events["clicked"].dtype
BooleanDtype
>>> joined.counts
LabelCounts(offered=3, matched=1, duplicates=1, unmatched=1, rejected=0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from metrics.base import canonical_json
from metrics.labelled import LABELLED

__all__ = ["LABELLED", "JoinRule", "JoinedPredictions", "LabelCounts", "id_problems",
           "join_labels"]


@dataclass(frozen=True)
class JoinRule:
    """How one prediction stream meets one label stream (see the module)."""

    prediction_id: str
    prediction_time: str
    label_id: str
    label_time: str
    label_columns: tuple[str, ...]  # the label stream's value columns the join carries
    horizon_ns: int
    early_ns: int

    def label_range(self, start: pd.Timestamp, end: pd.Timestamp
                    ) -> tuple[pd.Timestamp, pd.Timestamp]:
        """The label times ``[low, high)`` the predictions of ``[start, end)`` can take."""
        return (start - pd.Timedelta(self.early_ns, unit="ns"),
                end + pd.Timedelta(self.horizon_ns, unit="ns"))


@dataclass(frozen=True)
class LabelCounts:
    """What became of the labels offered to a join (they add up to ``offered``)."""

    offered: int = 0
    matched: int = 0  # joined to at least one prediction
    duplicates: int = 0  # a candidate of some prediction, beaten by an earlier label
    unmatched: int = 0  # no prediction offered had it as a candidate
    rejected: int = 0  # null or empty id

    def __add__(self, other: LabelCounts) -> LabelCounts:
        return LabelCounts(*(a + b for a, b in zip(self._tuple(), other._tuple(), strict=True)))

    def _tuple(self) -> tuple[int, ...]:
        return (self.offered, self.matched, self.duplicates, self.unmatched, self.rejected)


@dataclass(frozen=True)
class JoinedPredictions:
    events: pd.DataFrame  # the predictions, in their order, with label columns and LABELLED
    rejects: pd.DataFrame  # labels refused: row (their index label), reason
    counts: LabelCounts


def join_labels(predictions: pd.DataFrame, labels: pd.DataFrame, rule: JoinRule
                ) -> JoinedPredictions:
    """Each prediction with the label the rule gives it (see the module).

    Both frames are validated events (times as UTC datetimes); ``labels`` holds at least
    every label of :meth:`JoinRule.label_range` of the predictions' times, and may hold
    more (more labels never change which one a prediction gets, only the counts).
    """
    bad_id = id_problems(labels[rule.label_id])
    rejects = pd.DataFrame({"row": labels.index[bad_id.notna().to_numpy()],
                            "reason": bad_id.dropna().to_numpy()})
    good = labels[bad_id.isna().to_numpy()].reset_index(drop=True)

    # One hash pass over both sides' ids; the pairs are then found on integer codes.
    n = len(predictions)
    codes = _id_codes(predictions[rule.prediction_id], good[rule.label_id])
    known = codes[:n] >= 0
    offered = pd.DataFrame({"p": np.flatnonzero(known), "id": codes[:n][known],
                            "pt": _ns(predictions[rule.prediction_time])[known]})
    held = pd.DataFrame({"l": np.arange(len(good)), "id": codes[n:],
                         "lt": _ns(good[rule.label_time])})
    pairs = offered.merge(held, on="id", how="inner", sort=False)
    pt, lt = pairs["pt"].to_numpy(), pairs["lt"].to_numpy()
    candidate = (lt <= pt + rule.horizon_ns) & (lt >= pt - rule.early_ns)
    p, lt, label = pairs["p"].to_numpy()[candidate], lt[candidate], pairs["l"].to_numpy()[candidate]
    winner_of, winner = _earliest(p, lt, label, good, rule)

    label_of = np.full(len(predictions), -1, dtype=np.int64)
    label_of[winner_of] = winner
    events = predictions.copy(deep=False)
    for column in rule.label_columns:
        events[column] = _take(good[column], label_of, events.index)
    events[LABELLED] = label_of >= 0

    candidates = _distinct(label, len(good))
    matched = _distinct(winner, len(good))
    counts = LabelCounts(offered=len(labels), matched=matched,
                         duplicates=candidates - matched, unmatched=len(good) - candidates,
                         rejected=len(rejects))
    return JoinedPredictions(events, rejects, counts)


def id_problems(ids: pd.Series) -> pd.Series:
    """Why each label id cannot be joined on (None where it can): null or empty."""
    reasons = pd.Series(None, index=ids.index, dtype=object)
    null = ids.isna().to_numpy()
    reasons[null] = f"label id {ids.name!r} is null"
    if ids.dtype == object or isinstance(ids.dtype, pd.StringDtype):
        text = ids.where(~null, "x").astype(str)
        empty = (text.str.strip() == "").to_numpy()
        reasons[empty & ~null] = f"label id {ids.name!r} is empty"
    return reasons


def _ns(times: pd.Series) -> np.ndarray:
    return times.to_numpy(dtype="datetime64[ns]").view(np.int64)


def _id_codes(prediction_ids: pd.Series, label_ids: pd.Series) -> np.ndarray:
    """An integer per id, the same on both sides, -1 for null: one hash pass over both
    (on Arrow strings, or nullable integers, rather than Python objects)."""
    sides = ([ids.astype("Int64") for ids in (prediction_ids, label_ids)]
             if pd.api.types.is_integer_dtype(prediction_ids)
             else [ids.astype("str") for ids in (prediction_ids, label_ids)])
    both = pd.concat(sides, ignore_index=True)
    codes, _ = pd.factorize(both)
    return codes


def _distinct(positions: np.ndarray, size: int) -> int:
    seen = np.zeros(size, dtype=bool)
    seen[positions] = True
    return int(np.count_nonzero(seen))


def _earliest(p: np.ndarray, lt: np.ndarray, label: np.ndarray, labels: pd.DataFrame,
              rule: JoinRule) -> tuple[np.ndarray, np.ndarray]:
    """The winning label of each prediction with candidates: of the candidate pairs
    (prediction, label time, label), the earliest label time, and among labels at that
    same time the one whose columns sort first as canonical JSON. Returns the predictions
    and their labels."""
    order = np.lexsort((lt, p))
    p, lt, label = p[order], lt[order], label[order]
    first = np.ones(len(p), dtype=bool)
    first[1:] = p[1:] != p[:-1]
    group = np.cumsum(first) - 1
    at_earliest = lt == lt[first][group]
    tied = at_earliest & (np.bincount(group, weights=at_earliest)[group] > 1)
    winner = label[first]
    if tied.any():
        # only the contenders of a tie need their JSON: rank them by it, keep the first
        keys = _json_keys(labels, rule, label[tied])
        _, rank = np.unique(keys, return_inverse=True)
        tied_group = group[tied]
        best = np.lexsort((rank, tied_group))
        chosen = best[np.r_[True, tied_group[best][1:] != tied_group[best][:-1]]]
        winner[tied_group[chosen]] = label[tied][chosen]
    return p[first], winner


def _json_keys(labels: pd.DataFrame, rule: JoinRule, rows: np.ndarray) -> np.ndarray:
    """What breaks a tie in label time between labels: their id and value columns as
    canonical JSON (it depends on the label alone, so on no order nor range read)."""
    columns = [rule.label_id, *rule.label_columns]
    records = labels[columns].iloc[rows].astype(object).to_dict("records")
    return np.array([canonical_json({k: _plain(v) for k, v in record.items()})
                     for record in records], dtype=object)


def _plain(value: Any) -> Any:
    """A cell as a JSON value: nulls as None, numpy scalars as Python ones, arrays as lists."""
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _take(values: pd.Series, positions: np.ndarray, index: pd.Index) -> pd.Series:
    """``values`` at ``positions`` (-1: null), keeping the column's dtype; an object
    column's nulls are None, as validation leaves them."""
    taken = pd.Series(values.array.take(positions, allow_fill=True), index=index)
    if taken.dtype == object:
        taken = taken.where(positions >= 0, None)
    return taken
