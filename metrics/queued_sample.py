"""An assertion's bottom-k sample whose candidates wait as arrays, spelled when read.

:class:`~metrics.bottom_k.BottomK` holds each sampled event as its JSON record. Spelling
a record (a float's repr, a time's ISO text) and inserting it cost most of an
assertion's update: a micro-batch of 4,000 events brings a few dozen violations, and
while a window's sample fills, nearly each needs a record — records most of which a
later, lower hash pushes out before anyone reads them. Here a chunk's candidates are
taken as arrays instead (:class:`ColumnBatch`: the id texts, their hashes, and each
column of the record as :class:`~metrics.sample_records.Taken` values, shared by every
group of the chunk), and a sample only queues (batch, positions) pairs. Records are
spelled when the sample is read — serialized, compared, or its examples listed — for its
k ids alone, and then put through a :class:`BottomK`, which ranks the ids and keeps each
id's smallest record exactly as before: the result depends only on the candidates seen,
so when the queue is worked through changes nothing, and the stored bytes are those the
record-at-a-time sample wrote.

**Memory.** Once more than ``queue_bound(k) = max(4k, 256)`` entries were queued since
the last trim, the queue is trimmed with numpy alone: the entries of hash above the k-th
smallest distinct hash queued cannot be in the sample and go (every entry of a kept id
stays: its record is chosen when spelled), and the rest are gathered out of the chunks'
batches into one batch of their own, letting go of those. That k-th hash becomes the
bound above which a chunk's candidates are not even queued, and a group takes at most
the k lowest distinct hashes of a chunk. Should more than ``2 * queue_bound(k)`` entries
be left after a trim (an id seen in many events), their records are spelled and each id
keeps one, at most k in all. So after each :meth:`QueuedSample.add` a sample holds at
most ``3 * queue_bound(k)`` entries (1,200 for k = 100), whatever the number of
violations; the chunks' batches its entries come from are shared with the chunk's other
groups and let go at its next trim.

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

from typing import Any, NamedTuple, Self

import numpy as np

from metrics.bottom_k import BottomK
from metrics.sample_records import Taken, object_array

__all__ = ["NO_BOUND", "ColumnBatch", "QueuedSample", "RecordBatch", "queue_bound"]

NO_BOUND = int(np.iinfo(np.uint64).max)  # a sample with room takes any hash


def queue_bound(k: int) -> int:
    """How many entries a sample queues before it is trimmed (see the module)."""
    return max(4 * k, 256)


class ColumnBatch(NamedTuple):
    """Candidates as arrays: ``texts[i]`` (an id's text) hashes to ``hashes[i]``, and its
    record is ``parts[0] + column 0's text + parts[1] + ... + parts[-1]``."""

    hashes: np.ndarray  # uint64
    texts: np.ndarray  # objects: str
    parts: tuple[str, ...]
    columns: tuple[Taken, ...]

    def records(self, at: np.ndarray) -> list[str]:
        return fill(self.parts, [Taken(c.spell, c.values[at]).texts() for c in self.columns],
                    len(at))

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


class RecordBatch(NamedTuple):
    """Candidates with their records spelled: stored ones, or a sample once read."""

    hashes: np.ndarray  # uint64
    texts: np.ndarray  # objects: str
    recorded: np.ndarray  # objects: str

    def records(self, at: np.ndarray) -> list[str]:
        return self.recorded[at].tolist()

    def signature(self) -> tuple[Any, ...]:
        return (RecordBatch,)

    def gather(self, picks: list[tuple[Self, np.ndarray]]) -> Self:
        return type(self)(np.concatenate([b.hashes[at] for b, at in picks]),
                          np.concatenate([b.texts[at] for b, at in picks]),
                          np.concatenate([b.recorded[at] for b, at in picks]))

    @classmethod
    def of(cls, entries: list[tuple[str, int, str]]) -> Self:
        """A batch of (id text, hash, record) entries."""
        return cls(np.array([h for _, h, _ in entries], dtype=np.uint64),
                   object_array([t for t, _, _ in entries]),
                   object_array([r for _, _, r in entries]))


Batch = ColumnBatch | RecordBatch


class QueuedSample:
    """The k distinct ids of the smallest (hash, id text) among the candidates added,
    each with its smallest record, as a :class:`BottomK` keeps them (see the module)."""

    __slots__ = ("_bound", "_limit", "_queue", "_queued", "_read", "k")

    def __init__(self, k: int) -> None:
        self.k = k
        self._queue: list[tuple[Batch, np.ndarray]] = []  # (batch, positions in it)
        self._queued = 0  # entries queued since the last trim
        self._limit = queue_bound(k)
        self._bound = NO_BOUND  # no hash above it can be in the sample
        self._read: BottomK[str] | None = None  # the sample, while nothing was added since

    def bound(self) -> int:
        """A hash above which no candidate can get into the sample (:data:`NO_BOUND` while
        fewer than k distinct hashes were seen)."""
        return self._bound

    @property
    def entries(self) -> int:
        """How many candidates the sample holds now, spelled or queued (its memory)."""
        return sum(len(at) for _, at in self._queue)

    def add(self, batch: Batch, at: np.ndarray) -> None:
        """Queue the candidates at positions ``at`` of ``batch``."""
        self._queue.append((batch, at))
        self._read = None
        self._queued += len(at)
        if self._queued > self._limit:
            self._trim()
            if self.entries > 2 * self._limit:  # an id seen often: one record each
                self._spell()

    def merge(self, other: Self) -> None:
        if other.k != self.k:
            raise ValueError(f"cannot merge a bottom-{other.k} sample into a bottom-{self.k} "
                             "one")
        # the k-th hash of either side is at least the k-th of the union
        self._bound = min(self._bound, other._bound)
        for batch, at in list(other._queue):  # a copy: other may be this sample
            self.add(batch, at)

    def restore(self, entries: list[tuple[str, int, str]]) -> int:
        """Fill this empty sample with stored (id text, hash, record) entries; how many
        distinct ids it holds then."""
        self.add(RecordBatch.of(entries), np.arange(len(entries)))
        return len(self.items())

    def items(self) -> list[tuple[str, str]]:
        """(id text, record) in sample order: by hash, then id text."""
        return list(self._sample().items())

    def __len__(self) -> int:
        return len(self._sample())

    def _sample(self) -> BottomK[str]:
        """The sample, its records spelled (kept until something is added)."""
        if self._read is None:
            self._trim()
            self._spell()
        assert self._read is not None
        return self._read

    def _spell(self) -> None:
        """Spell the records of the candidates queued, and keep the sample they make."""
        sample: BottomK[str] = BottomK(self.k)
        for batch, at in self._queue:
            sample.offer_many(zip(batch.texts[at].tolist(), batch.hashes[at].tolist(),
                                  batch.records(at), strict=True))
        hashes = {text: hashed for text, hashed, _ in sample.hashed_items()}
        entries = [(text, hashes[text], record) for text, record in sample.items()]
        self._queue = [(RecordBatch.of(entries), np.arange(len(entries)))]
        self._queued = 0
        if len(entries) == self.k:
            self._bound = min(self._bound, entries[-1][1])
        self._read = sample

    def _trim(self) -> None:
        """Let go of the entries that cannot be in the sample, with numpy, and gather the
        rest out of their chunks' batches (see the module)."""
        self._queued = 0
        if not self._queue or (len(self._queue) == 1
                               and isinstance(self._queue[0][0], RecordBatch)):
            return  # empty, or spelled already: a sample read, or restored
        hashes = np.concatenate([batch.hashes[at] for batch, at in self._queue])
        keep = None
        if len(hashes) > self.k:
            bound = kth_distinct(hashes, self.k)
            if bound is not None:
                self._bound = min(self._bound, bound)
                keep = hashes <= self._bound
        picks: dict[tuple[Any, ...], list[tuple[Any, np.ndarray]]] = {}
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

