"""Ranking metrics (NDCG@k, MRR, hit rate@k, catalogue coverage) and the list[str] schema
type they read: values against a plain-Python computation per event, exact merging, state
round trips, and what validation accepts and rejects."""

from __future__ import annotations

import itertools
import json
import math
import random
import re
from collections.abc import Callable
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

import metrics
from metrics.base import Aggregate, aggregate_from_dict
from metrics.groups import Groups
from monitor import DefinitionError, Monitor
from monitor.schema import Schema
from tests.builtins import ITEMS, ranked

# -- plain-Python references, one event at a time ----------------------------------------


def engaged_ranks(frame: pd.DataFrame, k: int | None) -> list[int]:
    """Per event with a list and an engagement: the 1-based rank of the engaged item in the
    top k, or 0 when it is not there."""
    out = []
    for shown, clicked in zip(frame["shown"], frame["clicked"], strict=True):
        if shown is None or clicked is None:
            continue
        top = shown if k is None else shown[:k]
        out.append(top.index(clicked) + 1 if clicked in top else 0)
    return out


def reference(name: str, frame: pd.DataFrame, k: int | None) -> float:
    """The exact mean of each event's score, rounded once (Fractions, event by event)."""
    ranks = engaged_ranks(frame, k)
    if name == "ndcg":
        scores = [Fraction(1.0 / math.log2(1 + r)) if r else Fraction(0) for r in ranks]
    elif name == "mrr":
        scores = [Fraction(1, r) if r else Fraction(0) for r in ranks]
    else:
        scores = [Fraction(1 if r else 0) for r in ranks]
    return float(sum(scores, Fraction(0)) / len(ranks))


def numpy_reference(name: str, frame: pd.DataFrame, k: int | None) -> float:
    """The textbook float computation, to within rounding."""
    ranks = np.array(engaged_ranks(frame, k), dtype=np.float64)
    hit = ranks > 0
    if name == "ndcg":
        return float(np.mean(np.where(hit, 1.0 / np.log2(1.0 + np.maximum(ranks, 1)), 0.0)))
    if name == "mrr":
        return float(np.mean(np.where(hit, 1.0 / np.maximum(ranks, 1), 0.0)))
    return float(np.mean(hit))


def value_of(aggregate: Aggregate, frame: pd.DataFrame) -> dict[str, float]:
    state = aggregate.new_state()
    state.update(frame)
    return aggregate.value(state)


def bits(value: float) -> bytes:
    return np.float64(value).tobytes()


PRESETS: dict[str, Callable[..., Aggregate]] = {
    "ndcg": metrics.ndcg, "mrr": metrics.mrr, "hit_rate": metrics.hit_rate}


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("k", [1, 3, 10])
def test_rank_metrics_equal_a_per_event_computation(name: str, k: int, seed: int) -> None:
    frame = ranked(np.random.default_rng(seed), 2_000)
    got = value_of(PRESETS[name]("shown", "clicked", k=k), frame)[name]
    assert bits(got) == bits(reference(name, frame, k))  # rounded once, as exactly
    assert got == pytest.approx(numpy_reference(name, frame, k), rel=1e-12)
    assert 0.0 < got < 1.0


def test_mrr_without_k_ranks_over_the_whole_list() -> None:
    frame = ranked(np.random.default_rng(4), 2_000)
    whole = value_of(metrics.mrr("shown", "clicked"), frame)["mrr"]
    assert bits(whole) == bits(reference("mrr", frame, None))
    assert whole > value_of(metrics.mrr("shown", "clicked", k=2), frame)["mrr"]


def test_events_without_engagement_are_left_out_and_misses_score_zero() -> None:
    frame = pd.DataFrame({
        "shown": [["a", "b", "c"], ["a", "b"], ["a"], None, [], ["b", "a", "a"]],
        "clicked": ["c", None, "z", "a", "a", "a"],
    })
    # scored: rank 3; "z" not shown (0); an empty list (0); "a" first at rank 2
    assert value_of(metrics.hit_rate("shown", "clicked", k=3), frame) == {"hit_rate": 0.5}
    assert value_of(metrics.hit_rate("shown", "clicked", k=2), frame) == {"hit_rate": 0.25}
    # (1/3 + 1/2) / 4 = 5/24, rounded once (the float sum then division is an ulp off)
    assert value_of(metrics.mrr("shown", "clicked"), frame) == {"mrr": 5 / 24}
    expected_ndcg = float((Fraction(1 / math.log2(4)) + Fraction(1 / math.log2(3))) / 4)
    assert value_of(metrics.ndcg("shown", "clicked", k=3), frame) == {"ndcg": expected_ndcg}
    nobody = frame.assign(clicked=None)
    assert math.isnan(value_of(metrics.ndcg("shown", "clicked", k=3), nobody)["ndcg"])


