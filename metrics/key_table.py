"""Per-key state for the keys of a window, bounded: the keys of the smallest hash.

Checks across the events of one key — "events with the same ``request_id`` agree on the
prediction" (:mod:`metrics.key_consistency`), "no ``view_id`` twice in an hour"
(:mod:`metrics.uniqueness`) — must remember every key of the window, which no fixed
memory can do exactly. A :class:`KeyTable` keeps, per key, its count of events and (for
a consistency check) up to ``keep`` of its distinct values, those of the smallest (hash,
text), for at most ``k`` keys: those of the smallest (hash of the key, key text), as a
:class:`~metrics.bottom_k.BottomK` would. While the window has no more keys than that,
the table holds them all and the check is exact. Past it, the table holds a uniform
sample of the keys — the same in every stage, whatever the chunking or order, since
which keys hash lowest depends only on the set of keys — and every key it holds is
complete (a key among the ``k`` lowest of the union is among the lowest of every part
it was seen in, so no part dropped its events). The check's shares are then those of
the sample, the table says so (``dropped``), and the number of keys is estimated from
the largest hash kept (:func:`estimated_keys`, a k-minimum-values estimate: relative
standard error about ``1 / sqrt(k)``).

**Why arrays, not a dict of records.** A micro-batch of 4,000 events brings thousands of
(segment, window, key) records; a Python record and dict update each cost microseconds,
hundreds of times a rate metric's whole work. The table therefore holds numpy arrays in
its canonical order (keys by hash then text; a key's values likewise) and takes a
chunk's keys as arrays too (:class:`Keys`). They wait in a queue and are merged in by
one sort of everything held and queued (:meth:`KeyTable.held`) once the queue holds
``max(k, 4096)`` keys, or when the table is read: the result depends only on the set of
(key, value) pairs and events seen, so when the merge happens changes nothing. Keys
hashing above the largest hash of a full table are dropped on arrival, and a chunk
brings at most its ``k`` lowest: between chunks a table holds fewer than ``k + max(k,
4096)`` keys, about twice the bound, each with at most ``keep`` values.

>>> table = KeyTable(2)
>>> chunk = KeyChunk(pd.Series(["a", "b", "a", "c"]))
>>> table.add(chunk.keys(np.array([0, 1, 2]), np.array([2, 1, 1])))
>>> len(table), table.dropped
(2, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Self

import numpy as np
import pandas as pd

from metrics.bottom_k import id_hashes, id_texts

__all__ = ["MAX_KEYS", "KeyChunk", "KeyTable", "Keys", "add_by_group", "estimated_keys",
           "text_array"]

MAX_KEYS = 1_000_000  # the largest table a definition may ask for
QUEUE_KEYS = 4_096  # a table merges its queue in once it holds max(k, this) keys

_NO_INTS = np.empty(0, dtype=np.intp)
_NO_HASHES = np.empty(0, dtype=np.uint64)
_NO_TEXTS = np.empty(0, dtype=object)


class Keys(NamedTuple):
    """Keys with their events and values, as arrays: key ``i`` has text ``texts[i]``,
    hash ``hashes[i]`` and ``events[i]`` events; value ``j`` (its JSON text and hash)
    belongs to key ``owners[j]``."""

    hashes: np.ndarray  # uint64
    texts: np.ndarray  # object: str
    events: np.ndarray  # int64
    owners: np.ndarray = _NO_INTS  # intp
    value_hashes: np.ndarray = _NO_HASHES  # uint64
    value_texts: np.ndarray = _NO_TEXTS  # object: str

    def where(self, kept: np.ndarray) -> Keys:
        """The keys a boolean mask keeps, with their values."""
        if kept.all():
            return self
        index = np.cumsum(kept) - 1  # a kept key's new position
        owned = kept[self.owners]
        return Keys(self.hashes[kept], self.texts[kept], self.events[kept],
                    index[self.owners[owned]], self.value_hashes[owned],
                    self.value_texts[owned])


_EMPTY = Keys(_NO_HASHES, _NO_TEXTS, np.empty(0, dtype=np.int64))


class KeyChunk:
    """One chunk's keys: each row's code into the distinct keys (-1 for a null key), and
    each distinct key's text and hash, computed once for every group of the chunk."""

    def __init__(self, keys: pd.Series) -> None:
        codes, uniques = pd.factorize(keys)
        self.codes = np.asarray(codes, dtype=np.intp)
        texts = id_texts(uniques)
        self.texts = text_array(texts)
        self.hashes = id_hashes(texts)

    def keys(self, codes: np.ndarray, events: np.ndarray, owners: np.ndarray = _NO_INTS,
             value_hashes: np.ndarray = _NO_HASHES, value_texts: np.ndarray = _NO_TEXTS
             ) -> Keys:
        """The keys of distinct ``codes`` with their events (and values, ``owners``
        indexing ``codes``)."""
        return Keys(self.hashes[codes], self.texts[codes], np.asarray(events, np.int64),
                    owners, value_hashes, value_texts)


