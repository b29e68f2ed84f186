"""A micro-batch decoded in two parts (the head in the Faust process, the tail in the
processor's, see streaming.split_decode) equals it decoded whole: the same events in the
same order, the same rejects in the same order (so the same dead letters and samples),
whatever the split, the replays dropped after, and the unknown-fields mark."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streaming.messages
from metrics.expectations import UNKNOWN_FIELDS
from streaming.dead_letter_tally import DeadLetterTally
from streaming.messages import (
    DecodedBatch,
    RawMessage,
    decode_messages,
    decode_part,
    fresh_only,
)
from streaming.split_decode import HeadDecoded, decode_tail, head_length
from tests.streaming.test_decode_chunks import (
    MAX_TIME,
    SCHEMA,
    absorbed_offsets,
    micro_batches,
)

MAX_BYTES = streaming.messages.MAX_MESSAGE_BYTES


def split(messages: list[RawMessage], at: int, mark: bool) -> DecodedBatch:
    """``messages[:at]`` decoded as the Faust process does, the rest as the processor."""
    head = HeadDecoded(decode_part(messages[:at], SCHEMA, max_time=MAX_TIME,
                                   mark_unknown=mark), at, MAX_TIME, mark)
    return decode_tail(head, messages[at:], SCHEMA, MAX_BYTES)


def assert_same(got: DecodedBatch, want: DecodedBatch) -> None:
    assert got.rejected == want.rejected
    assert list(got.events.columns) == list(want.events.columns)
    if len(want.events):
        pd.testing.assert_frame_equal(got.events, want.events)
    else:
        assert got.events.empty


def samples(rejected: list[streaming.messages.Rejected]) -> list[tuple[object, ...]]:
    """The dead letters' samples the processor stores, with the keys a replay repeats."""
    tally = DeadLetterTally("t", lambda: pd.Timestamp("2026-01-01", tz="UTC"))
    tally.add(rejected)
    return [(s.key, s.reason, s.payload) for s in tally.samples]


@settings(max_examples=200, deadline=None)
@given(messages=micro_batches(), data=st.data(), chunk=st.integers(min_value=1, max_value=6),
       mark=st.booleans(), after=absorbed_offsets())
def test_decoding_a_micro_batch_split_anywhere_equals_decoding_it_whole(
        messages: list[RawMessage], data: st.DataObject, chunk: int, mark: bool,
        after: dict[int, int]) -> None:
    """Random micro-batches (malformed messages, every kind of invalid value, unknown
    fields) split at any message, in chunks of a few events; and the replays of a
    processor that absorbed ``after`` (the first messages of a partition) dropped from
    both as the processor does."""
    at = data.draw(st.integers(min_value=0, max_value=len(messages)), label="split at")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(streaming.messages, "CHUNK_EVENTS", chunk)
        whole = decode_messages(messages, SCHEMA, max_time=MAX_TIME, mark_unknown=mark)
        parts = split(messages, at, mark)
    assert_same(parts, whole)
    assert samples(parts.rejected) == samples(whole.rejected)
    assert_same(fresh_only(parts, after), fresh_only(whole, after))


def message(offset: int, value: bytes, partition: int = 0) -> RawMessage:
    return RawMessage(partition, offset, value, b"k%d" % offset)


GOOD = b'{"ts": 1767225600000, "n": 1, "c": "a"}'
MARKED = b'{"ts": 1767225600000, "n": 2, "c": "b", "extra": 1}'


def test_rejects_of_both_parts_keep_the_order_of_a_whole_decoding() -> None:
    """Undecodable messages and invalid events in the head and in the tail: a whole
    decoding lists the undecodable first, so the parts' rejects interleave."""
    messages = [message(0, b'{"ts": '), message(1, b'{"ts": "soon", "n": 1, "c": "a"}'),
                message(2, GOOD), message(3, b"12"), message(4, b'{"ts": 1767225600000, '
                                                               b'"n": "x", "c": "a"}')]
    whole = decode_messages(messages, SCHEMA, max_time=MAX_TIME)
    parts = split(messages, 3, True)
    assert [(r.offset, r.reason) for r in parts.rejected] == [
        (0, "malformed_json"), (3, "not_an_event"), (1, "unparseable timestamp in ts"),
        (4, "field 'n' is not an integer")]
    assert_same(parts, whole)


@pytest.mark.parametrize("marked_first", [True, False])
def test_an_unknown_field_in_one_part_marks_the_other_parts_events_false(
        marked_first: bool) -> None:
    values = [MARKED, GOOD] if marked_first else [GOOD, MARKED]
    messages = [message(offset, value) for offset, value in enumerate(values)]
    parts = split(messages, 1, True)
    assert parts.events[UNKNOWN_FIELDS].tolist() == [marked_first, not marked_first]
    assert_same(parts, decode_messages(messages, SCHEMA, max_time=MAX_TIME))


def test_the_tail_is_decoded_with_the_heads_max_time() -> None:
    """Not the processor's clock: an event is in the future or not whichever side
    decodes it."""
    max_time = pd.Timestamp("2026-01-01T06:00", tz="UTC")
    later = b'{"ts": "2026-01-01T12:00:00Z", "n": 1, "c": "a"}'
    messages = [message(0, later), message(1, GOOD), message(2, later)]
    head = HeadDecoded(decode_part(messages[:1], SCHEMA, max_time=max_time), 1, max_time,
                       True)
    parts = decode_tail(head, messages[1:], SCHEMA, MAX_BYTES)
    assert [r.offset for r in parts.rejected] == [0, 2]
    assert_same(parts, decode_messages(messages, SCHEMA, max_time=max_time))


def test_the_head_holds_the_share_of_the_bytes() -> None:
    messages = [message(i, b"x" * size) for i, size in enumerate([10, 30, 20, 40])]
    assert head_length(messages, 0.5) == 3  # 10 + 30 < 50 <= 10 + 30 + 20
    assert head_length(messages, 0.4) == 2
    assert head_length(messages, 0.0) == 0
    assert head_length(messages, 1.0) == 4
    assert head_length([], 0.5) == 0
