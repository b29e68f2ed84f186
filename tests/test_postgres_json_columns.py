"""A Postgres ``json``/``jsonb`` column read in columns is parsed to the values psycopg's
``json.loads`` gives, though orjson parses most of it: type for type (1 is no 1.0), big
integers, lone surrogates and numbers json.loads reads as infinity included."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
from hypothesis import example, given
from hypothesis import strategies as st

from monitor.batch.postgres_columns import TYPE_NAME_KEY, to_frame

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12)


def typed(value: Any) -> Any:
    """``value`` with every scalar's type beside it, so 1 and 1.0 (and -0.0 and 0.0) differ."""
    if isinstance(value, list):
        return [typed(v) for v in value]
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    return (type(value).__name__, repr(value))


def json_column(texts: list[str | None], type_name: bytes) -> pa.Table:
    field = pa.field("doc", pa.string(), metadata={TYPE_NAME_KEY: type_name})
    return pa.table({"doc": pa.array(texts, pa.string())}, schema=pa.schema([field]))


@given(st.lists(JSON_VALUES, min_size=1, max_size=20), st.sampled_from([b"json", b"jsonb"]))
@example([["\ud800", "a"], {"\udc00": 1}], b"json")
@example([[12345678901234567890123], [-9223372036854775809], 1e308, [1, 1.0, -0.0]], b"json")
def test_json_texts_parse_as_json_loads_parses_them(values: list[Any], type_name: bytes
                                                   ) -> None:
    texts: list[str | None] = [*(json.dumps(v) for v in values), None, "1e400", "[1E999]"]
    frame = to_frame(json_column(texts, type_name))
    expected = [None if text is None else json.loads(text) for text in texts]
    assert [typed(v) for v in frame["doc"]] == [typed(v) for v in expected]
