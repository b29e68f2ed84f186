"""Rows of one chunk assigned to groups, for aggregates that update many states in one pass.

The engine keeps a state per (metric, segment, window). Updating each of those states on
its own slice of the chunk costs a pandas ``take`` and a few pandas calls per group,
which dominates when a micro-batch touches hundreds of small groups. A :class:`Groups`
lists (row, group) pairs — a row may be in several groups, as every event is in its
segment's window and in the overall one — and an aggregate's ``update_groups`` absorbs
the whole chunk at once (a ``bincount`` for counters, numpy slices for sums and
sketches), giving each state exactly what ``update`` on its rows would have.

>>> groups = Groups(np.array([1, 0, 1, 1]), 2)
>>> groups.sizes().tolist()
[1, 3]
>>> groups.sums(np.array([True, True, False, True])).tolist()
[1, 2]
>>> [part.tolist() for part in groups.split(np.array([10.0, 20.0, 30.0, 40.0]))]
[[20.0], [10.0, 30.0, 40.0]]

Rows 0 and 1 in group 0 and again in group 1 (say, overall and per segment):

>>> twice = Groups(np.array([0, 0, 1, 2]), 3, rows=np.array([0, 1, 0, 1]))
>>> [part.tolist() for part in twice.split_finite(np.array([5.0, np.nan]))]
[[5.0], [5.0], []]
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property

import numpy as np
import pandas as pd


class Groups:
    """Entry ``i`` puts row ``rows[i]`` of a chunk (``i`` itself when ``rows`` is None)
    into group ``codes[i]``, one of ``0 .. n - 1``."""

    def __init__(self, codes: np.ndarray, n: int, rows: np.ndarray | None = None) -> None:
        self.codes = np.asarray(codes, dtype=np.intp)
        self.n = n
        self.rows = None if rows is None else np.asarray(rows, dtype=np.intp)

    @cached_property
    def _order(self) -> np.ndarray:
        """The chunk's rows sorted by group; within a group, in chunk order."""
        order = np.argsort(self.codes, kind="stable")
        return order if self.rows is None else self.rows[order]

    @cached_property
    def _bounds(self) -> list[int]:
        """Group ``g``'s rows are ``_order[_bounds[g]:_bounds[g + 1]]``."""
        return [0, *np.cumsum(self.sizes()).tolist()]

    def sizes(self) -> np.ndarray:
        """Rows per group (int64): one array per Groups, which callers only read."""
        return self._sizes

    @cached_property
    def _sizes(self) -> np.ndarray:
        # counted once: an aggregate (an assertion's judged events) and the engine (each
        # partial's rows) both ask for every chunk, ~10 µs each
        return np.bincount(self.codes, minlength=self.n).astype(np.int64)

    def sums(self, per_row: np.ndarray) -> np.ndarray:
        """Per group, how many of its rows a boolean per-row array marks (int64)."""
        marked = np.asarray(per_row, dtype=bool)
        if self.rows is not None:
            marked = marked[self.rows]
        return np.bincount(self.codes[marked], minlength=self.n).astype(np.int64)

    def split(self, per_row: np.ndarray) -> list[np.ndarray]:
        """A per-row numpy array cut into one array per group (rows in chunk order)."""
        return _cut(np.asarray(per_row)[self._order], self._bounds)

    def split_finite(self, values: np.ndarray) -> list[np.ndarray]:
        """:meth:`split` of a float array with its NaNs (nulls) left out."""
        known = ~np.isnan(values)
        if known.all():
            return self.split(values)
        kept = known[self._order]
        sorted_codes = np.sort(self.codes, kind="stable")
        sizes = np.bincount(sorted_codes[kept], minlength=self.n)
        return _cut(values[self._order[kept]], [0, *np.cumsum(sizes).tolist()])

    def frames(self, frame: pd.DataFrame) -> Iterator[pd.DataFrame]:
        """The chunk's rows of each group as DataFrames: one ``take``, then slices."""
        if self.n == 1 and self.rows is None:
            yield frame
            return
        ordered = frame.take(self._order)
        bounds = self._bounds
        for g in range(self.n):
            yield ordered.iloc[bounds[g] : bounds[g + 1]]


def _cut(ordered: np.ndarray, bounds: list[int]) -> list[np.ndarray]:
    return [ordered[bounds[g] : bounds[g + 1]] for g in range(len(bounds) - 1)]
