"""The Kafka message encoding of events: round trips and every way a value is refused."""

from __future__ import annotations

import datetime as dt
import doctest
import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streaming.codec
from streaming.codec import (
    EMPTY,
    MALFORMED_JSON,
    NOT_AN_EVENT,
    OVERSIZED,
    DecodeError,
    EncodeError,
    decode,
    encode_event,
    encode_events,
    join_encoded,
    joined_size,
)


def test_docstring_examples() -> None:
    # streaming/ is not among the doctest paths, so run the module's examples here
    assert doctest.testmod(streaming.codec).failed == 0


def test_one_event_is_an_object_several_are_an_array() -> None:
    one: dict[str, object] = {"ts": "2026-05-01T12:00:00Z", "latency_ms": 87.5, "country": "SE"}
    assert json.loads(encode_events([one])) == one
    assert decode(encode_events([one])) == [one]
    many: list[dict[str, object]] = [one, {"ts": 1777636800000, "clicked": True, "note": None}]
    assert json.loads(encode_events(many)) == many
    assert decode(encode_events(many)) == many


def test_times_and_numpy_values_become_plain_json() -> None:
    event = {"ts": pd.Timestamp("2026-05-01T12:00:00"), "day": dt.date(2026, 5, 1),
             "n": np.int64(3), "x": np.float32(0.5), "ok": np.bool_(True),
             "aware": dt.datetime(2026, 5, 1, 14, tzinfo=dt.timezone(dt.timedelta(hours=2)))}
    assert decode(encode_event(event)) == [{
        "ts": "2026-05-01T12:00:00+00:00", "day": "2026-05-01", "n": 3, "x": 0.5, "ok": True,
        "aware": "2026-05-01T14:00:00+02:00",
    }]


def test_floats_keep_every_bit() -> None:
    values = [0.1, 1 / 3, 2.0**-1074, 1.7976931348623157e308, -0.0, 123456789.123456789]
    [back] = decode(encode_event({"v": values}))
    assert [v.hex() for v in back["v"]] == [v.hex() for v in values]


json_values = st.none() | st.booleans() | st.integers() | st.text() | st.floats(
    allow_nan=False, allow_infinity=False)
events = st.dictionaries(st.text(), json_values, max_size=8)


@given(st.lists(events, min_size=1, max_size=20))
def test_round_trip(batch: list[dict[str, object]]) -> None:
    encoded = [encode_event(event) for event in batch]
    value = join_encoded(encoded)
    assert value == encode_events(batch)
    assert len(value) == joined_size(len(encoded), sum(map(len, encoded)))
    assert decode(value) == batch


@pytest.mark.parametrize(("value", "reason", "detail"), [
    (b"", EMPTY, "no value"),
    (None, EMPTY, "no value"),
    (b'{"ts": 1', MALFORMED_JSON, "line 1, column 9"),
    (b'{"ts": 1}{"ts": 2}', MALFORMED_JSON, "Extra data"),
    (b"\xff\xfe{}", MALFORMED_JSON, "not UTF-8"),
    (b"[" * 100_000, MALFORMED_JSON, ""),
    (b'"an event"', NOT_AN_EVENT, "a JSON string, not an object or an array of objects"),
    (b"42", NOT_AN_EVENT, "a JSON number"),
    (b"null", NOT_AN_EVENT, "a JSON null"),
    (b'[{"ts": 1}, [1, 2]]', NOT_AN_EVENT, "element 1 of the array is a JSON array"),
    (b'[{"ts": 1}, true]', NOT_AN_EVENT, "element 1 of the array is a JSON boolean"),
])
def test_decode_says_why_a_value_is_not_events(value: bytes | None, reason: str,
                                               detail: str) -> None:
    with pytest.raises(DecodeError) as raised:
        decode(value)
    assert raised.value.reason == reason
    assert detail in raised.value.detail
    assert str(raised.value).startswith(reason)


def test_oversized_values_are_refused_before_parsing() -> None:
    value = encode_events([{"ts": 1, "pad": "x" * 100}] * 20)
    assert len(decode(value, max_bytes=len(value))) == 20
    with pytest.raises(DecodeError) as raised:
        decode(value, max_bytes=len(value) - 1)
    assert raised.value.reason == OVERSIZED
    assert raised.value.detail == f"{len(value)} bytes, over the limit of {len(value) - 1}"


