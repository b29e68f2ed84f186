"""A micro-batch decoded in chunks and validated once equals its plain definition.

streaming.messages frames the decoded events CHUNK_EVENTS at a time (bounding the decoded
dicts held at once), validates the joined frame once, and decodes a message again for
the payload of an event validation rejected. The reference here does none of that: every
event framed at once, validated, each reject's payload from the dict decoded first.
Random micro-batches mix every kind of value a field can get (mistyped, null, missing,
NaN, lists, objects, huge integers), malformed and non-event messages and unknown fields,
with chunks of a few events so that most batches span several.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streaming.messages
from metrics.expectations import UNKNOWN_FIELDS
from monitor.event_frames import frame_from_records
from monitor.schema import Schema
from streaming.codec import DecodeError, decode
from streaming.messages import (
    OFFSET,
    PARTITION,
    RawMessage,
    Rejected,
    decode_messages,
    fresh_only,
)

SCHEMA = Schema.parse({"x": "float?", "n": "int", "c": "str", "b": "bool?",
                       "tags": "list[str]?"})
MAX_TIME = pd.Timestamp("2026-01-02", tz="UTC")
MISSING = object()  # the field is left out of the event

values = st.one_of(
    st.just(MISSING), st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4), st.sampled_from(["DE", "true", "no", "1.5", "7"]),
    st.lists(st.text(max_size=3), max_size=3), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)
times = st.one_of(
    st.integers(min_value=1767139200000, max_value=1767225600000),  # in 2025-12-31
    st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T10:30:00.5+02:00", "soon",
                     "2027-01-01T00:00:00Z"]),  # the last is in the future
    st.just(MISSING), st.none(), st.floats(allow_nan=True), st.booleans(),
    st.just(4102444800000),  # 2100: in the future
)
events = st.fixed_dictionaries(
    {"ts": times, "x": values, "n": values, "c": values, "b": values, "tags": values},
    optional={"extra": values, "debug": st.text(max_size=2)},
).map(lambda event: {k: v for k, v in event.items() if v is not MISSING})


def _message_value(draw: st.DrawFn) -> bytes | None:
    kind = draw(st.sampled_from(["array", "array", "array", "object", "malformed",
                                 "not_an_event", "empty", "bad_element"]))
    if kind == "empty":
        return draw(st.sampled_from([None, b""]))
    if kind == "not_an_event":
        return b"12"
    if kind == "bad_element":
        return b'[{"ts": 1767225600000, "n": 1, "c": "a"}, 3]'
    batch = draw(st.lists(events, min_size=1, max_size=6))
    text = json.dumps(batch[0] if kind == "object" else batch)  # NaN and Infinity tokens
    if kind == "malformed":
        text = text[:-1]
    return text.encode()


@st.composite
def micro_batches(draw: st.DrawFn) -> list[RawMessage]:
    count = draw(st.integers(min_value=0, max_value=12))
    return [RawMessage(draw(st.integers(0, 2)), offset, _message_value(draw),
                       draw(st.sampled_from([None, b"k"])))
            for offset in range(count)]


def reference(messages: list[RawMessage], mark_unknown: bool
              ) -> tuple[pd.DataFrame, list[Rejected]]:
    """Every event framed at once and validated; payloads from the first decoding."""
    rejected, decoded, origins = [], [], []
    for message in messages:
        try:
            items = decode(message.value)
        except DecodeError as err:
            rejected.append(Rejected(message.partition, message.offset, err.reason,
                                     err.detail, message.value or b"", message.key))
            continue
        decoded += items
        origins += [(message, place) for place in range(len(items))]
    names = list(SCHEMA.names)
    raw = frame_from_records(decoded, columns=names)
    if mark_unknown:
        unknown = [any(k not in names and v is not None and v == v for k, v in e.items())
                   for e in decoded]
        if any(unknown):
            raw[UNKNOWN_FIELDS] = np.array(unknown, dtype=bool)
    raw[PARTITION] = np.array([m.partition for m, _ in origins], dtype=np.int64)
    raw[OFFSET] = np.array([m.offset for m, _ in origins], dtype=np.int64)
    clean, rejects = SCHEMA.validate(raw, max_time=MAX_TIME)
    for row, reason in zip(rejects["row"].tolist(), rejects["reason"].tolist(), strict=True):
        message, place = origins[row]
        payload = json.dumps(decoded[row], default=str, ensure_ascii=False)
        rejected.append(Rejected(message.partition, message.offset, reason,
                                 f"event {place} of the message",
                                 payload.encode("utf-8", "replace"), message.key))
    return clean, rejected


@settings(max_examples=150, deadline=None)
@given(messages=micro_batches(), chunk=st.integers(min_value=1, max_value=8),
       mark_unknown=st.booleans())
def test_chunked_decoding_equals_framing_everything_at_once(
        messages: list[RawMessage], chunk: int, mark_unknown: bool) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(streaming.messages, "CHUNK_EVENTS", chunk)
        batch = decode_messages(messages, SCHEMA, max_time=MAX_TIME,
                                mark_unknown=mark_unknown)
    expected, rejected = reference(messages, mark_unknown)
    assert batch.rejected == rejected
    if len(expected):
        pd.testing.assert_frame_equal(batch.events, expected)
    else:
        assert batch.events.empty
        assert list(batch.events.columns)[-2:] == [PARTITION, OFFSET]


def test_a_reject_in_a_later_chunk_names_its_own_message_and_event() -> None:
    """The rows of a joined frame map back to their messages across chunk boundaries."""
    messages = [
        RawMessage(0, 0, b'[{"ts": 1767225600000, "n": 1, "c": "a"},'
                         b' {"ts": 1767225600000, "n": 2, "c": "b"}]'),
        RawMessage(1, 5, b'[{"ts": 1767225600000, "n": 3, "c": "c"},'
                         b' {"ts": 1767225600000, "n": "three", "c": "d"}]', b"key"),
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(streaming.messages, "CHUNK_EVENTS", 2)
        batch = decode_messages(messages, SCHEMA)
    assert batch.events["n"].tolist() == [1, 2, 3]
    assert batch.rejected == [Rejected(1, 5, "field 'n' is not an integer",
                                       "event 1 of the message",
                                       b'{"ts": 1767225600000, "n": "three", "c": "d"}',
                                       b"key")]


@st.composite
def absorbed_offsets(draw: st.DrawFn) -> dict[int, int]:
    """A processor's absorbed offset per partition (some partitions not yet seen)."""
    partitions = draw(st.lists(st.integers(0, 2), unique=True, max_size=3))
    return {p: draw(st.integers(min_value=-1, max_value=12)) for p in partitions}


