"""A ranked-list column held in Arrow (the batch stage's Postgres read) against the same
lists as Python lists (every other source): the same rejects and reasons from validation,
the same ranks, lists and states from the ranking metrics, for any lists and clicks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import metrics
from metrics.groups import Groups
from metrics.ranked_lists import hit_ranks, ranked_lists
from monitor import Monitor
from monitor.engine import Engine
from monitor.schema import Schema

ITEMS = st.sampled_from(["a", "b", "c", "é☃", ""])
LISTS = st.lists(st.none() | st.lists(ITEMS, max_size=6), min_size=1, max_size=40)
CLICKS = st.none() | ITEMS
ARROW = pd.ArrowDtype(pa.list_(pa.string()))


def arrow_column(lists: list[Any]) -> pd.arrays.ArrowExtensionArray:
    return pd.arrays.ArrowExtensionArray(pa.array(lists, pa.list_(pa.string())))


def frames(lists: list[list[str] | None], clicks: list[str | None]
           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The same rows with the lists in Arrow and as Python lists."""
    python = np.empty(len(lists), dtype=object)
    python[:] = lists
    as_arrow = pd.DataFrame({"shown": arrow_column(lists), "clicked": clicks})
    as_python = pd.DataFrame({"shown": python, "clicked": clicks})
    return as_arrow, as_python


@settings(max_examples=200, deadline=None)
@given(LISTS, st.data(), st.sampled_from([None, 1, 2, 5]))
def test_ranks_and_lists_are_the_same(lists: list[list[str] | None], data: st.DataObject,
                                      k: int | None) -> None:
    clicks = data.draw(st.lists(CLICKS, min_size=len(lists), max_size=len(lists)))
    as_arrow, as_python = frames(lists, clicks)
    for got, want in zip(hit_ranks(as_arrow, "shown", "clicked", k),
                         hit_ranks(as_python, "shown", "clicked", k), strict=True):
        assert got.tolist() == want.tolist()
        assert got.dtype == want.dtype
    assert ranked_lists(as_arrow, "shown").tolist() == ranked_lists(as_python, "shown").tolist()


@settings(max_examples=100, deadline=None)
@given(LISTS, st.data(), st.integers(1, 5))
def test_a_slice_of_an_arrow_column_reads_as_its_rows(lists: list[list[str] | None],
                                                     data: st.DataObject, cut: int) -> None:
    """The batch read hands chunks that are slices of a larger Arrow column (read as they
    are, not copied): only the slice's rows count."""
    clicks = data.draw(st.lists(CLICKS, min_size=len(lists), max_size=len(lists)))
    before = [["a", "b"], None, ["c", "a"]][:cut] + [["b"]] * (cut - 3)
    held = pa.array(before + lists, pa.list_(pa.string())).slice(cut)
    as_arrow = pd.DataFrame({"shown": pd.arrays.ArrowExtensionArray(held), "clicked": clicks})
    _, as_python = frames(lists, clicks)
    for got, want in zip(hit_ranks(as_arrow, "shown", "clicked", None),
                         hit_ranks(as_python, "shown", "clicked", None), strict=True):
        assert got.tolist() == want.tolist()
    assert ranked_lists(as_arrow, "shown").tolist() == lists


def test_lists_read_from_arrow_share_their_texts_and_not_their_lists() -> None:
    """A coverage metric reads an Arrow column's lists as Python lists: each distinct
    text made once (a catalogue's few items, many times over), each row's list its own."""
    lists = [["home", "mix"], None, ["mix", "home"], ["mix"]] * 10  # not one letter:
    # Python keeps one object of each one-letter text whoever makes it
    got = ranked_lists(frames(lists, [None] * len(lists))[0], "shown")
    assert got.tolist() == lists
    present = [row for row in got.tolist() if row is not None]
    assert len({id(item) for row in present for item in row}) == 2
    assert len({id(row) for row in present}) == len(present)


@settings(max_examples=100, deadline=None)
@given(LISTS, st.data())
def test_metric_states_are_the_same(lists: list[list[str] | None], data: st.DataObject) -> None:
    clicks = data.draw(st.lists(CLICKS, min_size=len(lists), max_size=len(lists)))
    codes = np.array(data.draw(st.lists(st.integers(0, 2), min_size=len(lists),
                                        max_size=len(lists))), dtype=np.int64)
    as_arrow, as_python = frames(lists, clicks)
    for aggregate in (metrics.ndcg("shown", "clicked", k=3), metrics.mrr("shown", "clicked"),
                      metrics.catalogue_coverage("shown", catalogue_size=5, k=2)):
        got: list[Any] = [aggregate.new_state() for _ in range(3)]
        want: list[Any] = [aggregate.new_state() for _ in range(3)]
        aggregate.update_groups(got, as_arrow, Groups(codes, 3))
        aggregate.update_groups(want, as_python, Groups(codes, 3))
        assert [s.to_bytes() for s in got] == [s.to_bytes() for s in want]


@pytest.mark.parametrize("text", ["é☃", "ascii"])  # UTF-8 checked, or only ASCII seen
def test_validation_rejects_the_same_rows_for_the_same_reasons(text: str) -> None:
    schema = Schema.parse({"shown": "list[str]", "note": "str?"}, time="ts")
    lists = [["a", "b"], None, ["a", None], [], [text], [None]]
    raw = pd.DataFrame({"ts": [1767225600000 + i for i in range(len(lists))],
                        "note": list("uvwxyz")})
    python = np.empty(len(lists), dtype=object)
    python[:] = lists
    clean_arrow, rejects_arrow = schema.validate(raw.assign(shown=arrow_column(lists)))
    clean_python, rejects_python = schema.validate(raw.assign(shown=python))
    pd.testing.assert_frame_equal(rejects_arrow, rejects_python)
    assert rejects_arrow["reason"].tolist() == [
        "field 'shown' is null", "field 'shown' holds an item that is not a string",
        "field 'shown' holds an item that is not a string"]
    assert clean_arrow["shown"].dtype == ARROW  # kept in Arrow for the metrics
    assert clean_arrow["shown"].tolist() == clean_python["shown"].tolist()
    pd.testing.assert_frame_equal(clean_arrow.drop(columns="shown"),
                                  clean_python.drop(columns="shown"))


