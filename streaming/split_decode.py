"""A micro-batch decoded in two parts: the head in the Faust process, the tail in the
processor's, giving what decoding it whole in one place gives.

The worker's Faust process was its bottleneck (~615 of 841 py-spy samples, the processor
~220) when it decoded whole micro-batches (:mod:`streaming.pre_decode`): decoding costs
more per event than the bare agent's whole work. So it decodes the first messages of each
micro-batch, :data:`HEAD_SHARE` of their bytes, and sends the rest raw to the processor,
which decodes them as it stores the micro-batch while the Faust process gathers and
decodes the next one.

Decoding the whole at once and in parts gives the same: a message's events and rejects
depend on that message alone (and on the ``max_time`` and unknown-fields mark the tail is
decoded with, the head's), events are in message order, and the rejects keep the order a
whole decoding lists them in (the undecodable messages, then the invalid events, each in
message order; :class:`~streaming.messages.DecodedPart` keeps the two runs apart): the
dead letters and their samples come out in one order whatever the split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from metrics.expectations import UNKNOWN_FIELDS
from monitor.schema import Schema
from streaming.messages import DecodedBatch, DecodedPart, RawMessage, decode_part

# Of a micro-batch's value bytes, what the Faust process decodes (the processor the rest).
# The two processes' CPU seconds over 1.6M batched events of bench/stream.py (10 metrics x
# 3 segments, 500 events a message): whole micro-batches decoded in the Faust process,
# 4.5-4.8 s there against 2.0-2.2 s in the processor; half, 2.8-2.9 against 3.5-3.8; a
# line through them balances at 0.6 (~3.3 s each), and the busiest sets the rate.
HEAD_SHARE = 0.6


@dataclass(frozen=True)
class HeadDecoded:
    """The first ``messages`` messages of a micro-batch decoded (``marked``: with the
    unknown-fields mark) with ``max_time``; the rest is to be decoded with the same."""

    part: DecodedPart
    messages: int
    max_time: pd.Timestamp | None
    marked: bool


def head_length(messages: Sequence[RawMessage], share: float) -> int:
    """How many of ``messages`` make the head: the fewest whose values reach ``share`` of
    all their bytes (decoding costs about the same per byte)."""
    if share <= 0:
        return 0
    if share >= 1:
        return len(messages)
    sizes = [len(m.value or b"") for m in messages]
    wanted = share * sum(sizes)
    held = 0
    for index, size in enumerate(sizes):
        if held >= wanted:
            return index
        held += size
    return len(messages)


def decode_tail(head: HeadDecoded, tail: Sequence[RawMessage], schema: Schema,
                max_bytes: int) -> DecodedBatch:
    """The whole micro-batch decoded: ``head`` and its ``tail`` (the messages after the
    head's), decoded here as the head was."""
    if not tail:
        return head.part.batch()
    rest = decode_part(tail, schema, max_bytes=max_bytes, max_time=head.max_time,
                       mark_unknown=head.marked)
    return joined(head.part, rest)


def joined(head: DecodedPart, tail: DecodedPart) -> DecodedBatch:
    """Two parts of a micro-batch, ``head`` the earlier messages, as one decoding."""
    rejected = head.undecodable + tail.undecodable + head.invalid + tail.invalid
    # A whole decoding has the mark's column when some event is marked (even one it then
    # rejected), False for the others
    marked = [part.events for part in (head, tail) if UNKNOWN_FIELDS in part.events.columns]
    frames = [part.events for part in (head, tail) if len(part.events)] or [head.events]
    if marked:
        frames = [_with_mark(frame, marked[0]) for frame in frames]
    events = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return DecodedBatch(events, rejected)


def _with_mark(frame: pd.DataFrame, marked: pd.DataFrame) -> pd.DataFrame:
    """``frame``, with a mark column of no event where ``marked`` has its mark if it has
    none."""
    if UNKNOWN_FIELDS in frame.columns:
        return frame
    frame = frame.copy(deep=False)
    frame.insert(list(marked.columns).index(UNKNOWN_FIELDS), UNKNOWN_FIELDS, False)
    return frame
