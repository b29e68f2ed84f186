"""What a chunk's rows gave an aggregate, kept for another metric that asks the same.

A stream's expectations are metrics of their own and members of its validation summary
(:mod:`metrics.validation`), so each check would judge every row twice: once for its
metric, once for the summary. The engine hands the metrics that read the same rows of a
chunk one memo; an aggregate whose state is counters (:class:`metrics.counters.
RowCounting`) asks it for its per-row counts, which the first to ask computes and the
others reuse. Equal aggregates judge rows alike, so the memo is keyed by the aggregate.

>>> from metrics.expectations import expect_not_null
>>> memo = RowMemo()
>>> check = expect_not_null("user")
>>> frame = pd.DataFrame({"user": ["a", None]})
>>> memo.row_counts(check, frame) is memo.row_counts(expect_not_null("user"), frame)
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from metrics.counters import RowCounting

__all__ = ["RowMemo"]


class RowMemo:
    """Per-row counts of one chunk's rows (the same rows for every caller), by aggregate."""

    __slots__ = ("_found",)

    def __init__(self) -> None:
        self._found: dict[object, Mapping[str, np.ndarray]] = {}

    def row_counts(self, aggregate: RowCounting, frame: pd.DataFrame
                   ) -> Mapping[str, np.ndarray]:
        """``aggregate.row_counts(frame)``, computed once for equal aggregates."""
        try:
            found = self._found.get(aggregate)
        except TypeError:  # a parameter that cannot be hashed: nothing to share by
            return aggregate.row_counts(frame)
        if found is None:
            found = self._found[aggregate] = aggregate.row_counts(frame)
        return found
