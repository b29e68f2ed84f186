"""Kafka messages of one stream to a validated DataFrame micro-batch, and its dead letters.

Pure: no Kafka here. A message carries one event or a JSON array of them; every event
keeps the partition and offset of its message (two columns named by :data:`PARTITION`
and :data:`OFFSET`) so the worker can skip replays and advance watermarks per partition.
Whatever cannot be used becomes a :class:`Rejected` with a reason, never an exception:
bad input must not stop a worker.

>>> from monitor.schema import Schema
>>> schema = Schema.parse({"latency_ms": "float"})
>>> batch = decode_messages([
...     RawMessage(0, 7, b'[{"ts": 1767225600000, "latency_ms": 12.5}, {"ts": "soon"}]'),
...     RawMessage(1, 3, b'{"ts": 1767225600000, "latency_ms": 1e999}'),
...     RawMessage(1, 4, b'{"ts": '),
... ], schema)
>>> batch.events[["latency_ms", PARTITION, OFFSET]].to_dict("records")
[{'latency_ms': 12.5, '__partition': 0, '__offset': 7}]
>>> for r in batch.rejected:
...     print(r.partition, r.offset, r.reason)
1 4 malformed_json
0 7 unparseable timestamp in ts
1 3 field 'latency_ms' is not finite
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from metrics.expectations import UNKNOWN_FIELDS
from monitor.event_frames import frame_from_records
from monitor.schema import Schema
from streaming.codec import MAX_MESSAGE_BYTES, DecodeError, decode

PARTITION = "__partition"
OFFSET = "__offset"
LATE = "late"


class RawMessage(NamedTuple):  # a tuple: one is made per Kafka message, 3x cheaper
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None


@dataclass(frozen=True)
class Rejected:
    """A message, or one event of a message, that the stream cannot use, and why.

    ``reason`` is a short label to count by (a codec reason code, a schema problem such
    as ``field 'x' is null``, or ``late``); ``detail`` says more; ``payload`` is the
    whole message for a message that could not be decoded, else the one event as JSON.
    """

    partition: int
    offset: int
    reason: str
    detail: str
    payload: bytes
    key: bytes | None = None


@dataclass(frozen=True)
class DecodedBatch:
    events: pd.DataFrame  # validated and typed, plus PARTITION and OFFSET columns
    rejected: list[Rejected]


@dataclass(frozen=True)
class DecodedPart:
    """Some messages decoded, their rejects kept in the two runs a decoding lists them in
    (the messages that did not decode, then the events validation rejected, each in
    message order): so that parts decoded apart join into what decoding them together
    gives (see :mod:`streaming.split_decode`)."""

    events: pd.DataFrame
    undecodable: list[Rejected]
    invalid: list[Rejected]

    def batch(self) -> DecodedBatch:
        return DecodedBatch(self.events, self.undecodable + self.invalid)


def decode_messages(messages: Sequence[RawMessage], schema: Schema, *,
                    max_bytes: int = MAX_MESSAGE_BYTES,
                    max_time: pd.Timestamp | None = None,
                    mark_unknown: bool = True) -> DecodedBatch:
    """The usable events of ``messages`` (in message order) and everything rejected: the
    messages that could not be decoded first, then the events validation rejected (see
    :func:`decode_part`)."""
    return decode_part(messages, schema, max_bytes=max_bytes, max_time=max_time,
                       mark_unknown=mark_unknown).batch()


def decode_part(messages: Sequence[RawMessage], schema: Schema, *,
                max_bytes: int = MAX_MESSAGE_BYTES,
                max_time: pd.Timestamp | None = None,
                mark_unknown: bool = True) -> DecodedPart:
    """The usable events of ``messages`` (in message order) and everything rejected.

    Only the schema's fields are read from each event: a hostile event with thousands of
    keys costs one comparison of its keys with the schema's. When an event has a field
    beyond the schema with a value, the batch gains a column :data:`UNKNOWN_FIELDS` saying
    which events do (what ``metrics.expect_no_unknown_fields`` judges, as it judges the
    extra columns of a file's events in research and batch) — unless ``mark_unknown`` is
    false: the mark costs a look at every event's keys (a third of the decoding time of
    events that all carry a field the schema lacks), and no metric but that one reads
    it, so a processor without one asks for none. Events later than ``max_time`` are
    rejected as from the future.

    The events are decoded and framed :data:`CHUNK_EVENTS` at a time: a decoded event is
    a dict of Python objects, ten times the bytes of its JSON, and a whole micro-batch of
    them at once (8 MB of messages) was the processor's largest allocation. The frames
    are validated together when their dtypes agree (see :func:`_validated`): validation
    costs ~2.4 ms a call whatever the rows (and ~0.03 us an event), so validating each
    chunk took 10 ms of a 57k-event micro-batch where once takes 4. Validation is row by
    row, so the rows and reasons are those of each chunk alone. A rejected event's
    payload is its dict again, decoded anew from its message (decoding is deterministic;
    once per message with a reject): the chunks' dicts are not kept.
    """
    undecodable: list[Rejected] = []
    frames: list[pd.DataFrame] = []
    origins: list[RawMessage] = []  # the messages with events, in order...
    counts: list[int] = []  # ...and how many each carries
    chunk: list[dict[str, Any]] = []
    names = list(schema.names)
    for message in messages:
        try:
            items = decode(message.value, max_bytes=max_bytes)
        except DecodeError as err:
            undecodable.append(Rejected(message.partition, message.offset, err.reason,
                                        err.detail, message.value or b"", message.key))
            continue
        origins.append(message)
        counts.append(len(items))
        chunk += items
        if len(chunk) >= CHUNK_EVENTS:
            frames.append(_framed(chunk, names, mark_unknown))
            chunk = []
    if chunk:
        frames.append(_framed(chunk, names, mark_unknown))
    del chunk
    if not frames:
        return DecodedPart(_empty(schema), undecodable, [])
    if any(UNKNOWN_FIELDS in frame.columns for frame in frames):
        for frame in frames:  # a chunk without the mark had none
            if UNKNOWN_FIELDS not in frame.columns:
                frame[UNKNOWN_FIELDS] = False
    partitions = np.repeat(np.array([m.partition for m in origins], dtype=np.int64), counts)
    offsets = np.repeat(np.array([m.offset for m in origins], dtype=np.int64), counts)
    clean, rejects = _validated(frames, schema, max_time, partitions, offsets)
    invalid = _invalid(rejects, origins, counts, max_bytes) if len(rejects) else []
    return DecodedPart(clean, undecodable, invalid)


# Events framed at once. 8,192 rather than 16,384: the decoded dicts of a chunk (ten
# times its JSON) are the largest transient allocation of a decode, and with micro-batch
# N+1 decoded in the Faust process while N is stored (streaming.pre_decode) that peak
# is paid in both processes; validation still runs once over the joined chunks.
CHUNK_EVENTS = 8_192


def fresh_only(batch: DecodedBatch, after: dict[int, int]) -> DecodedBatch:
    """``batch`` without the events and rejects of messages at or below ``after[p]`` for
    their partition ``p`` (replays, already absorbed): equal to decoding only the other
    messages, since a message's events and rejects depend on that message alone. A
    partition missing from ``after`` keeps everything."""
    if not after:
        return batch
    events = batch.events
    if len(events):
        partitions = events[PARTITION].to_numpy()
        floors = np.full(len(events), -1, dtype=np.int64)
        for partition, offset in after.items():
            floors[partitions == partition] = offset
        keep = events[OFFSET].to_numpy() > floors
        if not keep.all():
            events = events[keep].reset_index(drop=True)
    rejected = [r for r in batch.rejected if r.offset > after.get(r.partition, -1)]
    return DecodedBatch(events, rejected)


def _framed(events: list[dict[str, Any]], names: list[str], mark_unknown: bool
            ) -> pd.DataFrame:
    """A chunk of decoded events as a raw frame of the schema's fields (a NaN is not a
    null), with the unknown-fields mark when asked for and some event has one."""
    raw = frame_from_records(events, columns=names)
    if mark_unknown:
        known = frozenset(names)
        unknown = [not event.keys() <= known and _has_unknown(event, known)
                   for event in events]
        if any(unknown):
            raw[UNKNOWN_FIELDS] = np.array(unknown, dtype=bool)
    return raw


def _validated(frames: list[pd.DataFrame], schema: Schema, max_time: pd.Timestamp | None,
               partitions: np.ndarray, offsets: np.ndarray
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The chunks' frames validated: joined first and validated once when their columns
    have the same dtypes (a stream whose events agree in their fields' types); else one
    at a time, as joining would convert values (a column of only nulls joined with one of
    booleans is a float column: ``false`` would pass as 0)."""
    if len(frames) == 1 or all(frame.dtypes.equals(frames[0].dtypes) for frame in frames):
        raw = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        raw[PARTITION] = partitions
        raw[OFFSET] = offsets
        return schema.validate(raw, max_time=max_time)
    cleans, rejects = [], []
    start = 0
    for frame in frames:
        end = start + len(frame)
        frame[PARTITION] = partitions[start:end]
        frame[OFFSET] = offsets[start:end]
        clean, rejected = schema.validate(frame, max_time=max_time)
        cleans.append(clean)
        rejects.append(rejected.assign(row=rejected["row"] + start))
        start = end
    return pd.concat(cleans, ignore_index=True), pd.concat(rejects, ignore_index=True)


