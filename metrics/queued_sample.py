"""An assertion's bottom-k sample whose candidates wait as arrays, spelled when read.

:class:`~metrics.bottom_k.BottomK` holds each sampled event as its JSON record. Spelling
a record (a float's repr, a time's ISO text) and inserting it cost most of an
assertion's update: a micro-batch of 4,000 events brings a few dozen violations, and
while a window's sample fills, nearly each needs a record — records most of which a
later, lower hash pushes out before anyone reads them. Here a chunk's candidates are
taken as arrays instead (:class:`ColumnBatch`: the id texts, their hashes, and each
column of the record as :class:`~metrics.sample_records.Taken` values, shared by every
group of the chunk), and a sample only queues (batch, positions) pairs. Records are
spelled when the sample is read — serialized, compared, or its examples listed — and
put through a :class:`BottomK`, which ranks the ids and keeps each id's smallest record
exactly as before: the result depends only on the candidates seen, so when the queue is
worked through changes nothing, and the stored bytes are those the record-at-a-time
sample wrote.

**Reads are incremental.** The streaming stage serializes every state a micro-batch
touched, after each micro-batch. So the spelled sample stays (a BottomK of at most k
ids), and a read only spells and offers the candidates queued since the last one whose
hash is at most the bound, then empties the queue; the records joined for
``to_bytes`` are kept until the sample changes. A chunk's batch spells all its rows the
first time one of its groups is read, and keeps them for the others (the chunk's
groups are read one after another). While windows fill (most violations get in), a
stage that stores each micro-batch still spells nearly every violation, as the
record-at-a-time sample did; the engine alone (batch, research, streaming between
reads) spells the sample's ids alone.

**Memory.** Once more than ``queue_bound(k) = max(4k, 256)`` entries were queued since
the last trim or read, the queue is trimmed with numpy alone: the entries of hash above
the k-th smallest distinct hash queued cannot be in the sample and go (every entry of a
kept id stays: its record is chosen when spelled), and the rest are gathered out of the
chunks' batches into one batch of their own, letting go of those. That k-th hash becomes
the bound above which a chunk's candidates are not even queued, and a group takes at
most the k lowest distinct hashes of a chunk. Should more than ``2 * queue_bound(k)``
entries be left after a trim (an id seen in many events), they are spelled into the
sample. So after each :meth:`QueuedSample.add` a sample holds at most
``3 * queue_bound(k)`` queued entries and k spelled ones (1,300 for k = 100), whatever
the number of violations; the chunks' batches its entries come from are shared with the
chunk's other groups (with their rows' records once one of them was read) and let go
at its next trim or read.

>>> from metrics.bottom_k import id_hash, id_hashes
>>> from metrics.sample_records import as_is, object_array, Taken
>>> def batch(ids):
...     texts = object_array(ids)
...     return ColumnBatch(id_hashes(ids), texts, ('{"id":', "}"),
...                        (Taken(as_is, object_array([f'"{i}"' for i in ids])),))
>>> sample = QueuedSample(2)
>>> sample.add(batch(["ann", "bob", "cid"]), np.array([0, 1, 2]))
>>> sample.add(batch(["dan"]), np.array([0]))
>>> [text for text, _ in sample.items()]
['dan', 'cid']
>>> sorted(["ann", "bob", "cid", "dan"], key=id_hash)[:2]
['dan', 'cid']
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np

from metrics.bottom_k import BottomK
from metrics.sample_records import Taken

__all__ = ["NO_BOUND", "ColumnBatch", "QueuedSample", "queue_bound"]

NO_BOUND = int(np.iinfo(np.uint64).max)  # a sample with room takes any hash


def queue_bound(k: int) -> int:
    """How many entries a sample queues before it is trimmed (see the module)."""
    return max(4 * k, 256)


class ColumnBatch:
    """Candidates as arrays: ``texts[i]`` (an id's text) hashes to ``hashes[i]``, and its
    record is ``parts[0] + column 0's text + parts[1] + ... + parts[-1]``.

    A chunk's batch is shared by its groups' samples; the first of them read spells the
    records of every row at once and keeps them for the others (the streaming stage
    reads every sample a micro-batch touched right after it: one spelling per chunk, not
    one per group, whose fixed cost was most of a read's)."""

    __slots__ = ("_offers", "columns", "hashes", "parts", "texts")

    def __init__(self, hashes: np.ndarray, texts: np.ndarray, parts: tuple[str, ...],
                 columns: tuple[Taken, ...]) -> None:
        self.hashes = hashes  # uint64
        self.texts = texts  # objects: str
        self.parts = parts
        self.columns = columns
        # every row as (id text, hash, record), once one was read
        self._offers: list[tuple[str, int, str]] | None = None

    def offers(self, at: np.ndarray, bound: int = NO_BOUND) -> list[tuple[str, int, str]]:
        """(id text, hash, record) of the rows at ``at`` whose hash is at most ``bound``.
        Picked out of Python lists: a group reads a few rows, for which numpy's fancy
        indexing, once per array, cost more than the loop."""
        if self._offers is None:
            records = fill(self.parts, [c.texts() for c in self.columns], len(self.hashes))
            self._offers = list(zip(self.texts.tolist(), self.hashes.tolist(), records,
                                    strict=True))
        offers = self._offers
        if bound == NO_BOUND:
            return [offers[i] for i in at.tolist()]
        return [offer for i in at.tolist() if (offer := offers[i])[1] <= bound]

    def signature(self) -> tuple[Any, ...]:
        """What batches must share to be gathered into one: their columns' spelling."""
        return (ColumnBatch, self.parts,
                *((c.spell, c.values.dtype) for c in self.columns))

    def gather(self, picks: list[tuple[Self, np.ndarray]]) -> Self:
        """One batch of ``picks``' entries (batches of this one's signature)."""
        return type(self)(
            np.concatenate([b.hashes[at] for b, at in picks]),
            np.concatenate([b.texts[at] for b, at in picks]), self.parts,
            tuple(Taken(c.spell, np.concatenate([b.columns[i].values[at] for b, at in picks]))
                  for i, c in enumerate(self.columns)))


class QueuedSample:
    """The k distinct ids of the smallest (hash, id text) among the candidates added,
    each with its smallest record, as a :class:`BottomK` keeps them (see the module)."""

    __slots__ = ("_bound", "_joined", "_limit", "_queue", "_queued", "_spelled", "k")

    def __init__(self, k: int) -> None:
        self.k = k
        # the sample of the candidates spelled so far: read after read, only the
        # candidates queued since the last read are spelled and offered to it
        self._spelled: BottomK[str] = BottomK(k)
        self._joined: str | None = ""  # its records joined (to_bytes), None once changed
        self._queue: list[tuple[ColumnBatch, np.ndarray]] = []  # (batch, positions in it)
        self._queued = 0  # entries queued since the last trim
        self._limit = queue_bound(k)
        self._bound = NO_BOUND  # no hash above it can be in the sample

    def bound(self) -> int:
        """A hash above which no candidate can get into the sample (:data:`NO_BOUND` while
        fewer than k distinct hashes were seen)."""
        return self._bound

    @property
    def entries(self) -> int:
        """How many candidates the sample holds now, spelled or queued (its memory)."""
        return len(self._spelled) + sum(len(at) for _, at in self._queue)

    def add(self, batch: ColumnBatch, at: np.ndarray) -> None:
        """Queue the candidates at positions ``at`` of ``batch``."""
        if not len(at):
            return
        self._queue.append((batch, at))
        self._queued += len(at)
        if self._queued > self._limit:
            self._trim()
            if self.entries > 2 * self._limit:  # an id seen often: one record each
                self._spell()

    def merge(self, other: Self) -> None:
        if other.k != self.k:
            raise ValueError(f"cannot merge a bottom-{other.k} sample into a bottom-{self.k} "
                             "one")
        if other is self:  # the k smallest of a set and itself: the same
            return
        # the k-th hash of either side is at least the k-th of the union
        self._bound = min(self._bound, other._bound)
        if len(other._spelled):
            self._spelled.merge(other._spelled)
            self._spelled_changed()
        for batch, at in other._queue:
            self.add(batch, at)

    def restore(self, entries: list[tuple[str, int, str]]) -> int:
        """Fill this empty sample with stored (id text, hash, record) entries; how many
        distinct ids it holds then."""
        self._spelled.offer_many(entries)
        self._spelled_changed()
        return len(self._spelled)

    def items(self) -> list[tuple[str, str]]:
        """(id text, record) in sample order: by hash, then id text."""
        return list(self._sample().items())

    def joined_records(self) -> str:
        """The records in sample order joined by commas (a JSON array's inside): kept
        until the sample changes, as the streaming stage serializes every state a
        micro-batch touched, most of whose samples are full and take nothing new."""
        sample = self._sample()
        if self._joined is None:
            self._joined = ",".join(sample.records())
        return self._joined

    def __len__(self) -> int:
        return len(self._sample())

    def _sample(self) -> BottomK[str]:
        """The sample, its records spelled."""
        if self._queue:
            self._spell()
        return self._spelled

    def _spell(self) -> None:
        """Spell the records of the queued candidates that may still get in (their hash at
        most the bound), offer them to the spelled sample, and empty
        the queue."""
        bound = self._bound
        if self._queued > self.k:  # the queue's own k-th hash may cut deeper
            kth = kth_distinct(np.concatenate([b.hashes[at] for b, at in self._queue]), self.k)
            if kth is not None:
                bound = min(bound, kth)
        offered = False
        for batch, at in self._queue:
            offers = batch.offers(at, bound)
            if offers:
                self._spelled.offer_many(offers)
                offered = True
        self._queue = []
        self._queued = 0
        if offered:
            self._spelled_changed()

    def _spelled_changed(self) -> None:
        self._joined = None
        full = self._spelled.bound()
        if full is not None:
            self._bound = min(self._bound, full)

    def _trim(self) -> None:
        """Let go of the queued entries that cannot be in the sample, with numpy, and
        gather the rest out of their chunks' batches (see the module)."""
        self._queued = 0
        hashes = np.concatenate([batch.hashes[at] for batch, at in self._queue])
        keep = None
        bound = kth_distinct(hashes, self.k) if len(hashes) > self.k else None
        if bound is not None:
            self._bound = min(self._bound, bound)
        if self._bound != NO_BOUND:
            keep = hashes <= self._bound
        picks: dict[tuple[Any, ...], list[tuple[ColumnBatch, np.ndarray]]] = {}
        start = 0
        for batch, at in self._queue:
            stop = start + len(at)
            if keep is not None:
                at = at[keep[start:stop]]
            if len(at):
                picks.setdefault(batch.signature(), []).append((batch, at))
            start = stop
        # gathered even from one batch: a chunk's batch holds its other groups' rows too
        self._queue = [(gathered, np.arange(len(gathered.hashes)))
                       for gathered in (same[0][0].gather(same) for same in picks.values())]

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, QueuedSample) and self.k == other.k
                and self._sample() == other._sample())

    def __repr__(self) -> str:
        return f"QueuedSample(k={self.k}, ids={[text for text, _ in self.items()]})"


