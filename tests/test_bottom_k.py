"""The ids an assertion samples by: :func:`metrics.bottom_k.id_texts_at` spells the ids
at some rows of a column as taking those rows, leaving out the nulls and spelling each
id with :func:`id_text` does, for every kind of column an id comes in — sliced out of a
larger frame (as a chunk is), with nulls, and in Arrow arrays of several chunks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from metrics.bottom_k import BottomK, id_hash, id_text, id_texts_at
from metrics.frame_columns import column_values


def straightforward(values: object, rows: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Take the rows, leave the nulls out, spell each id."""
    taken = pd.Series(pd.array(values)).iloc[rows]  # type: ignore[call-overload]
    known = ~taken.isna().to_numpy()
    return [id_text(value) for value in taken[known].tolist()], rows[known]


def nulled(null: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` as objects, None where ``null``."""
    return np.where(null, np.array(None), values)


def id_columns(rng: np.random.Generator, n: int) -> dict[str, object]:
    ints = rng.integers(-2**62, 2**62, n)
    null = rng.random(n) < 0.2
    words = rng.choice(["ann", "é ü", 'quo"te', "", "\u2603", "7"], n)
    with_nulls = pd.array(nulled(null, words).tolist(), dtype="str")
    half = n // 2
    return {
        "int64": ints,
        "uint64": rng.integers(2**63, 2**64 - 1, n, dtype=np.uint64),
        "Int64": pd.array(nulled(null, ints.astype(object)).tolist(), dtype="Int64"),
        "UInt64": pd.array(rng.integers(0, 2**64 - 1, n, dtype=np.uint64), dtype="UInt64"),
        "str": pd.array(words.tolist(), dtype="str"),
        "str with nulls": with_nulls,
        "string[python]": pd.array(nulled(null, words).tolist(),
                                   dtype="string[python]"),
        "object": np.array([None if missing else (int(i) if i % 2 else f"u{i}")
                            for i, missing in zip(ints.tolist(), null, strict=True)],
                           dtype=object),
        "int64[pyarrow]": pd.array(nulled(null, ints.astype(object)).tolist(),
                                   dtype="int64[pyarrow]"),
        "string (int32 offsets)": pd.arrays.ArrowStringArray(
            pa.chunked_array([pa.array(words.tolist(), type=pa.string())])),
        "str in two chunks": pd.arrays.ArrowStringArray(pa.chunked_array(
            [pa.array(words[:half].tolist(), type=pa.large_string()),
             pa.array(nulled(null, words)[half:].tolist(),
                      type=pa.large_string())])),
    }


@pytest.mark.parametrize("seed", range(4))
def test_id_texts_at_equals_the_straightforward_way_for_every_id_column(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    frame = pd.DataFrame(id_columns(rng, n))
    # a chunk as the engine gets it: a slice of a larger frame (Arrow arrays then start
    # at an offset into their buffers)
    chunk = frame.iloc[37:250]
    for name in frame:
        assert isinstance(name, str)
        values = column_values(chunk, name)
        for rows in (np.flatnonzero(rng.random(len(chunk)) < 0.3),  # ascending, as used
                     rng.integers(0, len(chunk), 40),  # any order, repeated
                     np.array([], dtype=np.intp), np.arange(len(chunk))):
            texts, kept = id_texts_at(values, rows)
            expected_texts, expected_rows = straightforward(values, rows)
            assert texts == expected_texts, name
            np.testing.assert_array_equal(kept, expected_rows)
            assert all(type(text) is str for text in texts), name


def test_nulls_are_left_out_and_the_other_rows_kept_in_order() -> None:
    values = pd.array([5, None, 7, None, 9], dtype="Int64")
    texts, kept = id_texts_at(values, np.array([4, 3, 1, 0]))
    assert texts == ["9", "5"]
    assert kept.tolist() == [4, 0]
    strings = pd.array(["a", None, "c"], dtype="str")
    texts, kept = id_texts_at(strings, np.array([1, 2]))
    assert (texts, kept.tolist()) == (["c"], [2])


@pytest.mark.parametrize("values", [np.array([1.0, 2.0]), np.array([True, False]),
                                    pd.array([True, False], dtype="boolean"),
                                    np.array([1.5, "a"], dtype=object)])
def test_floats_and_booleans_are_refused_as_ids(values: object) -> None:
    with pytest.raises(TypeError, match="an id must be a string or an integer"):
        id_texts_at(values, np.array([0, 1]))


@pytest.mark.parametrize("seed", range(4))
def test_the_sample_keeps_each_ids_smallest_record_in_hash_order(seed: int) -> None:
    """Offered in batches, ids repeating with other records (a smaller one replaces the
    kept one in place): the records come out in sample order, each its id's smallest."""
    rng = np.random.default_rng(seed)
    k = int(rng.choice([1, 5, 40]))
    offers = [(f"u{i}", f"r{int(rng.integers(0, 1_000)):04d}")
              for i in rng.integers(0, int(rng.choice([3, 60, 500])), 2_000)]
    sample: BottomK[str] = BottomK(k)
    start = 0
    for stop in [*np.sort(rng.integers(0, len(offers), 30)).tolist(), len(offers)]:
        sample.offer_many((text, id_hash(text), record) for text, record in offers[start:stop])
        start = stop
    smallest: dict[str, str] = {}
    for text, record in offers:
        smallest[text] = min(record, smallest.get(text, record))
    kept = sorted(smallest, key=lambda text: (id_hash(text), text))[:k]
    assert list(sample.items()) == [(text, smallest[text]) for text in kept]
    assert sample.records() == [smallest[text] for text in kept]
