"""The Kafka message encoding of events: one JSON object, or a JSON array of them.

An event is a flat JSON object with an event-time field (``ts`` by default) holding an
ISO 8601 string or epoch milliseconds. A message value carries one event as an object,
or several as an array (the emitter batches for throughput). Pure: no Kafka here.

>>> value = encode_events([{"ts": "2026-01-01T00:00:00Z", "x": 1.5}, {"ts": 1767225600000}])
>>> value
b'[{"ts":"2026-01-01T00:00:00Z","x":1.5},{"ts":1767225600000}]'
>>> decode(value)
[{'ts': '2026-01-01T00:00:00Z', 'x': 1.5}, {'ts': 1767225600000}]
>>> decode(b'{"ts": 1767225600000')
Traceback (most recent call last):
...
streaming.codec.DecodeError: malformed_json: Expecting ',' delimiter at line 1, column 21

Decoding accepts the ``NaN`` and ``Infinity`` tokens Python writes (and ``1e999``
overflowing to infinity): rejecting them here would dead-letter every other event of
the batch with them, so schema validation rejects just the event that has one.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import orjson
import pandas as pd

from monitor.schema import nan_mask
from monitor.surrogates import LONE_SURROGATE_DETAIL, has_surrogate_escape, holds_lone_surrogate

DICT_CHUNK = 10_000  # rows turned into event dicts at a time
MAX_MESSAGE_BYTES = 1_048_576  # Kafka's default message.max.bytes, roughly

# Stable reason codes, for counting dead letters per reason.
EMPTY = "empty"
OVERSIZED = "oversized"
MALFORMED_JSON = "malformed_json"
NOT_AN_EVENT = "not_an_event"


class DecodeError(ValueError):
    """A message value that is not an event or an array of events.

    ``reason`` is one of the stable codes (``empty``, ``oversized``, ``malformed_json``,
    ``not_an_event``); ``detail`` says exactly what is wrong.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class EncodeError(ValueError):
    """An event that cannot be written as a JSON object."""


def encode_event(event: Mapping[str, Any], *, allow_nan: bool = False) -> bytes:
    """One event as compact UTF-8 JSON.

    Datetimes (including pandas Timestamps) become ISO 8601 strings, naive ones taken as
    UTC; numpy scalars become plain numbers. NaN and infinity have no JSON form, so they
    raise EncodeError naming the field (drop the field, or send null, to mean missing) -
    unless ``allow_nan``: then they are the tokens ``NaN``, ``Infinity`` and
    ``-Infinity``, which :func:`decode` accepts (a replay sends what its file held, for
    the stream's validation to reject as it would in research).
    """
    if not isinstance(event, Mapping):
        raise EncodeError(f"an event is a mapping of field names to values, "
                          f"not {type(event).__name__}")
    for name, value in event.items():
        if not isinstance(name, str):
            raise EncodeError(f"field name {name!r} is not a string")
        if not allow_nan and isinstance(value, float) and not math.isfinite(value):
            raise EncodeError(f"field {name!r} is {value}, which JSON cannot represent")
    try:
        text = json.dumps(event, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=allow_nan,
                          default=_json_default_nan if allow_nan else _json_default)
    except (TypeError, ValueError) as err:
        raise EncodeError(f"event is not JSON-serializable: {err}") from None
    return text.encode("utf-8")


def join_encoded(encoded: Sequence[bytes]) -> bytes:
    """A message value from already encoded events: the object itself when there is one."""
    if len(encoded) == 1:
        return encoded[0]
    return b"[" + b",".join(encoded) + b"]"


def joined_size(count: int, total_bytes: int) -> int:
    """The size of ``join_encoded`` over ``count`` events of ``total_bytes`` together."""
    return total_bytes if count == 1 else total_bytes + count + 1  # brackets and commas


def encode_events(events: Sequence[Mapping[str, Any]]) -> bytes:
    """A message value holding ``events``: an object for one, an array for several."""
    if not events:
        raise EncodeError("no events to encode")
    return join_encoded([encode_event(event) for event in events])


def decode(value: bytes | None, *, max_bytes: int = MAX_MESSAGE_BYTES) -> list[dict[str, Any]]:
    """The events a message value carries; DecodeError says why it carries none.

    An empty array is valid and carries no events.
    """
    if not value:
        raise DecodeError(EMPTY, "the message has no value")
    if len(value) > max_bytes:
        raise DecodeError(OVERSIZED, f"{len(value)} bytes, over the limit of {max_bytes}")
    parsed = _parse_fast(value)
    if parsed is None:
        parsed = _parse(value)
    if isinstance(parsed, dict):
        return [parsed]
    if not isinstance(parsed, list):
        raise DecodeError(NOT_AN_EVENT, f"a JSON {_json_type(parsed)}, not an object or "
                                        "an array of objects")
    if set(map(type, parsed)) <= _DICT:  # a third of the loop below's time, in C
        return parsed
    for index, item in enumerate(parsed):
        if not isinstance(item, dict):
            raise DecodeError(NOT_AN_EVENT, f"element {index} of the array is a JSON "
                                            f"{_json_type(item)}, not an object")
    return parsed