def _invalid(rejects: pd.DataFrame, origins: Sequence[RawMessage], counts: Sequence[int],
             max_bytes: int) -> list[Rejected]:
    """The events validation rejected (``rejects``: rows of the batch and reasons) as
    dead letters, each naming its place in its message and carrying it as JSON."""
    message_of = np.repeat(np.arange(len(origins)), counts)
    first_event = np.cumsum([0, *counts[:-1]])  # of each message, in the batch
    decoded: dict[int, list[dict[str, Any]]] = {}
    letters = []
    for row, reason in zip(rejects["row"].tolist(), rejects["reason"].tolist(), strict=True):
        message = int(message_of[row])
        origin = origins[message]
        if message not in decoded:
            decoded[message] = decode(origin.value, max_bytes=max_bytes)
        place = row - int(first_event[message])
        letters.append(Rejected(origin.partition, origin.offset, reason,
                                f"event {place} of the message",
                                _event_bytes(decoded[message][place]), origin.key))
    return letters


def _has_unknown(event: dict[str, Any], known: frozenset[str]) -> bool:
    """Whether an event has a field beyond ``known`` with a value (not null, not NaN)."""
    return any(key not in known and value is not None and value == value
               for key, value in event.items())


def _event_bytes(event: dict[str, Any]) -> bytes:
    return json.dumps(event, default=str, ensure_ascii=False).encode("utf-8", "replace")


def _empty(schema: Schema) -> pd.DataFrame:
    frame = pd.DataFrame({name: pd.Series(dtype=object) for name in schema.names})
    clean, _ = schema.validate(frame)
    clean[PARTITION] = pd.Series(dtype=np.int64)
    clean[OFFSET] = pd.Series(dtype=np.int64)
    return clean