def test_an_empty_array_carries_no_events() -> None:
    assert decode(b"[]") == []


def test_nan_tokens_pass_for_validation_to_reject_one_event() -> None:
    # Refusing the message would dead-letter the good events batched with the bad one.
    first, second = decode(b'[{"x": NaN}, {"x": 1e999}]')
    assert math.isnan(first["x"]) and second["x"] == math.inf


@pytest.mark.parametrize(("event", "problem"), [
    ({"ts": 1, "x": float("nan")}, "field 'x' is nan"),
    ({"ts": 1, "x": np.float64("inf")}, "field 'x' is inf"),
    ({"ts": pd.NaT}, "NaT"),
    ({"ts": 1, "tags": {"a", "b"}}, "set"),
    ({1: "x"}, "field name 1 is not a string"),
    ([("ts", 1)], "not list"),
])
def test_encode_refuses_what_json_cannot_hold(event: object, problem: str) -> None:
    with pytest.raises(EncodeError, match=problem):
        encode_event(event)  # type: ignore[arg-type]


def test_no_events_is_not_a_message() -> None:
    with pytest.raises(EncodeError, match="no events"):
        encode_events([])


# any JSON value, nested, NaN included (the flat json_values above feed the events)
nested_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                 max_size=3),
    max_leaves=8,
)


def _decode_with_json_loads(value: bytes) -> list[dict[str, object]] | str:
    """What decode gave when it called json.loads: the events, or the error's reason."""
    try:
        parsed = json.loads(value.decode("utf-8"))
    except (json.JSONDecodeError, RecursionError):
        return MALFORMED_JSON
    if isinstance(parsed, dict):
        return [parsed]
    if isinstance(parsed, list) and all(isinstance(item, dict) for item in parsed):
        return parsed
    return NOT_AN_EVENT


@settings(max_examples=300, deadline=None)
@given(value=nested_json_values, space=st.sampled_from(["", " ", "\n", "\t "]),
       cut=st.integers(0, 40), extra=st.sampled_from(["", ",", "}", "]", "x", "{}"]))
def test_decode_agrees_with_json_loads(value: object, space: str, cut: int,
                                        extra: str) -> None:
    """orjson, and the direct scanner call where it declines, give json.loads' results on
    valid, padded and broken JSON."""
    text = json.dumps(value)
    for candidate in (text, space + text + space, text[:cut], text + extra):
        raw = candidate.encode("utf-8")
        if not raw:
            continue
        expected = _decode_with_json_loads(raw)
        try:
            got: list[dict[str, object]] | str = decode(raw)
        except DecodeError as err:
            got = err.reason
        assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True), candidate


@pytest.mark.parametrize("literal", [
    b"18446744073709551615", b"18446744073709551616", b"-9223372036854775808",
    b"-9223372036854775809", b"123456789012345678901234567890", b"1e999", b"-1e999", b"NaN",
    b"-Infinity", b"0.12345678901234567890123", b"1.7976931348623157e308", b"5e-324",
])
def test_numbers_at_the_edges_of_orjson_come_out_as_json_loads_reads_them(literal: bytes
                                                                           ) -> None:
    """orjson reads integers past 64 bits as floats and refuses the NaN and infinity
    tokens; json keeps the integers exact and takes the tokens: decode gives json's."""
    value = b'[{"ts": 1767225600000, "n": ' + literal + b"}]"
    assert repr(decode(value)) == repr(json.loads(value))


def test_an_integer_too_long_to_convert_is_malformed_not_a_crash() -> None:
    with pytest.raises(DecodeError) as caught:
        decode(b'{"ts": 1767225600000, "n": ' + b"9" * 5000 + b"}")
    assert caught.value.reason == MALFORMED_JSON


