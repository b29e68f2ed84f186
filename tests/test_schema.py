"""Validation keeps every good event and gives every bad one a reason."""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitor.schema import Schema

SCHEMA = Schema.parse({"latency_ms": "float", "rank": "int", "clicked": "bool",
                       "country": "str", "feature": "float?"})


def good(**overrides):
    event = {"ts": "2026-01-01T00:00:00Z", "latency_ms": 12.5, "rank": 3, "clicked": True,
             "country": "SE", "feature": 1.0}
    event.update(overrides)
    return event


def reasons_for(events: list[dict]) -> list[str]:
    clean, rejects = SCHEMA.validate(pd.DataFrame(events))
    assert len(clean) + len(rejects) == len(events)
    return list(rejects.sort_values("row")["reason"])


def test_each_problem_has_its_reason() -> None:
    bad = [
        good(ts="not a time"),
        good(ts=None),
        good(latency_ms="fast"),
        good(latency_ms=float("inf")),
        good(latency_ms=None),
        good(rank=2.5),
        good(clicked="maybe"),
        good(country=["SE"]),
    ]
    missing = good()
    del missing["rank"]
    assert reasons_for([good(), *bad, missing]) == [
        "unparseable timestamp in ts",
        "missing field 'ts'",
        "field 'latency_ms' is not a number",
        "field 'latency_ms' is not finite",
        "field 'latency_ms' is null",
        "field 'rank' is not an integer",
        "field 'clicked' is not a boolean",
        "field 'country' is not a string",
        "field 'rank' is null",
    ]


def test_an_integer_field_infinite_or_past_64_bits_is_rejected_not_raised() -> None:
    """The int column is cast to Int64 last: an infinite value, or one outside
    [-2**63, 2**63), made that cast raise for the whole frame (in the stream, one such
    event stopped its micro-batch). Now each is rejected with its reason, the others kept."""
    events = [good(rank=1), good(rank=float("-inf")), good(rank=2.0**63), good(rank=-(2**63)),
              good(rank=-(2.0**64)), good(rank=4)]
    clean, rejects = SCHEMA.validate(pd.DataFrame(events))
    assert clean["rank"].tolist() == [1, -(2**63), 4]
    assert str(clean["rank"].dtype) == "Int64"
    assert list(rejects.sort_values("row")["reason"]) == [
        "field 'rank' is not finite",
        "field 'rank' is outside the 64-bit integer range",
        "field 'rank' is outside the 64-bit integer range",
    ]


def test_nullable_fields_may_be_missing_or_null() -> None:
    without = good()
    del without["feature"]
    clean, rejects = SCHEMA.validate(pd.DataFrame([good(feature=None), without]))
    assert rejects.empty
    assert clean["feature"].isna().all()


def test_times_from_iso_and_epoch_milliseconds() -> None:
    events = [good(ts="2026-01-01T01:00:00+01:00"), good(ts=1767225600000),
              good(ts="2026-01-01T00:00:00.000Z")]
    clean, rejects = SCHEMA.validate(pd.DataFrame(events))
    assert rejects.empty
    assert (clean["ts"] == pd.Timestamp("2026-01-01T00:00:00Z")).all()


def test_future_events_are_rejected_when_asked() -> None:
    clean, rejects = SCHEMA.validate(pd.DataFrame([good(ts="2099-01-01T00:00:00Z"), good()]),
                                     max_time=pd.Timestamp("2027-01-01T00:00:00Z"))
    assert list(rejects["reason"]) == ["timestamp in ts is in the future"]
    assert len(clean) == 1


def test_clean_rows_are_typed() -> None:
    events = [good(latency_ms="12.5", rank="3", clicked="false")]
    clean, rejects = SCHEMA.validate(pd.DataFrame(events))
    assert rejects.empty
    assert clean["latency_ms"].dtype == np.float64
    assert clean["rank"].dtype == "Int64"
    assert clean["clicked"].dtype == "boolean"
    assert clean.loc[0, "clicked"] == False  # noqa: E712 - pandas NA-aware boolean


def test_times_mixed_from_several_files_are_all_read() -> None:
    """A column concatenated from Parquet (datetimes), JSON (text) and CSV (epoch ms)."""
    from datetime import UTC, datetime

    events = [
        good(ts=datetime(2026, 1, 1, tzinfo=UTC)),
        good(ts=pd.Timestamp("2026-01-01T00:00:00Z")),
        good(ts="2026-01-01T00:00:00Z"),
        good(ts=1767225600000),
    ]
    clean, rejects = SCHEMA.validate(pd.DataFrame(events))
    assert rejects.empty
    assert (clean["ts"] == pd.Timestamp("2026-01-01T00:00:00Z")).all()
