"""The JSON text of sampled fields, spelled a column at a time, is byte for byte the text
that encoding each value on its own gives (``json_value`` then canonical JSON): the
samples every stage stored before the column-wise encoding stay the same."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import metrics
from metrics.arrow_strings import arrow_strings_at
from metrics.base import canonical_json
from metrics.frame_columns import column_values
from metrics.sample_records import CANONICAL, column_texts, json_value
from monitor.schema import Schema
from tests.builtins import violations


def one_by_one(column: pd.Series, rows: np.ndarray) -> list[str]:
    return [CANONICAL.encode(json_value(value)) for value in column.array.take(rows).tolist()]


def columns(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """A column of every dtype a schema makes (validated), and some it does not."""
    raw = pd.DataFrame({
        "ts": pd.Timestamp("2026-03-01T00:00:00Z") + pd.to_timedelta(
            rng.choice([0, 1, 1_000, 1_000_000, 123_456_789, 3_599_999_999_999], n)
            + rng.integers(0, 3_600, n) * 1_000_000_000, unit="ns"),
        "i": rng.integers(-2**62, 2**62, n), "i_null": rng.integers(-5, 5, n).astype(object),
        "f": rng.normal(size=n) * 10.0 ** rng.integers(-30, 30, n),
        "b": rng.random(n) < 0.5, "b_null": (rng.random(n) < 0.5).astype(object),
        "s": rng.choice(["ann", "é ü", 'quo"te', "tab\t", "\u2603", ""], n).astype(object),
        "tags": pd.Series([["a", "b"][: i % 3] for i in range(n)], dtype=object),
    })
    raw["f"] = raw["f"].where(rng.random(n) > 0.1, np.nan)
    raw.loc[rng.random(n) < 0.1, ["i_null", "b_null", "s"]] = None
    schema = Schema.parse({"i": "int", "i_null": "int?", "f": "float?", "b": "bool",
                           "b_null": "bool?", "s": "str?", "tags": "list[str]?"})
    clean, rejects = schema.validate(raw)
    assert rejects.empty
    clean["inf"] = rng.choice([np.inf, -np.inf, 0.5, np.nan], n)
    clean["f32"] = rng.normal(size=n).astype(np.float32)
    clean["u8"] = rng.integers(0, 255, n).astype(np.uint8)
    clean["naive"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 10**12, n))
    clean["np_bool"] = rng.random(n) < 0.5
    clean["obj"] = rng.choice(["x", "y"], n).astype(object)
    clean["big"] = pd.array(rng.integers(2**63, 2**64 - 1, n, dtype=np.uint64), dtype="UInt64")
    clean["floats"] = pd.array(rng.normal(size=n), dtype="Float64")
    clean.loc[rng.random(n) < 0.2, "floats"] = pd.NA
    clean["tz"] = clean["ts"].dt.tz_convert("Europe/Stockholm")
    return clean


@pytest.mark.parametrize("seed", range(5))
def test_every_dtype_is_spelled_as_one_value_at_a_time(seed: int) -> None:
    rng = np.random.default_rng(seed)
    frame = columns(rng, 400)
    rows = np.sort(rng.choice(400, 150, replace=False))
    assert {str(frame[name].dtype) for name in frame} >= {
        "datetime64[ns, UTC]", "Int64", "float64", "bool", "boolean", "str", "object"}
    for name in frame:
        assert column_texts(frame[name], rows) == one_by_one(frame[name], rows), name
        assert column_texts(frame[name], rows[::-1]) == one_by_one(frame[name], rows[::-1])
    assert column_texts(frame["f"], rows[:0]) == []


@pytest.mark.parametrize("seed", range(3))
def test_a_chunk_sliced_out_of_a_frame_is_spelled_as_one_value_at_a_time(seed: int) -> None:
    """A chunk is a slice of a larger frame: its Arrow strings start at an offset into
    buffers they share with the whole (:mod:`metrics.arrow_strings` reads them there);
    Arrow strings in several chunks, or with 32-bit offsets, are spelled too."""
    rng = np.random.default_rng(seed)
    frame = columns(rng, 600)
    words = frame["s"].astype(object).where(frame["s"].notna(), None).tolist()
    frame["two_chunks"] = pd.arrays.ArrowStringArray(pa.chunked_array(
        [pa.array(words[:250], type=pa.large_string()),
         pa.array(words[250:], type=pa.large_string())]))
    frame["short_offsets"] = pd.arrays.ArrowStringArray(
        pa.chunked_array([pa.array(words, type=pa.string())]))
    for start, stop in [(0, 600), (1, 599), (313, 471), (250, 251)]:
        chunk = frame.iloc[start:stop]
        rows = np.sort(rng.choice(len(chunk), min(len(chunk), 40), replace=False))
        for name in chunk:
            assert isinstance(name, str)
            assert column_texts(column_values(chunk, name), rows) == one_by_one(
                chunk[name], rows), (name, start, stop)


def test_arrow_strings_are_read_from_the_buffers_as_arrow_takes_them() -> None:
    values = pd.array(["ann", None, "é ü", "", 'q"', None, "\u2603"] * 3, dtype="str")
    sliced = values[5:]  # an offset into the parent's buffers
    rows = np.array([0, 1, 2, 15, 3, 3])
    assert arrow_strings_at(sliced, rows) == sliced.take(rows).to_numpy(
        # pandas-stubs want a scalar for na_value; pandas takes None (the nulls as None)
        dtype=object, na_value=None).tolist()  # type: ignore[arg-type]
    assert arrow_strings_at(sliced, rows[:0]) == []
    # not read so (the caller takes them): Python strings, Arrow strings in two chunks
    assert arrow_strings_at(pd.array(["a"], dtype="string[python]"), rows[:1]) is None
    assert arrow_strings_at(pd.arrays.ArrowStringArray(pa.chunked_array(
        [pa.array(["a"]), pa.array(["b"])])), rows[:1]) is None


def test_arrow_strings_not_in_one_chunk_are_spelled_as_one_value_at_a_time() -> None:
    """Kept Arrow strings are read from the buffers; those the buffers cannot give (an
    array in two chunks) are taken by pyarrow, to the same text."""
    two_chunks = pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array(
        [pa.array(["ann", None, "é"]), pa.array(['q"', "", None])])))
    one_chunk = pd.Series(pd.array(["ann", None, "é", 'q"', "", None], dtype="str"))
    rows = np.array([5, 0, 3, 1, 4, 2, 3])
    for column in (two_chunks, one_chunk):
        assert column_texts(column, rows) == one_by_one(column, rows)
        assert column_texts(column_values(column.to_frame("s"), "s"), rows) == one_by_one(
            column, rows)


@pytest.mark.parametrize("seed", range(3))
def test_utc_times_are_spelled_as_one_value_at_a_time_over_the_whole_range(seed: int) -> None:
    """Times before 1970, whole seconds, whole microseconds and nanoseconds, and NaT, at
    every nanosecond a pandas time can hold."""
    rng = np.random.default_rng(seed)
    low, high = pd.Timestamp.min.value, pd.Timestamp.max.value
    ns = np.concatenate([rng.integers(low, high, 2_000),
                         rng.integers(low // 1_000, high // 1_000, 500) * 1_000,
                         rng.integers(low // 10**9 + 1, high // 10**9, 500) * 10**9,
                         [0, -1, 1, 999, 1_000, -1_000, -10**9, low, high]])
    times = pd.Series(pd.to_datetime(ns, unit="ns", utc=True))
    times = times.mask(rng.random(len(times)) < 0.05)  # NaT where drawn
    rows = rng.permutation(len(times))
    assert column_texts(times, rows) == one_by_one(times, rows)


def test_an_assertions_records_are_the_canonical_json_of_each_event() -> None:
    """The records a state keeps are those the definition names: canonical JSON of the id,
    severity and kept fields of the event, built here value by value."""
    frame = violations(np.random.default_rng(3), 3_000)
    agg = metrics.assertion("severity", id="view_id", keep=("x", "ts", "device", "shown"),
                            k=300)
    state = agg.new_state()
    for start in range(0, len(frame), 700):
        state.update(frame.iloc[start:start + 700])
    records = [record for _, record in state.sample.items()]
    assert len(records) == 300
    by_id: dict[str, str] = {}
    for _, event in frame[frame["severity"] > 0].iterrows():
        record = canonical_json({
            "id": json_value(event["view_id"]), "severity": json_value(event["severity"]),
            "fields": {name: json_value(event[name]) for name in agg.keep}})
        held = by_id.get(str(event["view_id"]))
        by_id[str(event["view_id"])] = record if held is None else min(held, record)
    assert records == [by_id[text] for text, _ in state.sample.items()]


@pytest.mark.parametrize("keep", [(), ("x",), ("50%s", 'say "hi"', "é", "x")])
def test_records_are_canonical_json_whatever_the_kept_fields_are_named(keep: tuple[str, ...]
                                                                            ) -> None:
    """The record's text around the values is built from the field names (quoted, a
    ``%s`` or a quote in a name included) and the values are put in place at once."""
    rng = np.random.default_rng(4)
    frame = violations(rng, 200)
    frame["50%s"], frame['say "hi"'], frame["é"] = frame["device"], frame["x"], frame["ts"]
    agg = metrics.assertion("severity", id="view_id", keep=keep, k=500)
    state = agg.new_state()
    state.update(frame)
    expected: dict[str, str] = {}
    for _, event in frame[frame["severity"] > 0].iterrows():
        record = canonical_json({
            "id": json_value(event["view_id"]), "severity": json_value(event["severity"]),
            "fields": {name: json_value(event[name]) for name in keep}})
        held = expected.get(str(event["view_id"]))
        expected[str(event["view_id"])] = record if held is None else min(held, record)
    assert dict(state.sample.items()) == expected
