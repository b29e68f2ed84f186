"""A sample that merges exactly: the k distinct ids with the smallest hash (bottom-k).

A random sample of the violating events would differ between research, batch and
streaming: each stage sees the events in other chunks and another order. Ranking the ids
by a hash of their own bytes instead gives every stage the same sample, since which ids
are the k smallest depends only on the set of ids seen. It is still a uniform sample of
the distinct ids — a good hash orders them like a random permutation — and merging is
exact: the k smallest of a union are the k smallest of the union of each part's k smallest.

The hash is BLAKE2b (8 bytes, a fixed personalisation) of the id's text in UTF-8 — an
integer id's text is its decimal digits — so it is the same on every machine and in every
process, unlike Python's ``hash()`` of a string. Ids are ordered by (hash, id text), so
even two ids with equal hashes have one order. An id seen in several events keeps one
record: the smallest (records are canonical JSON text), whatever the order they came in.
(Consistency checks keep the keys of the smallest hash the same way, with a record per
key that unites its events: as numpy arrays, :mod:`metrics.key_table`.)

>>> sample = BottomK(2)
>>> for user in ["ann", "bob", "cid", "dan"]:
...     sample.offer(user, f'{{"id":"{user}"}}')
>>> [id_text for id_text, _ in sample.items()]
['dan', 'cid']
>>> other = BottomK(2)
>>> other.offer("eve", '{"id":"eve"}')
>>> other.offer("ann", '{"id":"ann"}')
>>> sample.merge(other)
>>> [id_text for id_text, _ in sample.items()]
['dan', 'cid']
>>> sorted(["ann", "bob", "cid", "dan", "eve"], key=id_hash)
['dan', 'cid', 'eve', 'ann', 'bob']
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Iterator
from numbers import Integral
from typing import Any, Generic, Self, TypeVar

import numpy as np
import pandas as pd

from metrics.arrow_strings import arrow_strings_at

__all__ = ["BottomK", "id_hash", "id_hashes", "id_text", "id_texts", "id_texts_at"]

_PERSON = b"dm-bottom-k-v1"  # part of the hash: a new formula would be a new sample


def id_text(value: Any) -> str:
    """The canonical text of an id: a string as it is, an integer as its decimal digits.

    Floats and booleans are refused: ``1.0`` and ``True`` would each name an id that
    another stage could spell differently.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, Integral) and not isinstance(value, bool | np.bool_):
        return str(int(value))
    raise TypeError(f"an id must be a string or an integer, not {type(value).__name__} "
                    f"({value!r})")


def id_texts(ids: Any) -> list[str]:
    """:func:`id_text` of each of ``ids`` (a pandas or numpy array without nulls);
    integers as Python spells them (numpy's ``astype(str)`` is slower)."""
    if pd.api.types.is_integer_dtype(ids.dtype):  # no nulls: plain numpy integers
        return list(map(str, np.asarray(ids, dtype=ids.dtype.numpy_dtype
                                        if hasattr(ids.dtype, "numpy_dtype")
                                        else ids.dtype).tolist()))
    values = list(ids)
    if all(type(value) is str for value in values):
        return values
    return [id_text(value) for value in values]


def id_texts_at(values: Any, rows: np.ndarray) -> tuple[list[str], np.ndarray]:
    """:func:`id_text` of ``values`` (a column's numpy or extension array, as
    :func:`metrics.frame_columns.column_values` gives it) at positions ``rows``, the
    rows with a null id left out; and the rows it kept (``rows`` itself when none is null).

    An assertion needs the ids of a chunk's violating rows alone; taking them out of a
    pandas array first (``values[rows]``, then ``pd.isna``) cost more than spelling them.
    The usual id columns are read directly: numpy integers, pandas' nullable integers
    (their values and mask) and Arrow strings (:mod:`metrics.arrow_strings`).

    >>> id_texts_at(pd.array([7, None, 9], dtype="Int64"), np.array([0, 1, 2]))
    (['7', '9'], array([0, 2]))
    >>> id_texts_at(pd.array(["a", "b", None], dtype="str"), np.array([1, 0]))
    (['b', 'a'], array([1, 0]))
    """
    rows = np.asarray(rows, dtype=np.intp)
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":  # cannot be null
        return list(map(str, values[rows].tolist())), rows
    if isinstance(values, pd.arrays.IntegerArray):
        data, mask = getattr(values, "_data", None), getattr(values, "_mask", None)
        if isinstance(data, np.ndarray) and isinstance(mask, np.ndarray):
            null = mask[rows]
            if null.any():
                rows = rows[~null]
            return list(map(str, data[rows].tolist())), rows
    found: list[Any] | None = arrow_strings_at(values, rows)
    if found is None:  # any other array: taken the pandas way
        taken = values[rows] if isinstance(values, np.ndarray) else values.take(rows)
        known = ~np.asarray(pd.isna(taken), dtype=bool)
        if not known.all():
            rows, taken = rows[known], taken[known]
        found = list(taken)
    elif None in found:  # a null string
        known = np.array([value is not None for value in found], dtype=bool)
        rows, found = rows[known], [value for value in found if value is not None]
    if all(type(value) is str for value in found):
        return found, rows
    return [id_text(value) for value in found], rows