def test_bytes_that_are_not_text_reject_their_row() -> None:
    """Arrow trusts whoever built a string array to hand it UTF-8; validation checks, and
    rejects the row that holds such an item (as it rejects a str field's bytes)."""
    texts = pa.array([b"a", b"\xed\xa0\x80", b"\xc3\xa9", None], pa.binary()
                     ).view(pa.string())
    lists = pa.ListArray.from_arrays(pa.array([0, 1, 2, 3, 4], pa.int32()), texts)
    raw = pd.DataFrame({"ts": [1767225600000 + i for i in range(4)],
                        "shown": pd.arrays.ArrowExtensionArray(lists)})
    clean, rejects = Schema.parse({"shown": "list[str]"}, time="ts").validate(raw)
    assert clean["shown"].tolist() == [["a"], ["é"]]
    assert dict(zip(rejects["row"], rejects["reason"], strict=True)) == {
        1: "field 'shown' holds an item that is not UTF-8 text",
        3: "field 'shown' holds an item that is not a string"}


def test_bytes_outside_a_slice_are_not_judged() -> None:
    """A slice of a column is checked on its own bytes: ASCII here, though the array's
    buffer goes on with bytes that are no text."""
    texts = pa.array([b"a", b"b", b"\xed\xa0\x80"], pa.binary()).view(pa.string())
    lists = pa.ListArray.from_arrays(pa.array([0, 1, 2, 3], pa.int32()), texts).slice(0, 2)
    raw = pd.DataFrame({"ts": [1767225600000, 1767225600001],
                        "shown": pd.arrays.ArrowExtensionArray(lists)})
    clean, rejects = Schema.parse({"shown": "list[str]"}, time="ts").validate(raw)
    assert clean["shown"].tolist() == [["a"], ["b"]]
    assert len(rejects) == 0


def test_a_per_event_function_sees_python_lists_and_the_ranking_its_arrow() -> None:
    """A per-event function is given Python lists whatever held them (it is the user's
    code, written against what every stage gives it), once per chunk; the ranking
    aggregates read the Arrow column: the same values as from Python lists."""
    mon = Monitor()
    mon.stream("home", schema={"shown": "list[str]?", "clicked": "str?"})
    seen: list[Any] = []

    @mon.metric("a_position", "home", aggregate=metrics.mean(), window="1h")
    def a_position(frame: pd.DataFrame) -> pd.Series:  # list.index: Python lists only
        seen.append(frame["shown"].dtype)
        return frame["shown"].map(lambda items: float(items.index("a"))
                                  if items is not None and "a" in items else -1.0)

    @mon.metric("first_is_a", "home", aggregate=metrics.mean(), window="1h")
    def first_is_a(frame: pd.DataFrame) -> pd.Series:
        return frame["shown"].map(lambda items: float(bool(items) and items[0] == "a"))

    ndcg = mon.metric("ndcg", "home", metrics.ndcg("shown", "clicked", k=2), window="1h")
    lists = [["a", "b"], None, ["b", "a"], [], ["c", "a", "b"]] * 30
    clicks = ["a", "b", "a", None, "b"] * 30
    as_arrow, as_python = frames(lists, clicks)
    times = pd.Timestamp("2026-03-01T00:00:00Z") + pd.to_timedelta(
        np.arange(len(lists)) * 60, unit="s")
    values = {}
    seen.clear()  # the registry tried the function on a sample
    for name, frame in (("arrow", as_arrow), ("python", as_python)):
        engine = Engine([a_position, first_is_a, ndcg])
        engine.update(frame.assign(ts=times))
        values[name] = [(v.metric, v.window_start, v.field, v.value)
                        for v in engine.values("batch")]
    assert values["arrow"] == values["python"]
    assert seen == [np.dtype(object), np.dtype(object)]  # Python lists in both runs


def test_an_aggregate_that_compares_lists_whole_reads_python_lists() -> None:
    """A consistency check over a list column (lists compared whole) and a null rate of it
    give the same values and states from Arrow lists as from Python lists."""
    mon = Monitor()
    mon.stream("home", schema={"shown": "list[str]?", "clicked": "str?", "user": "int"})
    same = mon.metric("same_lists", "home", metrics.consistency("shown", key="user"),
                      window="1h")
    nulls = mon.metric("null_lists", "home", metrics.null_rate("shown"), window="1h")
    lists = [["a", "b"], None, ["b", "a"], [], ["a", "b"], ["c"]] * 20
    as_arrow, as_python = frames(lists, [None] * len(lists))
    times = pd.Timestamp("2026-03-01T00:00:00Z") + pd.to_timedelta(
        np.arange(len(lists)) * 60, unit="s")
    users = np.arange(len(lists)) % 7
    got = {}
    for name, frame in (("arrow", as_arrow), ("python", as_python)):
        engine = Engine([same, nulls])
        engine.update(frame.assign(ts=times, user=users))
        got[name] = ([(v.metric, v.window_start, v.field, v.value)
                      for v in engine.values("batch")],
                     {key: p.state.to_bytes() for key, p in engine.partials.items()})
    assert got["arrow"] == got["python"]
