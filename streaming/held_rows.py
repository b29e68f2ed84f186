"""Validated events to the rows the label join holds, and back, without changing a bit.

Pure. A held row keeps an event's time exactly (nanoseconds) and its other fields as
canonical JSON (floats as their shortest repr, which reads back to the same double).
Reading rows back builds the frame the way :func:`streaming.messages.decode_messages`
builds a micro-batch (:func:`~monitor.event_frames.frame_from_records`, then the
stream's schema), so a held event has the same dtypes and values as the event decoded
from its message.

>>> from monitor.schema import Schema
>>> schema = Schema.parse({"prediction_id": "str", "score": "float"})
>>> events, _ = schema.validate(pd.DataFrame({
...     "ts": ["2026-03-01T10:00:00.123456789Z"], "prediction_id": ["a"], "score": [0.1]}))
>>> times, payloads = event_payloads(events, schema)
>>> payloads
['{"prediction_id":"a","score":0.1}']
>>> back = held_frame(schema, list(zip(times.tolist(), payloads)))
>>> back.equals(events)
True
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from monitor.event_frames import frame_from_records
from monitor.schema import Schema


def event_payloads(events: pd.DataFrame, schema: Schema) -> tuple[np.ndarray, list[str]]:
    """Each event's time in nanoseconds, and its other schema fields as canonical JSON."""
    times = events[schema.time].to_numpy(dtype="datetime64[ns]").view(np.int64)
    names = [f.name for f in schema.fields]
    columns = [_plain_column(events[name]) for name in names]
    dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False).encode
    payloads = [dumps(dict(zip(names, values, strict=True))) for values in zip(*columns,
                                                                                strict=True)]
    if not names:
        payloads = ["{}"] * len(events)
    return times, payloads


def held_frame(schema: Schema, rows: Sequence[tuple[int, str]]) -> pd.DataFrame:
    """The validated events of held ``rows`` ((time in ns, payload) pairs), in order."""
    records = [json.loads(payload) for _, payload in rows]
    frame = frame_from_records(records, columns=[f.name for f in schema.fields])
    frame.insert(0, schema.time, pd.to_datetime(
        np.fromiter((t for t, _ in rows), dtype=np.int64, count=len(rows)), unit="ns",
        utc=True))
    clean, rejects = schema.validate(frame)
    if len(rejects):  # only events that passed this schema are held
        raise ValueError(f"held rows no longer pass the schema: "
                         f"{rejects['reason'].iloc[0]}")
    return clean


def id_text(ids: pd.Series) -> list[str | None]:
    """Join ids as text, the same on both sides of the join: a str as it is, an int as
    its decimal, a null as None."""
    return [None if value is None or value is pd.NA or value != value else str(value)
            for value in ids.astype(object).tolist()]


def event_numbers(partitions: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Each event's place among the events of its message (events in message order): with
    the partition and offset, a key that a replay of the message gives again."""
    if not len(offsets):
        return np.zeros(0, dtype=np.int64)
    frame = pd.DataFrame({"p": partitions, "o": offsets})
    return frame.groupby(["p", "o"], sort=False).cumcount().to_numpy(dtype=np.int64)


def _plain_column(values: pd.Series) -> list[Any]:
    """A column's cells as JSON values: nulls as None, numpy scalars as Python ones."""
    cells = values.astype(object).tolist()
    if values.dtype == object or values.hasnans or isinstance(values.dtype,
                                                               pd.api.extensions.ExtensionDtype):
        return [_plain(cell) for cell in cells]
    return cells


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
