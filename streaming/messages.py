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


def decode_messages(messages: Sequence[RawMessage], schema: Schema, *,
                    max_bytes: int = MAX_MESSAGE_BYTES,
                    max_time: pd.Timestamp | None = None,
                    mark_unknown: bool = True) -> DecodedBatch:
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

    The events are decoded, framed and validated :data:`CHUNK_EVENTS` at a time: a
    decoded event is a dict of Python objects, ten times the bytes of its JSON, and a
    whole micro-batch of them at once (8 MB of messages) was the processor's largest
    allocation. Validation is row by row, so chunks give the rows and reasons a whole
    batch would.
    """
    undecodable: list[Rejected] = []
    invalid: list[Rejected] = []
    clean: list[pd.DataFrame] = []
    chunk: list[tuple[RawMessage, list[dict[str, Any]]]] = []
    in_chunk = 0
    for message in messages:
        try:
            items = decode(message.value, max_bytes=max_bytes)
        except DecodeError as err:
            undecodable.append(Rejected(message.partition, message.offset, err.reason,
                                        err.detail, message.value or b"", message.key))
            continue
        chunk.append((message, items))
        in_chunk += len(items)
        if in_chunk >= CHUNK_EVENTS:
            clean.append(_validated(chunk, schema, max_time, invalid, mark_unknown))
            chunk, in_chunk = [], 0
    if in_chunk:
        clean.append(_validated(chunk, schema, max_time, invalid, mark_unknown))
    rejected = undecodable + invalid
    if not clean:
        return DecodedBatch(_empty(schema), rejected)
    events = clean[0] if len(clean) == 1 else pd.concat(clean, ignore_index=True)
    if UNKNOWN_FIELDS in events.columns:  # a chunk without the mark had none
        events[UNKNOWN_FIELDS] = events[UNKNOWN_FIELDS].fillna(False).astype(bool)
    return DecodedBatch(events, rejected)


CHUNK_EVENTS = 16_384


def _validated(chunk: Sequence[tuple[RawMessage, list[dict[str, Any]]]], schema: Schema,
               max_time: pd.Timestamp | None, rejected: list[Rejected],
               mark_unknown: bool = True) -> pd.DataFrame:
    """The clean events of a chunk of decoded messages; its rejects added to ``rejected``."""
    origins = [message for message, _ in chunk]
    counts = [len(items) for _, items in chunk]
    events = [event for _, items in chunk for event in items]
    names = list(schema.names)
    raw = frame_from_records(events, columns=names)  # a NaN is not a null
    if mark_unknown:
        known = frozenset(names)
        unknown = [not event.keys() <= known and _has_unknown(event, known)
                   for event in events]
        if any(unknown):
            raw[UNKNOWN_FIELDS] = np.array(unknown, dtype=bool)
    raw[PARTITION] = np.repeat(np.array([m.partition for m in origins], dtype=np.int64), counts)
    raw[OFFSET] = np.repeat(np.array([m.offset for m in origins], dtype=np.int64), counts)
    clean, rejects = schema.validate(raw, max_time=max_time)
    if len(rejects):
        message_of = np.repeat(np.arange(len(origins)), counts)
        first_event = np.cumsum([0, *counts[:-1]])  # of each message, in ``events``
        for row, reason in zip(rejects["row"].tolist(), rejects["reason"].tolist(),
                               strict=True):
            message = message_of[row]
            origin = origins[message]
            rejected.append(Rejected(origin.partition, origin.offset, reason,
                                     f"event {row - first_event[message]} of the message",
                                     _event_bytes(events[row]), origin.key))
    return clean


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