_BLANK = hashlib.blake2b(digest_size=8, person=_PERSON)  # copied: cheaper than a new one


def id_hash(text: str) -> int:
    """The 64-bit hash of an id's canonical text (see :func:`id_text`)."""
    digest = _BLANK.copy()
    digest.update(text.encode("utf-8"))
    return int.from_bytes(digest.digest(), "big")


def id_hashes(texts: Iterable[str]) -> np.ndarray:
    """:func:`id_hash` of each text, as uint64."""
    digests = []
    for text in texts:
        digest = _BLANK.copy()
        digest.update(text.encode("utf-8"))
        digests.append(digest.digest())
    return np.frombuffer(b"".join(digests), dtype=">u8").astype(np.uint64)


R = TypeVar("R")


class BottomK(Generic[R]):
    """At most ``k`` (id text -> record) entries: those of the smallest (hash, id text).

    Of two records of one id the smaller is kept. ``dropped`` says whether an id was
    ever left out for want of room, here or in a sample merged in: then the ids seen were
    more than ``k``. It is not part of equality (a stored sample need not keep it: an
    assertion counts its violations apart).
    """

    __slots__ = ("_entries", "_order", "dropped", "k")

    def __init__(self, k: int) -> None:
        self.k = k
        self.dropped = False
        self._entries: dict[str, tuple[int, R]] = {}  # id text -> (hash, record)
        # The same ids as (hash, id text), sorted: the bound is its last while the sample
        # is full, and an id that gets in costs one insertion and one deletion, where
        # working the k smallest out again cost most of the time of an offer
        self._order: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self._entries)

    def bound(self) -> int | None:
        """The largest hash kept while the sample is full (an id hashing above it cannot
        get in), or None while there is room."""
        return self._order[-1][0] if len(self._order) >= self.k else None

    def offer(self, text: str, record: R, hashed: int | None = None) -> None:
        """Add an id's record (``hashed``: its :func:`id_hash`, when known)."""
        self.offer_many([(text, id_hash(text) if hashed is None else hashed, record)])

    def offer_many(self, offers: Iterable[tuple[str, int, R]]) -> None:
        """Add (id text, hash, record) triples: an id keeps its smallest record, and
        only the k smallest (hash, id text) stay."""
        entries, order, k = self._entries, self._order, self.k
        for text, hashed, record in offers:
            held = entries.get(text)
            if held is not None:
                if record < held[1]:  # type: ignore[operator]  # records are text by default
                    entries[text] = (hashed, record)
                continue
            key = (hashed, text)
            if len(order) >= k and key > order[-1]:
                self.dropped = True  # cannot get in
                continue
            entries[text] = (hashed, record)
            bisect.insort(order, key)
            if len(order) > k:
                del entries[order.pop()[1]]
                self.dropped = True

    def merge(self, other: Self) -> None:
        if other.k != self.k:
            raise ValueError(f"cannot merge a bottom-{other.k} sample into a bottom-{self.k} "
                             "one")
        self.dropped |= other.dropped
        self.offer_many((text, h, record) for text, (h, record) in other._entries.items())

    def items(self) -> Iterator[tuple[str, R]]:
        """(id text, record) in sample order: by hash, then id text."""
        entries = self._entries
        for _, text in self._order:
            yield text, entries[text][1]

    def hashed_items(self) -> Iterator[tuple[str, int, R]]:
        """(id text, hash, record) in no particular order."""
        for text, (hashed, record) in self._entries.items():
            yield text, hashed, record

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, BottomK) and self.k == other.k
                and self._entries == other._entries)

    def __repr__(self) -> str:
        return f"BottomK(k={self.k}, ids={[text for text, _ in self.items()]})"
