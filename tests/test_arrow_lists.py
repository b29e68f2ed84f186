"""Arrow columns of string lists as Python lists: equal to Arrow's own conversion, nulls,
empty lists, slices and chunks included, whether the texts repeat or not."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from metrics.arrow_lists import holds_string_lists, string_lists

FEW = st.sampled_from(["home", "mix", "é☃", ""])  # texts that repeat: made once
MANY = st.text(max_size=6)  # texts that mostly do not
LISTS = st.lists(st.none() | st.lists(st.none() | FEW | MANY, max_size=6), max_size=30)


@given(st.lists(LISTS, min_size=1, max_size=3), st.booleans(), st.integers(0, 5),
       st.integers(0, 5))
def test_lists_equal_arrows_own_conversion(chunks: list[list[list[str | None] | None]],
                                           large: bool, cut_start: int, cut_end: int) -> None:
    data_type = pa.large_list(pa.large_string()) if large else pa.list_(pa.string())
    column = pa.chunked_array([pa.array(chunk, data_type) for chunk in chunks], data_type)
    column = column.slice(cut_start, max(0, len(column) - cut_start - cut_end))
    got = string_lists(column)
    assert got == column.to_pylist()
    assert all(type(v) is list for v in got if v is not None)
    assert len({id(v) for v in got if v is not None}) == sum(v is not None for v in got)


def test_only_lists_of_strings_are_taken() -> None:
    assert holds_string_lists(pa.list_(pa.string()))
    assert holds_string_lists(pa.large_list(pa.large_string()))
    assert not holds_string_lists(pa.list_(pa.int64()))
    assert not holds_string_lists(pa.string())