@settings(max_examples=150, deadline=None)
@given(messages=micro_batches(), after=absorbed_offsets(), mark_unknown=st.booleans())
def test_dropping_replays_from_a_decoding_equals_decoding_only_the_fresh_messages(
        messages: list[RawMessage], after: dict[int, int], mark_unknown: bool) -> None:
    """What the worker's Faust process decodes (every message of a micro-batch) less the
    replays the processor finds (streaming.messages.fresh_only) is what decoding the
    fresh messages alone gives; a column of the unknown-fields mark with no event marked
    counts as none."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(streaming.messages, "CHUNK_EVENTS", 3)
        whole = decode_messages(messages, SCHEMA, max_time=MAX_TIME, mark_unknown=mark_unknown)
        fresh = [m for m in messages if m.offset > after.get(m.partition, -1)]
        expected = decode_messages(fresh, SCHEMA, max_time=MAX_TIME, mark_unknown=mark_unknown)
    kept = fresh_only(whole, after)
    assert kept.rejected == expected.rejected
    if expected.events.empty:
        assert kept.events.empty
        return
    got, want = kept.events, expected.events
    for frame in (got, want):
        if UNKNOWN_FIELDS in frame.columns and not frame[UNKNOWN_FIELDS].any():
            frame.drop(columns=UNKNOWN_FIELDS, inplace=True)
    pd.testing.assert_frame_equal(got, want)