_DICT = {dict}


def _parse_fast(value: bytes) -> Any:
    """``value`` parsed by orjson (4x json's speed on events), or None for anything it
    would not parse exactly as :func:`_parse` does: whatever it refuses (NaN tokens,
    ``1e999``, lone surrogate escapes, bad JSON: ``_parse`` accepts or explains them) and
    integers past 64 bits, which it reads as floats where json keeps them exact."""
    if _LONG_DIGIT_RUN in value.translate(_DIGITS_AS_NINES):
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return None


# 19 digits or more in a row: maybe an integer orjson would not keep exact (or a long
# fraction, which it would: those just take the slower path). Every digit made a 9 and
# the run looked for as a substring: a tenth of orjson's time on a message, where the
# regular expression [0-9]{19} took as long as orjson itself.
_DIGITS_AS_NINES = bytes.maketrans(b"012345678", b"999999999")
_LONG_DIGIT_RUN = b"9" * 19


def _parse(value: bytes) -> Any:
    """``value`` parsed as json.loads does; DecodeError says why it is not JSON."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DecodeError(MALFORMED_JSON, f"not UTF-8 text (byte {err.start})") from None
    try:
        parsed, end = _scan_once(text, 0)
        if end != len(text):
            raise ValueError("more after the value")
    except (StopIteration, ValueError, RecursionError):
        parsed = _loads_or_explain(text)
    if has_surrogate_escape(text) and holds_lone_surrogate(parsed):
        raise DecodeError(MALFORMED_JSON, LONE_SURROGATE_DETAIL)
    return parsed


# The C scanner json.loads ends in, called directly: the wrappers around it cost 1.8 of
# json.loads' 4.4 us on an event (bench: 10k 120-byte objects). Anything it does not take
# whole (whitespace around the value, bad JSON) goes through json.loads, for its message.
_scan_once: Callable[[str, int], tuple[Any, int]] = (
    json.JSONDecoder().scan_once  # type: ignore[attr-defined]
)


def _loads_or_explain(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DecodeError(MALFORMED_JSON,
                          f"{err.msg} at line {err.lineno}, column {err.colno}") from None
    except RecursionError:
        raise DecodeError(MALFORMED_JSON, "nested too deeply") from None
    except ValueError as err:  # e.g. an integer of more digits than Python converts
        raise DecodeError(MALFORMED_JSON, str(err)) from None


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value != value:  # pandas NaT
            raise ValueError("NaT (a missing timestamp) has no JSON form")
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, np.ndarray):  # a list cell of a Parquet file (a list[str] field)
        return value.tolist()
    if isinstance(value, np.generic):
        item = value.item()
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"{item} has no JSON form")
        return item
    raise TypeError(f"{type(value).__name__} {value!r} has no JSON form")


def _json_default_nan(value: Any) -> Any:
    if isinstance(value, np.floating):  # float32 and the like: NaN and infinity as well
        return value.item()
    return _json_default(value)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def event_dicts(events: pd.DataFrame) -> Iterator[dict[str, Any]]:
    """Each row as a dict, leaving out missing values (as a JSON line would have).

    A NaN the source held (:data:`monitor.schema.SOURCE_NAN`, which the file readers
    keep apart from a null) is a value, not a missing one: it stays, a float NaN.
    """
    for start in range(0, len(events), DICT_CHUNK):
        chunk = events.iloc[start:start + DICT_CHUNK]
        missing: np.ndarray = chunk.isna().to_numpy()
        for position, dtype in enumerate(chunk.dtypes):
            if dtype == np.dtype(object):  # where the readers put a SOURCE_NAN
                missing[:, position] &= ~nan_mask(chunk.iloc[:, position])
        any_missing = np.asarray(missing.any(axis=1)).tolist()
        rows: list[dict[str, Any]] = chunk.to_dict("records")  # type: ignore[assignment]
        for row, gaps, has_gaps in zip(rows, missing, any_missing, strict=True):
            if has_gaps:
                row = {k: v for (k, v), gap in zip(row.items(), gaps, strict=True) if not gap}
            yield row