class KeyTable:
    """At most ``k`` keys of the smallest (hash, text), each with its events and at most
    ``keep`` distinct values of the smallest (hash, text) (see the module).

    ``dropped`` says whether a key was ever left out for want of room, here or in a table
    merged in: then the keys seen were more than ``k``.
    """

    __slots__ = ("_dropped", "_held", "_queue", "_queued", "k", "keep")

    def __init__(self, k: int, keep: int = 0) -> None:
        self.k = k
        self.keep = keep
        self._dropped = False
        self._held = _EMPTY  # in canonical order, at most k keys
        self._queue: list[Keys] = []
        self._queued = 0

    @property
    def dropped(self) -> bool:
        self.held()
        return self._dropped

    def __len__(self) -> int:
        return len(self.held().hashes)

    def bound(self) -> int | None:
        """The largest hash kept while the table is full (a key hashing above it cannot
        get in), or None while there is room."""
        held = self.held()
        return int(held.hashes[-1]) if len(held.hashes) == self.k else None

    def add(self, keys: Keys) -> None:
        """Take distinct keys' events and values (merged in later: see the module)."""
        if not len(keys.hashes):
            return
        limit = None
        if len(keys.hashes) > self.k:
            limit = np.partition(keys.hashes, self.k - 1)[self.k - 1]
        if len(self._held.hashes) == self.k:  # nothing above the held bound gets in
            bound = self._held.hashes[-1]
            limit = bound if limit is None else min(limit, bound)
        if limit is not None:
            fits = keys.hashes <= limit
            if not fits.all():
                self._dropped = True
                keys = keys.where(fits)
        self._queue.append(keys)
        self._queued += len(keys.hashes)
        if self._queued >= max(self.k, QUEUE_KEYS):
            self.held()

    def merge(self, other: Self) -> None:
        if (other.k, other.keep) != (self.k, self.keep):
            raise ValueError(f"cannot merge a table of {other.k} keys with {other.keep} "
                             f"values each into one of {self.k} with {self.keep}")
        self.add(other.held())
        self._dropped |= other._dropped

    def held(self) -> Keys:
        """The keys held, in canonical order: by (hash, text); each key's values, at most
        ``keep``, likewise."""
        if self._queue:
            self._held, over = _canonical([self._held, *self._queue], self.k, self.keep)
            self._dropped |= over
            self._queue, self._queued = [], 0
        return self._held

    def restore(self, keys: Keys, dropped: bool) -> None:
        """Fill this empty table with stored keys (no key twice: checked by the caller
        from the table's length)."""
        self.add(keys)
        self.held()
        self._dropped = dropped

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeyTable) or (self.k, self.keep) != (other.k, other.keep):
            return False
        mine, theirs = self.held(), other.held()
        return self._dropped == other._dropped and all(
            len(a) == len(b) and bool((a == b).all())
            for a, b in zip(mine, theirs, strict=True))

    def __repr__(self) -> str:
        return f"KeyTable(k={self.k}, keep={self.keep}, keys={len(self)})"


def add_by_group(tables: Sequence[KeyTable], chunk: KeyChunk, groups: np.ndarray,
                 codes: np.ndarray, events: np.ndarray, owners: np.ndarray = _NO_INTS,
                 value_hashes: np.ndarray = _NO_HASHES, value_texts: np.ndarray = _NO_TEXTS
                 ) -> None:
    """Add to ``tables[g]`` the keys ``codes`` (of ``chunk``) of entries with ``groups ==
    g`` and their ``events``; entries sorted by group, a group's codes distinct. Values,
    if any, are sorted by ``owners``: the entry they belong to."""
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]]).tolist()
    for begin, stop in zip(starts, [*starts[1:], len(groups)], strict=True):
        first, last = np.searchsorted(owners, [begin, stop]).tolist()
        tables[int(groups[begin])].add(chunk.keys(
            codes[begin:stop], events[begin:stop], owners[first:last] - begin,
            value_hashes[first:last], value_texts[first:last]))


