"""Consistency checks: the violating keys counted as pandas counts them, the same state
whatever the chunking or order, the examples the violating keys of the lowest hash, and
memory bounded by max_keys (a uniform sample of keys past it, flagged, its estimates
near the truth)."""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import struct

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import metrics
from metrics.key_consistency import Consistency, ConsistencyState
from metrics.packed import pack_counts, pack_texts
from monitor import DefinitionError, Monitor
from monitor.assertion_examples import examples
from monitor.assertion_export import example_lines
from monitor.research import run
from monitor.spec import OVERALL
from tests.stored_states import stored_states

START = pd.Timestamp("2026-03-02T00:00:00Z")


def key_hash(text: str) -> tuple[int, str]:
    digest = hashlib.blake2b(text.encode(), digest_size=8, person=b"dm-bottom-k-v1")
    return int.from_bytes(digest.digest(), "big"), text


def requests(n: int, seed: int, keys: int | None = None) -> pd.DataFrame:
    """Requests logged once or more (a retry), a retry ranked again now and then; some
    predictions null, rankings as lists."""
    rng = np.random.default_rng(seed)
    keys = keys or max(2, n // 2)
    request = rng.integers(0, keys, n)
    prediction = (request * 7 % 5).astype(float)
    reranked = rng.random(n) < 0.05
    prediction[reranked] = rng.integers(0, 5, int(reranked.sum()))
    prediction[rng.random(n) < 0.03] = np.nan
    prediction[(prediction == 0) & (rng.random(n) < 0.5)] = -0.0  # equal to 0.0
    top = np.array(["mix", "radio", "hits", "chill"], dtype=object)
    ranking = [list(top[np.roll(np.arange(4), (r * 3 + int(x)) % 4)][:3]) for r, x in
               zip(request.tolist(), reranked.tolist(), strict=True)]
    return pd.DataFrame({
        "ts": START + pd.to_timedelta(rng.integers(0, 3 * 3_600_000, n), unit="ms"),
        "request_id": request.astype(str).astype(object),
        "user": rng.integers(0, max(2, keys // 3), n),
        "country": rng.choice(["SE", "DE"], n).astype(object),
        "prediction": prediction,
        "ranking": pd.Series(ranking, dtype=object),
    })


def pandas_counts(frame: pd.DataFrame, key: str, field: str, max_values: int
                  ) -> tuple[int, int, list[str]]:
    """Keys with a non-null value, violating keys, and the violating keys' texts."""
    known = frame[frame[field].notna()]
    texts = known[field].map(lambda v: json.dumps(v) if isinstance(v, list)
                             else repr(float(v) + 0.0))
    distinct = texts.groupby(known[key].astype(str)).nunique()
    return len(distinct), int((distinct > max_values).sum()), \
        distinct.index[distinct > max_values].tolist()


def state_of(check: Consistency, frame: pd.DataFrame) -> ConsistencyState:
    state = check.new_state()
    state.update(frame)
    return state


@pytest.mark.parametrize(("field", "max_values"), [("prediction", 1), ("ranking", 1),
                                                   ("prediction", 2)])
def test_counts_and_examples_equal_pandas_and_a_brute_bottom_k(field: str,
                                                               max_values: int) -> None:
    # fewer requests, logged more often, when three values make a violation
    frame = requests(5_000, seed=1, keys=2_500 if max_values == 1 else 300)
    check = metrics.consistency(field, key="request_id", max_values=max_values, k=15)
    state = state_of(check, frame)
    keys, violating, violators = pandas_counts(frame, "request_id", field, max_values)
    assert violating > 15
    assert check.value(state) == {"violating_keys": float(violating),
                                  "violating_key_rate": violating / keys,
                                  "keys": float(keys), "exact": 1.0}
    found = check.examples(state)
    assert [e["id"] for e in found] == sorted(violators, key=key_hash)[:15]
    for example in found:
        rows = frame[(frame["request_id"] == example["id"]) & frame[field].notna()]
        assert example["events"] == len(rows)
        assert len(example["values"]) == max_values + 1
        seen = {json.dumps(v) for v in rows[field]} if field == "ranking" else set(
            rows[field] + 0.0)
        kept = ({json.dumps(v) for v in example["values"]} if field == "ranking"
                else set(example["values"]))
        assert kept <= seen


def test_windows_and_segments_through_a_monitor_equal_pandas() -> None:
    mon = Monitor()
    mon.stream("requests", schema={"request_id": "str", "user": "int", "country": "str",
                                   "prediction": "float?", "ranking": "list[str]"})
    spec = mon.metric("same_ranking", "requests",
                      metrics.consistency("ranking", key="request_id"),
                      segment_by=["country"])
    frame = requests(6_000, seed=2)
    values = run(spec, frame).values
    hour = frame["ts"].dt.floor("1h")
    checked = 0
    for (segment, start), window in values.groupby(["segment", "window_start"]):
        assert isinstance(segment, str)
        rows = frame[hour == start]
        if segment != OVERALL:
            rows = rows[rows["country"] == segment.split("=")[1]]
        keys, violating, _ = pandas_counts(rows, "request_id", "ranking", 1)
        got = dict(zip(window["field"], window["value"], strict=True))
        assert (got["keys"], got["violating_keys"]) == (keys, violating)
        checked += 1
    assert checked == 3 * 3


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 500), max_keys=st.integers(1, 60),
       field=st.sampled_from(["prediction", "ranking"]),
       cuts=st.lists(st.floats(0, 1), max_size=8), order=st.randoms(use_true_random=False))
def test_any_chunking_and_merge_tree_gives_the_same_bytes(
        seed: int, rows: int, max_keys: int, field: str, cuts: list[float],
        order: random.Random) -> None:
    """Also past max_keys: the keys held are then the max_keys of the lowest hash, each
    with every one of its values."""
    check = metrics.consistency(field, key="request_id", k=5, max_keys=max_keys)
    frame = requests(rows, seed=seed % 10_000).sample(frac=1.0, random_state=seed % 1000)
    whole = state_of(check, frame)
    bounds = sorted({0, rows, *(int(c * rows) for c in cuts)})
    parts = []
    for start, stop in itertools.pairwise(bounds):
        part = state_of(check, frame.iloc[start:stop])
        parts.append(check.state_from_bytes(part.to_bytes()))
    order.shuffle(parts)
    while len(parts) > 1:
        i = order.randrange(len(parts) - 1)
        parts[i].merge(parts.pop(i + 1))
    assert parts[0].to_bytes() == whole.to_bytes()
    assert parts[0] == whole

    all_keys = sorted(set(frame.loc[frame[field].notna(), "request_id"]), key=key_hash)
    held = all_keys[:max_keys]
    value = check.value(whole)
    assert value["exact"] == (1.0 if len(all_keys) <= max_keys else 0.0)
    sampled = frame[frame["request_id"].isin(held)]
    _, violating, violators = pandas_counts(sampled, "request_id", field, 1)
    assert [e["id"] for e in check.examples(whole)] == sorted(violators, key=key_hash)[:5]
    if held:
        assert value["violating_key_rate"] == violating / len(held)


def test_memory_is_bounded_and_the_estimates_are_near_the_truth() -> None:
    """A window of 200k keys in a table of 2,000: the state's size is that of 2,000 keys
    whatever the events, and the estimates are within a few standard errors
    (1 / sqrt(2000) ~ 2.2%)."""
    check = metrics.consistency("prediction", key="request_id", max_keys=2_000)
    sizes = {}
    for keys in (20_000, 200_000):
        frame = requests(keys * 2, seed=keys, keys=keys)
        state = check.new_state()
        for start in range(0, len(frame), 50_000):
            state.update(frame.iloc[start:start + 50_000])
        value = check.value(state)
        true_keys, violating, _ = pandas_counts(frame, "request_id", "prediction", 1)
        assert value["exact"] == 0.0 and len(state.keys) == 2_000
        assert abs(value["keys"] / true_keys - 1) < 0.08
        assert abs(value["violating_key_rate"] - violating / true_keys) < 0.02
        sizes[keys] = len(state.to_bytes())
    assert sizes[200_000] <= 1.1 * sizes[20_000], sizes


def test_bad_definitions_fail_at_registration_naming_the_metric() -> None:
    mon = Monitor()
    mon.stream("s", schema={"rid": "str?", "uid": "str", "f": "float", "flags": "list[str]"})
    with pytest.raises(DefinitionError, match=r"metric 'a': column 'rid' .* non-null id"):
        mon.metric("a", "s", metrics.consistency("f", key="rid"))
    with pytest.raises(DefinitionError, match=r"metric 'b': column 'f' .*str or int"):
        mon.metric("b", "s", metrics.consistency("flags", key="f"))
    with pytest.raises(DefinitionError, match=r"metric 'c': unknown column 'nope'"):
        mon.metric("c", "s", metrics.consistency("nope", key="uid"))
    with pytest.raises(ValueError, match=r"max_keys=0: must be a whole number from 1"):
        metrics.consistency("f", key="uid", max_keys=0)
    with pytest.raises(ValueError, match=r"another field than its key"):
        metrics.consistency("uid", key="uid")
    with pytest.raises(DefinitionError, match=r"metric 'd': per-event function failed on "
                       "sample events with KeyError"):
        mon.metric("d", "s", aggregate=metrics.consistency(key="uid"))(
            lambda events: events["missing"])
    with pytest.raises(DefinitionError, match=r"metric 'e': per-event function returned 1 "
                       "values for 4 events"):
        mon.metric("e", "s", aggregate=metrics.consistency(key="uid"))(
            lambda events: events["f"].head(1))
    assert set(mon.metrics) == set()


def test_a_per_event_function_feeds_it_and_examples_come_out_as_a_table() -> None:
    mon = Monitor()
    mon.stream("requests", schema={"request_id": "str", "user": "int", "country": "str",
                                   "prediction": "float?", "ranking": "list[str]"})

    @mon.metric("same_top", "requests", aggregate=metrics.consistency(key="request_id", k=3))
    def same_top(events: pd.DataFrame) -> pd.Series:
        return events["ranking"].str[0]

    frame = requests(3_000, seed=5)
    table = examples(same_top, run(same_top, frame).windows)
    assert list(table.columns) == ["segment", "window_start", "window_end", "id", "severity",
                                   "events", "values"]
    assert (table.groupby("window_start").size() == 3).all()
    top = frame.assign(top=frame["ranking"].str[0])
    for row in table.to_dict("records"):
        assert set(row["values"]) <= set(top.loc[top["request_id"] == row["id"], "top"])


def test_the_export_writes_the_violating_keys_as_json_lines() -> None:
    """``monitor assertions export`` lays out a consistency check's examples as an
    assertion's: the key as id, its number of distinct values kept as severity, its
    events and values as fields."""
    mon = Monitor()
    mon.stream("requests", schema={"request_id": "str", "user": "int", "country": "str",
                                   "prediction": "float?", "ranking": "list[str]"})
    spec = mon.metric("same_ranking", "requests",
                      metrics.consistency("ranking", key="request_id", k=4))
    frame = requests(2_000, seed=9)
    stored = stored_states(run(spec, frame).windows)
    lines = [json.loads(line) for line in
             example_lines("same_ranking", 1, "research", spec.aggregate, stored)]
    assert len(lines) == 3 * 4
    hour = frame["ts"].dt.floor("1h")
    for line in lines:
        rows = frame[(frame["request_id"] == line["id"])
                     & (hour == pd.Timestamp(line["window_start"]))]
        assert line["fields"]["events"] == len(rows) and line["severity"] == 2.0
        assert {json.dumps(v) for v in line["fields"]["values"]} <= {
            json.dumps(v) for v in rows["ranking"]}


# States as the JSON format wrote them before the packed one (taken from that version's
# to_bytes for the events below), which a store may still hold.
STORED_AS_JSON = {
    False: b'{"dropped":false,"keys":[["\\u00e95",1,["\\"\\\\u00fc\\""]],["r2",2,'
           b'["\\"dog\\""]],["r1",2,["\\"cow\\"","\\"cat\\""]]]}',
    True: b'{"dropped":true,"keys":[["r7",1,["\\"y\\""]],["r9",1,["\\"x\\""]],'
          b'["\\u00e95",1,["\\"\\\\u00fc\\""]]]}',
}
STORED_EVENTS = {
    False: pd.DataFrame({"request_id": ["r1", "r2", "r1", "r3", "r2", "é5", "r4"],
                         "prediction": ["cat", "dog", "cow", None, "dog", "ü", None]}),
    True: pd.DataFrame({"request_id": ["r1", "r2", "r1", "r3", "r2", "é5", "r4", "r9", "r7"],
                        "prediction": ["cat", "dog", "cow", None, "dog", "ü", None, "x",
                                       "y"]}),
}


@pytest.mark.parametrize("dropped", [False, True])
def test_a_state_stored_as_json_still_loads_and_is_written_packed(dropped: bool) -> None:
    check = metrics.consistency("prediction", key="request_id", max_keys=3)
    computed = state_of(check, STORED_EVENTS[dropped])
    loaded = check.state_from_bytes(STORED_AS_JSON[dropped])
    assert loaded == computed and loaded.keys.dropped is dropped
    assert check.value(loaded) == check.value(computed)
    assert check.examples(loaded) == check.examples(computed)
    packed = loaded.to_bytes()
    assert packed[:4] == b"DMK1" and packed == computed.to_bytes()
    assert check.state_from_bytes(packed) == computed


def legacy_json(state: ConsistencyState) -> bytes:
    """The JSON format of states stored before the packed one, spelled out."""
    held = state.keys.held()
    counts = state.value_counts().tolist()
    firsts = np.r_[0, np.cumsum(counts)].tolist()
    keys = [[text, events, held.value_texts[firsts[i]:firsts[i + 1]].tolist()]
            for i, (text, events) in enumerate(zip(held.texts.tolist(), held.events.tolist(),
                                                   strict=True))]
    return json.dumps({"dropped": state.keys.dropped, "keys": keys}, sort_keys=True,
                      separators=(",", ":")).encode()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(0, 300), max_keys=st.integers(1, 40),
       field=st.sampled_from(["prediction", "ranking"]))