@pytest.mark.parametrize("k", [None, 1, 4])
def test_catalogue_coverage_equals_a_set_of_the_top_k(k: int | None) -> None:
    frame = ranked(np.random.default_rng(5), 60)
    seen = {item for shown in frame["shown"] if shown is not None for item in shown[:k]}
    catalogue = [*ITEMS[5:], "never-shown"]
    got = value_of(metrics.catalogue_coverage("shown", catalogue=catalogue, k=k), frame)
    assert got == {"coverage": len(seen & set(catalogue)) / len(catalogue)}
    sized = value_of(metrics.catalogue_coverage("shown", catalogue_size=100, k=k), frame)
    assert sized == {"coverage": len(seen) / 100}


def test_the_catalogue_order_does_not_change_the_metric() -> None:
    a = metrics.catalogue_coverage("shown", catalogue=["b", "a", "c"])
    b = metrics.catalogue_coverage("shown", catalogue=["c", "b", "a"])
    assert a.id == b.id and a == b


# -- exact merging and state round trips --------------------------------------------------

CASES = [metrics.ndcg("shown", "clicked", k=5), metrics.mrr("shown", "clicked"),
         metrics.hit_rate("shown", "clicked", k=2),
         metrics.catalogue_coverage("shown", catalogue=ITEMS[::3], k=4),
         metrics.catalogue_coverage("shown", catalogue_size=40)]
IDS = [a.kind + str(i) for i, a in enumerate(CASES)]


@pytest.mark.parametrize("aggregate", CASES, ids=IDS)
@pytest.mark.parametrize("seed", range(5))
def test_any_chunking_merged_in_any_order_is_bit_identical(aggregate: Aggregate,
                                                            seed: int) -> None:
    rng = np.random.default_rng(seed)
    frame = ranked(rng, 1_500)
    whole = aggregate.new_state()
    whole.update(frame)
    cuts = sorted({0, len(frame), *rng.integers(0, len(frame), size=8).tolist()})
    parts = []
    for start, stop in itertools.pairwise(cuts):
        part = aggregate.new_state()
        part.update(frame.iloc[start:stop])
        parts.append(aggregate.state_from_bytes(part.to_bytes()))
    random.Random(seed).shuffle(parts)
    merged = parts[0]
    for part in parts[1:]:
        merged.merge(part)
    assert merged == whole and merged.to_bytes() == whole.to_bytes()
    [field] = aggregate.fields()
    assert bits(aggregate.value(merged)[field]) == bits(aggregate.value(whole)[field])


@pytest.mark.parametrize("aggregate", CASES, ids=IDS)
def test_the_grouped_update_equals_updating_each_group(aggregate: Aggregate) -> None:
    """As the engine calls it: every row in an overall group and again in a segment's."""
    rng = np.random.default_rng(11)
    frame = ranked(rng, 800)
    codes = np.concatenate([np.zeros(800, dtype=int), 1 + rng.integers(0, 5, 800)])
    rows = np.concatenate([np.arange(800), np.arange(800)])
    grouped = [aggregate.new_state() for _ in range(6)]
    aggregate.update_groups(grouped, frame, Groups(codes, 6, rows))
    for group, state in enumerate(grouped):
        alone = aggregate.new_state()
        alone.update(frame.iloc[rows[codes == group]])
        assert state.to_bytes() == alone.to_bytes(), f"group {group}"


@pytest.mark.parametrize("aggregate", CASES, ids=IDS)
def test_state_and_definition_round_trip(aggregate: Aggregate) -> None:
    state = aggregate.new_state()
    state.update(ranked(np.random.default_rng(8), 500))
    again = aggregate.state_from_bytes(state.to_bytes())
    assert again == state and again.to_bytes() == state.to_bytes()
    rebuilt = aggregate_from_dict(json.loads(json.dumps(aggregate.to_dict())))
    assert rebuilt == aggregate and rebuilt.id == aggregate.id
    assert rebuilt.value(rebuilt.state_from_bytes(state.to_bytes())) == aggregate.value(state)


