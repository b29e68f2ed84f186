"""Micro-batch N+1 decoded in the Faust process, on a thread, while the processor stores N.

The head of it, :data:`streaming.split_decode.HEAD_SHARE` of its bytes: the processor
decodes the rest (see :mod:`streaming.split_decode`), so that both processes share the
work.

Decoding (JSON to a validated frame) was 60-70% of the processor's CPU, and the
processor's process was the worker's bottleneck while the Faust process sat idle most of
the time. Decoding is pure but for three inputs the processor owns, each of which the
processor applies after (see :meth:`streaming.processor.StreamProcessor.prepare`):

- the replayed messages to skip (at or below a partition's absorbed offset): every message
  is decoded here and :func:`streaming.messages.fresh_only` drops the replays' events and
  rejects there, which equals decoding only the fresh ones;
- the unknown-fields mark, wanted only when a metric judges unknown fields (which a
  promotion can change at any time): decoded here as the processor last said; a
  processor that wants the mark and finds a batch decoded without it decodes the raw
  messages itself (it asks the worker for them, as storing in halves and reloading
  after a conflict do: see :mod:`streaming.raw_on_demand`);
- ``max_time``: the wall clock here as decoding starts, plus ``max_future_s``. The same
  clock as the processor's, read a few hundred milliseconds earlier: an event is as far
  in the future as it was then, never further.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass

import pandas as pd

from monitor.schema import Schema
from streaming.messages import RawMessage, decode_part
from streaming.split_decode import HEAD_SHARE, HeadDecoded, head_length


@dataclass(frozen=True)
class PreDecoded:
    """A micro-batch's head being decoded."""

    future: Future[HeadDecoded]

    def finish(self) -> HeadDecoded:
        """The decoded head (blocks until the thread is done; raises what it raised)."""
        return self.future.result()


@dataclass(frozen=True)
class Decoding:
    """What a stream's messages are decoded with, and the thread that decodes them."""

    schema: Schema
    max_bytes: int
    max_future_s: float
    executor: Executor
    wall_clock: Callable[[], pd.Timestamp] = lambda: pd.Timestamp.now(tz="UTC")
    head_share: float = HEAD_SHARE  # of the bytes, decoded here (the processor the rest)

    def pre_decode(self, messages: Sequence[RawMessage], mark_unknown: bool) -> PreDecoded:
        """Start decoding the head of ``messages`` on the thread."""
        def run() -> HeadDecoded:
            max_time = self.wall_clock() + pd.Timedelta(seconds=self.max_future_s)
            head = head_length(messages, self.head_share)
            part = decode_part(messages[:head], self.schema, max_bytes=self.max_bytes,
                               max_time=max_time, mark_unknown=mark_unknown)
            return HeadDecoded(part, head, max_time, mark_unknown)

        return PreDecoded(self.executor.submit(run))
