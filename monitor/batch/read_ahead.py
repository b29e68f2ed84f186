"""Reading the next slice while this one is computed and stored.

A batch run reads a slice, then computes and stores it, then reads the next: the source
waits while the metrics run and the metrics wait while the source reads. Where a read
spends its time outside Python — ADBC's driver decoding Postgres' ``COPY`` into Arrow in C,
Arrow scanning Parquet — it can run on a thread of its own beside the main thread's Python
(the GIL is released there) and beside the store's round trips to the database, so the
read of slice N+1 overlaps the work on slice N. A source says it pays with
:class:`ReadableAhead`; SQLite (read in this process, in Python), JSON lines and CSV (read
whole) and Spark (computed elsewhere) do not.

What stays as it was without reading ahead:

- **The rows.** Each range is read by the source's own :meth:`chunks`, in the order the run
  asks for them, one read at a time; only where the reading happens changes.
- **A read error fails its own slice.** The error is handed to the slice whose read raised
  it, when the run asks for that slice — never to the slice being computed when it
  happened — and reading ahead stops there. The run retries the slice as any failed slice
  (an outage waited out, another error tried ``attempts`` times); a slice asked for again,
  or out of order, is read afresh from there.
- **Memory is bounded.** At most ``max_chunks`` chunks wait to be taken (and one is being
  read), and the reader starts a range only once the run has started the range before it:
  never more than one slice ahead.
- **Stopping.** :meth:`ReadAhead.close` (on leaving the ``with``, so on an error or Ctrl-C
  too) tells the reader to stop, closes the read under way (the ADBC connection of a read
  not finished is closed, not kept) and joins the thread. The reader sees the request
  between chunks: it finishes at most the record batch it is decoding. The thread is a
  daemon, so it never keeps a process alive on its own.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol, runtime_checkable

import pandas as pd

from monitor.batch.sources import EventSource

log = logging.getLogger(__name__)

DEFAULT_MAX_CHUNKS = 2
Range = tuple[pd.Timestamp, pd.Timestamp]


@runtime_checkable
class ReadableAhead(Protocol):
    """A source whose reads may run on another thread while the last range is computed."""

    def reads_ahead(self) -> bool:
        """Whether reading ahead pays: a read that spends its time outside Python, which
        the source can make from another thread (one read at a time)."""


def reads_ahead(source: object) -> bool:
    """Whether ``source`` opts in to reading ahead (see :class:`ReadableAhead`)."""
    return isinstance(source, ReadableAhead) and source.reads_ahead()


@dataclass
class _Item:
    """What the reader hands on for a range: a chunk, its end, or the error its read
    raised."""

    index: int
    chunk: pd.DataFrame | None = None
    error: Exception | None = None


class _Reader:
    """One thread reading ``ranges[first:]`` in order into a bounded queue."""

    def __init__(self, source: EventSource, ranges: Sequence[Range], first: int,
                 max_chunks: int, name: str) -> None:
        self.source, self.ranges, self.max_chunks = source, ranges, max_chunks
        self.items: deque[_Item] = deque()
        self.held = 0  # chunks waiting in items
        self.started = first  # the range the run has started taking
        self.stopping = False
        self.done = False
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._read_from, args=(first,), name=name,
                                       daemon=True)
        self.thread.start()

    def _read_from(self, first: int) -> None:
        try:
            for index in range(first, len(self.ranges)):
                with self.changed:  # at most one range ahead of the run
                    self.changed.wait_for(partial(self._may_start, index))
                    if self.stopping:
                        return
                if not self._read(index):
                    return
        finally:
            with self.changed:
                self.done = True
                self.changed.notify_all()

    def _may_start(self, index: int) -> bool:
        return self.stopping or index <= self.started + 1

    def _read(self, index: int) -> bool:
        """Read one range into the queue; False when reading ahead ends (stopped, or the
        read failed: the error is the range's)."""
        try:
            chunks = iter(self.source.chunks(*self.ranges[index]))
            try:
                for chunk in chunks:
                    with self.changed:
                        self.changed.wait_for(lambda: self.stopping
                                              or self.held < self.max_chunks)
                        if self.stopping:
                            return False
                        self.items.append(_Item(index, chunk))
                        self.held += 1
                        self.changed.notify_all()
            finally:  # a read stopped half-way is closed here (its connection not kept)
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
        except Exception as err:  # the range's: handed to the slice that reads it
            self._put(_Item(index, error=err))
            return False
        self._put(_Item(index))
        return True

    def _put(self, item: _Item) -> None:
        with self.changed:
            self.items.append(item)
            self.changed.notify_all()

    def take(self, index: int) -> _Item:
        """The next item of range ``index`` (the run's), waiting for the reader."""
        with self.changed:
            if index > self.started:
                self.started = index
                self.changed.notify_all()
            self.changed.wait_for(lambda: bool(self.items) or self.done)
            if not self.items:  # cannot happen: the reader's last item is an end or error
                raise RuntimeError(f"the read-ahead of range {index} stopped without it")
            item = self.items.popleft()
            assert item.index == index, (item.index, index)
            if item.chunk is not None:
                self.held -= 1
                self.changed.notify_all()
            return item

    def stop(self) -> None:
        with self.changed:
            self.stopping = True
            self.items.clear()
            self.held = 0
            self.changed.notify_all()
        if self.thread is not threading.current_thread():
            self.thread.join()


class ReadAhead:
    """The chunks of a run's ranges, each read while the run works on the one before.

    ``chunks(since, until)`` is the source's, for the ranges of ``ranges`` (in any order:
    the next range in order comes from the reader; any other, or one asked for again, is
    read afresh from there). Use it as a context manager, so the reader stops with the
    run.
    """

    def __init__(self, source: EventSource, ranges: Sequence[Range],
                 max_chunks: int = DEFAULT_MAX_CHUNKS, name: str = "read-ahead") -> None:
        if max_chunks < 1:
            raise ValueError(f"max_chunks must be at least 1, not {max_chunks}")
        self.source = source
        self.ranges = list(ranges)
        self.max_chunks = max_chunks
        self.name = name
        self._index = {cut: i for i, cut in enumerate(self.ranges)}
        self._reader: _Reader | None = None
        self._next: int | None = None  # the range the reader will hand on next, whole

    def chunks(self, since: pd.Timestamp, until: pd.Timestamp) -> Iterator[pd.DataFrame]:
        index = self._index.get((since, until))
        if index is None:  # not a range of the run: read here, the reader stopped first
            self.close()
            yield from self.source.chunks(since, until)
            return
        if self._reader is None or self._next != index:
            self.close()
            self._reader = _Reader(self.source, self.ranges, index, self.max_chunks,
                                   self.name)
        reader = self._reader
        self._next = None  # until its end is taken: a range left half-read is read afresh
        while True:
            item = reader.take(index)
            if item.error is not None:
                raise item.error
            if item.chunk is None:
                self._next = index + 1
                return
            yield item.chunk

    def close(self) -> None:
        """Stop the reader, if one runs, and wait for its thread to end."""
        reader, self._reader, self._next = self._reader, None, None
        if reader is not None:
            reader.stop()

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


__all__ = ["DEFAULT_MAX_CHUNKS", "ReadAhead", "ReadableAhead", "reads_ahead"]