def test_packed_and_json_bytes_load_to_the_same_state(seed: int, rows: int, max_keys: int,
                                                      field: str) -> None:
    check = metrics.consistency(field, key="request_id", max_keys=max_keys)
    state = state_of(check, requests(rows, seed=seed))
    packed = state.to_bytes()
    for data in (packed, legacy_json(state)):
        loaded = check.state_from_bytes(data)
        assert loaded == state and loaded.to_bytes() == packed


def test_bad_packed_bytes_are_refused_with_a_reason() -> None:
    check = metrics.consistency("prediction", key="request_id", max_keys=3)
    good = state_of(check, STORED_EVENTS[False]).to_bytes()
    header = struct.Struct("<4sBQQ")
    _, _, keys, values = header.unpack_from(good)

    def with_header(magic: bytes = b"DMK1", dropped: int = 0, n_keys: int = keys,
                    n_values: int = values) -> bytes:
        return header.pack(magic, dropped, n_keys, n_values) + good[header.size:]

    cases = {
        good[:-1]: "the bytes end early",
        good + b"\0": "1 bytes of trailing data",
        with_header(magic=b"DMK2"): "bad header",
        with_header(dropped=2): "bad header",
        with_header(n_keys=4): "holds 4 keys",
        with_header(dropped=1, n_keys=2): "holds 2 keys",
        with_header(n_values=values + 1): "end early|holds",
    }
    for data, reason in cases.items():
        with pytest.raises(ValueError, match=reason):
            check.state_from_bytes(data)