def test_bytes_that_are_no_state_of_the_definition_are_refused() -> None:
    at_two = metrics.hit_rate("shown", "clicked", k=2)
    at_five = metrics.hit_rate("shown", "clicked", k=5)
    state = at_five.new_state()
    state.update(pd.DataFrame({"shown": [["a", "b", "c", "d"]], "clicked": ["d"]}))
    with pytest.raises(ValueError, match="not rank state bytes for k=2"):
        at_two.state_from_bytes(state.to_bytes())  # a rank of 4 cannot be in the top 2
    with pytest.raises(ValueError, match="not rank state bytes"):
        at_two.state_from_bytes(b"[1, 2]")
    with pytest.raises(ValueError, match="cannot merge a rank state"):
        at_two.new_state().merge(state)
    coverage = metrics.catalogue_coverage("shown", catalogue=["a", "b"])
    with pytest.raises(ValueError, match="outside the catalogue"):
        coverage.state_from_bytes(b'["a","z"]')


def test_a_column_that_holds_no_lists_is_named() -> None:
    frame = pd.DataFrame({"shown": ["a,b"], "clicked": ["a"]})
    with pytest.raises(ValueError, match="column 'shown' must hold lists of item ids"):
        value_of(metrics.ndcg("shown", "clicked", k=3), frame)


# -- bad definitions -----------------------------------------------------------------------


