"""Per-key state for the keys of a window, bounded: the keys of the smallest hash.

Checks across the events of one key — "events with the same ``request_id`` agree on the
prediction" (:mod:`metrics.key_consistency`), "no ``view_id`` twice in an hour"
(:mod:`metrics.uniqueness`) — must remember every key of the window, which no fixed
memory can do exactly. A key table keeps a record per key (what the check needs: the
key's values, its count of events) for at most ``max_keys`` keys: those of the smallest
hash of the key (a :class:`~metrics.bottom_k.BottomK` whose records combine). While the
window has no more keys than that, the table holds them all and the check is exact. Past
it, the table holds a uniform sample of the keys — the same in every stage, whatever the
chunking or order, since which keys hash lowest depends only on the set of keys — and
every key it holds is complete (a key among the ``max_keys`` lowest of the union is among
the lowest of every part it was seen in, so no part dropped its events). The check's
shares are then those of the sample, the table says so (``dropped``), and the number of
keys is estimated from the largest hash kept (:func:`estimated_keys`, a k-minimum-values
estimate: relative standard error about ``1 / sqrt(max_keys)``).

>>> table = BottomK(2, combine=operator.add)
>>> chunk = KeyChunk(pd.Series(["a", "b", "a", "c"]))
>>> offer(table, chunk, np.array([0, 1, 2]), lambda code: 1)
>>> len(table), table.dropped
(2, True)
"""

from __future__ import annotations

import operator  # noqa: F401 - the doctest's combine
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import pandas as pd

from metrics.bottom_k import BottomK, id_hashes, id_texts

__all__ = ["MAX_KEYS", "KeyChunk", "estimated_keys", "offer"]

MAX_KEYS = 1_000_000  # the largest table a definition may ask for

R = TypeVar("R")


class KeyChunk:
    """One chunk's keys: each row's code into the distinct keys (-1 for a null key), and
    each distinct key's text and hash, computed once for every group of the chunk."""

    def __init__(self, keys: pd.Series) -> None:
        codes, uniques = pd.factorize(keys)
        self.codes = np.asarray(codes, dtype=np.intp)
        self.texts = id_texts(uniques)
        self.hashes = id_hashes(self.texts)


def offer(table: BottomK[R], chunk: KeyChunk, key_codes: np.ndarray,
          record: Callable[[int], R]) -> None:
    """Offer ``table`` the keys ``key_codes`` (distinct codes of ``chunk``), each with
    ``record(code)``; only those that can be among its lowest are built and offered, and a
    key left out marks the table as having dropped one."""
    if not len(key_codes):
        return
    hashes = chunk.hashes[key_codes]
    limit = None
    if len(key_codes) > table.k:
        limit = int(np.partition(hashes, table.k - 1)[table.k - 1])
    bound = table.bound()  # every key held hashes at most this: one above it is new
    if bound is not None:
        limit = bound if limit is None else min(limit, bound)
    if limit is not None:
        fits = hashes <= np.uint64(limit)
        if not fits.all():
            table.dropped = True
            key_codes, hashes = key_codes[fits], hashes[fits]
    table.offer_many((chunk.texts[code], hashed, record(code))
                     for code, hashed in zip(key_codes.tolist(), hashes.tolist(),
                                             strict=True))


def estimated_keys(table: BottomK[R]) -> float:
    """How many keys were seen: exactly the keys held, or, once some were dropped, the
    k-minimum-values estimate ``(k - 1) / (largest hash kept / 2**64)``."""
    if not table.dropped:
        return float(len(table))
    bound = table.bound()
    assert bound is not None  # a table that dropped a key is full
    return (table.k - 1) / ((bound + 1) / 2.0**64)