def text_array(texts: list[str]) -> np.ndarray:
    """Texts as a numpy object array (``np.array`` would make fixed-width strings)."""
    array = np.empty(len(texts), dtype=object)
    array[:] = texts
    return array


def estimated_keys(table: KeyTable) -> float:
    """How many keys were seen: exactly the keys held, or, once some were dropped, the
    k-minimum-values estimate ``(k - 1) / (largest hash kept / 2**64)``."""
    if not table.dropped:
        return float(len(table))
    bound = table.bound()
    assert bound is not None  # a table that dropped a key is full
    return (table.k - 1) / ((bound + 1) / 2.0**64)


def _canonical(parts: list[Keys], k: int, keep: int) -> tuple[Keys, bool]:
    """The union of ``parts`` in canonical order — a key's events added, its values
    united — cut to the ``k`` lowest keys and ``keep`` lowest values a key; and whether
    there were more keys than ``k``."""
    every = _concatenated(parts)
    order, starts = _sorted_runs((every.hashes,), every.texts)
    firsts = np.flatnonzero(starts)
    key_of = np.empty(len(order), dtype=np.intp)  # each entry's position among the keys
    key_of[order] = np.cumsum(starts) - 1
    events = np.add.reduceat(every.events[order], firsts) if len(order) else every.events
    over = len(firsts) > k
    firsts, events = firsts[:k], events[:k]
    chosen = order[firsts]
    if not keep:
        return Keys(every.hashes[chosen], every.texts[chosen], events), over
    owners = key_of[every.owners]
    inside = owners < len(firsts)
    owners = owners[inside]
    value_hashes, value_texts = every.value_hashes[inside], every.value_texts[inside]
    value_order, value_starts = _sorted_runs((owners, value_hashes), value_texts)
    distinct = value_order[value_starts]
    owners = owners[distinct]  # sorted
    rank = np.arange(len(owners)) - np.searchsorted(owners, owners)  # within its key
    distinct = distinct[rank < keep]
    return Keys(every.hashes[chosen], every.texts[chosen], events, owners[rank < keep],
                value_hashes[distinct], value_texts[distinct]), over


def _concatenated(parts: list[Keys]) -> Keys:
    """One :class:`Keys` of all ``parts`` (a key may be in several)."""
    offsets = np.cumsum([0, *(len(part.hashes) for part in parts[:-1])])
    return Keys(np.concatenate([part.hashes for part in parts]),
                np.concatenate([part.texts for part in parts]),
                np.concatenate([part.events for part in parts]),
                np.concatenate([part.owners + offset
                                for part, offset in zip(parts, offsets.tolist(), strict=True)]),
                np.concatenate([part.value_hashes for part in parts]),
                np.concatenate([part.value_texts for part in parts]))


def _sorted_runs(numbers: tuple[np.ndarray, ...], texts: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The order of entries by (``numbers``..., text), and in that order whether each
    entry starts a run of equal ones. The numbers include a 64-bit hash of the text, so
    two texts compare only when their hashes are equal: the same text, but for a
    collision, which falls back to sorting with Python tuples."""
    # any order within a run of equal numbers will do: each run is one entry
    order = np.argsort(numbers[0]) if len(numbers) == 1 else np.lexsort(numbers[::-1])
    same = np.ones(max(len(order) - 1, 0), dtype=bool)
    for column in numbers:
        ordered = column[order]
        same &= ordered[1:] == ordered[:-1]
    if same.any():
        ordered_texts = texts[order]
        ties = np.flatnonzero(same)
        if not (ordered_texts[ties + 1] == ordered_texts[ties]).all():
            rows = list(zip(*(column.tolist() for column in numbers), texts.tolist(),
                            strict=True))
            order = np.array(sorted(range(len(rows)), key=rows.__getitem__), dtype=np.intp)
            same = np.array([rows[a] == rows[b] for a, b in
                             zip(order[:-1].tolist(), order[1:].tolist(), strict=True)],
                            dtype=bool)
    return order, np.r_[True, ~same] if len(order) else np.empty(0, dtype=bool)