def kth_distinct(hashes: np.ndarray, k: int) -> int | None:
    """The k-th smallest distinct value of ``hashes``, or None when there are fewer.

    >>> kth_distinct(np.array([5, 1, 1, 3, 9], dtype=np.uint64), 3)
    5
    """
    if len(hashes) < k:
        return None
    kth = np.partition(hashes, k - 1)[k - 1]  # the k-th counting repeats
    lower = hashes[hashes <= kth]
    if len(np.unique(lower)) == k:  # k distinct up to it: it is the k-th
        return int(kth)
    distinct = np.unique(hashes)
    return int(distinct[k - 1]) if len(distinct) >= k else None


def fill(parts: tuple[str, ...], columns: list[list[str]], n: int) -> list[str]:
    """``n`` records, the i-th ``parts[0] + columns[0][i] + parts[1] + ... + parts[-1]``.

    Laid out in one list by slice assignments, joined once and split again at a NUL
    (which canonical JSON escapes): the C string methods do what ``template % values``
    did a record at a time, in about two thirds of its time for a chunk's few dozen."""
    width = 2 * len(columns) + 1
    laid: list[str] = [""] * (width * n)
    for i, column in enumerate(columns):
        laid[2 * i::width] = [parts[i]] * n
        laid[2 * i + 1::width] = column
    laid[width - 1::width] = [parts[-1] + "\0"] * n
    return "".join(laid).split("\0")[:n]

