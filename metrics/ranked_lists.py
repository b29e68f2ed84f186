"""Reading a ranked-list column row by row: where the engaged item sits, what the top k hold.

A ranked list is a ``list[str]`` field of the stream (items shown, best first), which
schema validation hands over as Python lists (:mod:`monitor.string_lists`), or as an
Arrow ``list<string>`` column when the source read it so (the batch stage's Postgres
read: :mod:`metrics.arrow_lists`, the same answers without a list per row); a null is no
list. Any other value raises a ValueError naming the column, rather than being guessed at.
Python's ``list.index`` finds an item faster than a numpy detour through object arrays
would, so Python lists are read per row; lists are short (a homepage shows tens of items).

>>> frame = pd.DataFrame({"shown": [["a", "b", "c"], ["c", "a"], None, ["b"]],
...                       "clicked": ["b", "b", "a", None]})
>>> engaged, ranks = hit_ranks(frame, "shown", "clicked", k=None)
>>> engaged.tolist(), ranks.tolist()
([True, True, False, False], [2, 0, 0, 0])
>>> hit_ranks(frame, "shown", "clicked", k=1)[1].tolist()  # rank 2 is outside the top 1
[0, 0, 0, 0]
>>> list(top_items(ranked_lists(frame, "shown"), k=1))
['a', 'c', 'b']
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd

from metrics.arrow_lists import arrow_lists, first_positions, python_lists

__all__ = ["hit_ranks", "ranked_lists", "top_items"]


def ranked_lists(frame: pd.DataFrame, column: str) -> np.ndarray:
    """The column's lists as an object array, None for nulls; ValueError on other values."""
    held = arrow_lists(frame[column])
    if held is not None:  # validated in Arrow: only lists of strings and nulls
        return python_lists(held)
    values = frame[column].to_numpy(dtype=object)
    if set(map(type, values)) <= _LIST_OR_NONE:  # validated lists: no row to look at
        return values.copy()  # a new array (the frame's own may be a view), lists shared
    out = np.full(len(values), None, dtype=object)
    for row, value in enumerate(values):
        if isinstance(value, list | tuple):
            out[row] = value
        elif not _is_null(value):
            raise ValueError(
                f"column {column!r} must hold lists of item ids (declare it list[str] in the "
                f"stream's schema, which validates it), found {value!r}"
            )
    return out


_LIST_OR_NONE = frozenset({list, tuple, type(None)})


def _is_null(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def hit_ranks(frame: pd.DataFrame, shown: str, clicked: str, k: int | None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Per row: whether it counts (a list was shown and an item engaged with), and the
    1-based rank of the engaged item in the list's top ``k`` (all of it when None), 0 when
    it is not there. An item listed twice counts at its first (best) rank."""
    clicks = frame[clicked]
    held = arrow_lists(frame[shown])
    positions = None if held is None else first_positions(held, clicks)
    if positions is not None:
        assert held is not None
        engaged = clicks.notna().to_numpy() & held.is_valid().to_numpy(zero_copy_only=False)
        found = engaged & (positions >= 0)
        if k is not None:
            found &= positions < k
        return engaged, np.where(found, positions + 1, 0)
    lists = ranked_lists(frame, shown)
    engaged = clicks.notna().to_numpy() & pd.notna(lists)
    stop = sys.maxsize if k is None else k
    items = clicks.to_numpy(dtype=object)
    ranks = np.zeros(len(frame), dtype=np.int64)
    rows = np.flatnonzero(engaged)
    if len(rows):
        ranks[rows] = [_rank(lists[row], items[row], stop) for row in rows.tolist()]
    return engaged, ranks


def _rank(items: list[str] | tuple[str, ...], item: str, stop: int) -> int:
    try:
        return items.index(item, 0, stop) + 1
    except ValueError:
        return 0


def top_items(lists: Iterable[list[str] | tuple[str, ...] | None], k: int | None
              ) -> Iterator[str]:
    """The items of each list's top ``k`` (all of each when None), nulls skipped."""
    return itertools.chain.from_iterable(items[:k] for items in lists if items is not None)