@pytest.mark.parametrize(("make", "message"), [
    (lambda: metrics.ndcg("shown", "clicked", k=0), "ndcg: k must be an integer of at least 1"),
    # the definitions a caller without a type checker could write: wrong types on purpose
    (lambda: metrics.hit_rate("shown", "clicked", k=2.5),  # type: ignore[arg-type]
     "hit_rate: k must be an integer"),
    (lambda: metrics.mrr("shown", "clicked", k=True), "mrr: k must be an integer"),
    (lambda: metrics.ndcg("shown", "shown", k=3), "shown and clicked are both 'shown'"),
    (lambda: metrics.catalogue_coverage("shown"), "give either catalogue="),
    (lambda: metrics.catalogue_coverage("shown", catalogue=["a"], catalogue_size=1),
     "give either catalogue="),
    (lambda: metrics.catalogue_coverage("shown", catalogue=["a", "a"]), "an item twice"),
    (lambda: metrics.catalogue_coverage("shown", catalogue=[1, 2]),  # type: ignore[list-item]
     "list of item ids"),
    (lambda: metrics.catalogue_coverage("shown", catalogue_size=0), "catalogue_size must be"),
    (lambda: metrics.catalogue_coverage("shown", catalogue_size=5, k=0), "k must be"),
])
def test_bad_parameters_fail_when_the_aggregate_is_made(make: Callable[[], Aggregate],
                                                        message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def home() -> Monitor:
    mon = Monitor("ranking")
    mon.stream("home", schema={"shown": "list[str]", "clicked": "str?", "device": "str",
                               "rank": "int"})
    return mon


@pytest.mark.parametrize(("aggregate", "options", "message"), [
    (metrics.ndcg("device", "clicked", k=3), {},
     "column 'device' is str but ndcg needs a list[str] column"),
    (metrics.mrr("shown", "rank"), {}, "column 'rank' is int but mrr needs a str column"),
    (metrics.hit_rate("shown", "missing", k=3), {}, "unknown column 'missing'"),
    (metrics.catalogue_coverage("device", catalogue_size=9), {},
     "column 'device' is str but catalogue_coverage needs a list[str] column"),
    (metrics.share("shown", "a"), {}, "column 'shown' is list[str] but share needs a category"),
    (metrics.count(), {"segment_by": ["shown"]}, "segment column 'shown' is a list"),
    (metrics.psi("shown", "training"), {},
     "column 'shown' is list[str] but psi needs a scalar column; drift compares one value"),
    (metrics.drift_report(["device", "shown"], "training"), {},
     "column 'shown' is list[str] but drift needs a scalar column"),
])
def test_wrong_column_kinds_fail_at_registration_naming_the_metric(
        aggregate: Aggregate, options: dict, message: str) -> None:
    with pytest.raises(DefinitionError, match=re.escape(f"metric 'home_rank': {message}")):
        home().metric("home_rank", "home", aggregate, window="1h", **options)


# -- the list[str] schema type -------------------------------------------------------------

LISTS = Schema.parse({"shown": "list[str]", "maybe": "list[str]?"})
TS = "2026-01-01T00:00:00Z"


def validate(values: list[object], column: str = "shown") -> tuple[list[object], list[str]]:
    other = "maybe" if column == "shown" else "shown"
    raw = pd.DataFrame({"ts": [TS] * len(values), column: pd.Series(values, dtype=object),
                        other: pd.Series([["x"]] * len(values), dtype=object)})
    clean, rejects = LISTS.validate(raw)
    return clean[column].tolist(), rejects.sort_values("row")["reason"].tolist()


def test_lists_arrive_in_many_shapes_and_come_out_as_lists_of_str() -> None:
    lists, reasons = validate([
        ["a", "b"], ("a", "b"), np.array(["a", "b"], dtype=object), '["a", "b"]',
        b'["a", "b"]', [np.str_("a"), "b"], [], "[]", ["é", "a\x00b"], '["\\ud83d\\ude00"]',
    ])
    assert reasons == []
    assert lists == [["a", "b"]] * 6 + [[], [], ["é", "a\x00b"], ["\U0001f600"]]
    assert all(type(v) is list and all(isinstance(i, str) for i in v) for v in lists)


def test_anything_else_is_rejected_with_its_reason() -> None:
    cases: list[tuple[object, str]] = [
        ("a,b", "is not a list of strings"),  # text, but no JSON array
        ("['a', 'b']", "is not a list of strings"),  # Python's repr: not JSON
        ('{"a": 1}', "is not a list of strings"),
        ('"a"', "is not a list of strings"),
        (3, "is not a list of strings"),
        (True, "is not a list of strings"),
        ({"a": "b"}, "is not a list of strings"),
        (np.array([["a"], ["b"]]), "is not a list of strings"),  # two-dimensional
        ("[1, 2]", "holds an item that is not a string"),
        ('["a", null]', "holds an item that is not a string"),
        ('[["a"]]', "holds an item that is not a string"),
        (["a", 1], "holds an item that is not a string"),
        (["a", None], "holds an item that is not a string"),
        ('["\\udc00"]', "holds an item that is not UTF-8 text"),  # a lone surrogate escape
        (b"\xff[]", "is not UTF-8 text"),
        (None, "is null"),
    ]
    lists, reasons = validate([value for value, _ in cases])
    assert reasons == [f"field 'shown' {reason}" for _, reason in cases]
    assert lists == []


@pytest.mark.parametrize(("bad", "reason"), [
    (["a", 1], "holds an item that is not a string"),
    (["a", None], "holds an item that is not a string"),
    ([["a"]], "holds an item that is not a string"),
    (["\udc00"], "holds an item that is not UTF-8 text"),  # a str no UTF-8 can hold
    ('["a"]', None),  # text among lists: read, not rejected
    (("a",), None),
])
def test_one_value_that_is_no_clean_list_among_lists_is_judged_alone(
        bad: object, reason: str | None) -> None:
    """A column of lists is checked at once; one value that is no list of text among them
    is judged as it is alone (and only its row is rejected)."""
    lists, reasons = validate([["a", "b"], bad, ["é"], []])
    if reason is None:
        assert reasons == [] and lists == [["a", "b"], ["a"], ["é"], []]
    else:
        assert reasons == [f"field 'shown' {reason}"]
        assert lists == [["a", "b"], ["é"], []]


def test_clean_lists_are_copies_and_nulls_of_a_nullable_column_stay_null() -> None:
    given = [["a", "b"], None, ["c"]]
    raw = pd.DataFrame({"ts": [TS] * 3, "shown": pd.Series([["x"]] * 3, dtype=object),
                        "maybe": pd.Series(given, dtype=object)})
    clean, rejects = LISTS.validate(raw)
    assert rejects.empty and clean["maybe"].tolist() == given
    # the caller's lists are never shared, with nulls in the column or without
    assert clean["maybe"][0] is not given[0]
    assert not any(mine is theirs for mine, theirs in zip(clean["shown"], raw["shown"],
                                                        strict=True))


def test_a_nullable_list_may_be_null_or_missing_but_not_nan() -> None:
    from monitor.schema import SOURCE_NAN

    lists, reasons = validate([None, ["a"], SOURCE_NAN], column="maybe")
    assert lists == [None, ["a"]]
    assert reasons == ["field 'maybe' is NaN"]
    clean, rejects = LISTS.validate(pd.DataFrame({"ts": [TS], "shown": [["a"]]}))
    assert rejects.empty and clean["maybe"].isna().tolist() == [True]