def test_a_lone_surrogate_escape_is_malformed_not_a_crash() -> None:
    """A JSON string with a lone surrogate escape decodes to a str that cannot be
    encoded: building the micro-batch's frame raised UnicodeEncodeError, so one such
    message would have failed its micro-batch on every retry. A pair (an emoji) is text."""
    from monitor.schema import Schema
    from streaming.messages import RawMessage, decode_messages

    schema = Schema.parse({"c": "str"})
    batch = decode_messages([
        RawMessage(0, 1, b'{"ts": 1767225600000, "c": "\\udc00x"}'),
        RawMessage(0, 2, b'[{"ts": 1767225600000, "c": "ok"}, {"ts": 1, "c": "\\ud800"}]'),
        RawMessage(0, 3, b'{"ts": 1767225600000, "c": "\\ud83d\\ude00"}'),
    ], schema)
    assert batch.events["c"].tolist() == ["\U0001f600"]
    assert [(r.offset, r.reason) for r in batch.rejected] == [(1, "malformed_json"),
                                                              (2, "malformed_json")]


def test_the_unknown_fields_mark_is_false_in_chunks_that_had_none(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Micro-batches are framed a chunk at a time and a chunk gains the unknown-fields
    mark only when one of its events has an unknown field: joined, the other chunks' rows
    must read False, not NaN (which a bool cast would make True)."""
    import streaming.messages
    from metrics.expectations import UNKNOWN_FIELDS
    from monitor.schema import Schema
    from streaming.messages import RawMessage, decode_messages

    monkeypatch.setattr(streaming.messages, "CHUNK_EVENTS", 2)
    schema = Schema.parse({"c": "str"})
    events = [{"ts": 1767225600000, "c": str(i)} for i in range(6)]
    events[4]["debug"] = "x"  # the third chunk's first event
    batch = decode_messages([RawMessage(0, i, json.dumps(e).encode())
                             for i, e in enumerate(events)], schema)
    assert batch.events[UNKNOWN_FIELDS].dtype == bool
    assert batch.events[UNKNOWN_FIELDS].tolist() == [False, False, False, False, True, False]


def test_the_unknown_fields_mark_is_left_out_when_asked_and_nothing_else_changes() -> None:
    """``mark_unknown=False`` (a processor none of whose metrics judges unknown fields)
    skips the look at every event's keys: the same events and rejects, without the mark."""
    from metrics.expectations import UNKNOWN_FIELDS
    from monitor.schema import Schema
    from streaming.messages import RawMessage, decode_messages

    schema = Schema.parse({"c": "str", "x": "float?"})
    messages = [
        RawMessage(0, 0, b'[{"ts": 1767225600000, "c": "a", "debug": "x"},'
                         b' {"ts": 1767225600001, "c": "b", "x": 1.5}]'),
        RawMessage(1, 0, b'{"ts": 1767225600002, "c": null, "debug": 3}'),
        RawMessage(1, 1, b'{"ts": 1767225600003, "c": "d", "debug": null}'),
    ]
    marked = decode_messages(messages, schema)
    unmarked = decode_messages(messages, schema, mark_unknown=False)
    assert marked.events[UNKNOWN_FIELDS].tolist() == [True, False, False]
    assert UNKNOWN_FIELDS not in unmarked.events.columns
    pd.testing.assert_frame_equal(unmarked.events,
                                  marked.events.drop(columns=UNKNOWN_FIELDS))
    assert unmarked.rejected == marked.rejected
    assert [(r.partition, r.offset) for r in unmarked.rejected] == [(1, 0)]


def test_only_metrics_judging_unknown_fields_ask_for_the_mark() -> None:
    import metrics
    from metrics.labelled import Labelled

    assert metrics.expect_no_unknown_fields().judges_unknown_fields()
    assert not metrics.expect_not_null("c").judges_unknown_fields()
    assert not metrics.mean("x").judges_unknown_fields()
    summary = metrics.validation_summary
    assert summary([metrics.expect_not_null("c"),
                    metrics.expect_no_unknown_fields()]).judges_unknown_fields()
    assert not summary([metrics.expect_not_null("c")]).judges_unknown_fields()
    assert Labelled(metrics.expect_no_unknown_fields()).judges_unknown_fields()
    assert not Labelled(metrics.mean("x")).judges_unknown_fields()