@pytest.mark.parametrize(("frame", "reason"), [
    # a key written twice: the table unites it, so the state would hold fewer keys
    (pd.DataFrame({"request_id": ["a", "a"], "prediction": ["x", "y"]}), "a key twice"),
    # a value written twice for one key
    (pd.DataFrame({"request_id": ["a", "b"], "prediction": ["x", "x"]}), "a value twice"),
])
def test_packed_bytes_that_repeat_a_key_or_a_value_are_refused(frame: pd.DataFrame,
                                                               reason: str) -> None:
    """Bytes made by hand (with the same packing) that no state would write."""
    check = metrics.consistency("prediction", key="request_id", max_keys=3)
    keys = frame["request_id"].tolist()
    values = [json.dumps(v) for v in frame["prediction"]]
    if reason == "a value twice":  # one key holding both values
        keys, sizes = ["a"], np.array([2])
    else:
        sizes = np.ones(len(keys), dtype=np.int64)
    data = (struct.pack("<4sBQQ", b"DMK1", 0, len(keys), len(values))
            + pack_counts(sizes.astype(np.int64)) + pack_counts(sizes.astype(np.int64))
            + pack_texts(keys) + pack_texts(values))
    with pytest.raises(ValueError, match=reason):
        check.state_from_bytes(data)


def test_packed_bytes_with_more_values_than_events_are_refused() -> None:
    check = metrics.consistency("prediction", key="request_id", max_keys=3)
    data = (struct.pack("<4sBQQ", b"DMK1", 0, 1, 2) + pack_counts(np.array([1]))
            + pack_counts(np.array([2])) + pack_texts(["a"]) + pack_texts(['"x"', '"y"']))
    with pytest.raises(ValueError, match="inconsistent for key 'a': 1 events, 2 values"):
        check.state_from_bytes(data)
