"""Assertions: exact violation counts, and a sample of violations that is the same whatever
the chunking or order, uniform over the violating ids and bounded by k.

The sample is checked against a bottom-k computed here from hashlib directly; its
uniformity with a chi-square test (and a KS test) of each violation's inclusion
frequency over many id sets, which a biased sampler fails.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from typing import Literal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import metrics
from metrics.assertions import Assertion, AssertionState
from metrics.groups import Groups
from metrics.queued_sample import queue_bound
from monitor import DefinitionError, Monitor, Threshold
from monitor.assertion_examples import examples
from monitor.engine import Engine
from monitor.partials import merge_stored
from monitor.research import backtest, run
from monitor.spec import OVERALL, MetricSpec
from tests.builtins import violations

START = pd.Timestamp("2026-03-02T00:00:00Z")
SCHEMA = {"view_id": "int", "user": "str", "country": "str", "score": "float",
          "new_user": "bool"}


def brute_bottom_k(ids: list[object], k: int) -> list[str]:
    """The k distinct ids of the smallest BLAKE2b-64 of their text, ties by text."""
    def key(text: str) -> tuple[int, str]:
        digest = hashlib.blake2b(text.encode(), digest_size=8, person=b"dm-bottom-k-v1")
        return int.from_bytes(digest.digest(), "big"), text
    return sorted({str(i) for i in ids}, key=key)[:k]


def homepage(n: int, seed: int, hours: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "ts": START + pd.to_timedelta(rng.integers(0, hours * 3_600_000, n), unit="ms"),
        # a few views logged twice, with another score: one example per id all the same
        "view_id": rng.integers(0, int(n * 0.9), n),
        "user": rng.integers(0, n // 5, n).astype(str).astype(object),
        "country": rng.choice(["SE", "DE", "BR"], n).astype(object),
        "score": rng.random(n),
        "new_user": rng.random(n) < 0.4,
    })


def app(k: int = 20) -> tuple[Monitor, MetricSpec]:
    mon = Monitor()
    mon.stream("home", schema=SCHEMA)

    @mon.metric("sure_about_strangers", "home", window="1h", segment_by=["country"],
                aggregate=metrics.assertion(id="view_id", keep=("ts", "country", "score"),
                                            k=k),
                alerts=[Threshold("violations", above=40)])
    def sure_about_strangers(events: pd.DataFrame) -> pd.Series:
        """A score above 0.8 for a brand-new user is suspicious."""
        return (events["score"] > 0.8) & events["new_user"]

    return mon, sure_about_strangers


def states_by_window(spec: MetricSpec, events: pd.DataFrame) -> dict[tuple[str, str], bytes]:
    return {(w.segment, w.window_start.isoformat()): w.state or b""
            for w in run(spec, events).windows}


def test_counts_and_rate_equal_numpys() -> None:
    _, spec = app()
    events = homepage(6_000, seed=1)
    values = run(spec, events).values
    violated = (events["score"] > 0.8) & events["new_user"]
    hour = events["ts"].dt.floor("1h")
    for segment, rows in [(OVERALL, events.index)] + [
            (f"country={c}", events.index[events["country"] == c]) for c in ("SE", "DE", "BR")]:
        got = values[values["segment"] == segment].pivot(
            index="window_start", columns="field", values="value")
        expected = violated[rows].groupby(hour[rows]).agg(["sum", "mean"])
        assert got["violations"].to_numpy().tolist() == expected["sum"].astype(float).tolist()
        np.testing.assert_array_equal(got["violation_rate"].to_numpy(),
                                      expected["mean"].to_numpy())
        assert set(got["max_severity"]) == {1.0}


def test_severity_scores_count_above_zero_and_nulls_judge_nothing() -> None:
    agg = metrics.assertion("risk", id="view_id", k=3)
    risk = np.array([0.0, -1.0, 0.5, np.nan, 7.25, 2.0, np.nan, 0.1])
    state = agg.new_state()
    state.update(pd.DataFrame({"view_id": np.arange(len(risk)), "risk": risk}))
    judged = risk[~np.isnan(risk)]
    assert agg.value(state) == {"violations": float(np.count_nonzero(judged > 0)),
                                "violation_rate": np.count_nonzero(judged > 0) / len(judged),
                                "max_severity": float(np.max(judged))}
    by_id = {i: r for i, r in enumerate(risk)}
    sample = agg.examples(state)
    assert [e["id"] for e in sample] == [int(i) for i in brute_bottom_k(
        [i for i, r in by_id.items() if r > 0], 3)]
    assert all(e["severity"] == by_id[e["id"]] for e in sample)


def test_sample_is_the_same_for_any_chunking_and_order_and_equals_brute_force() -> None:
    """Research over one frame against the engine fed shuffled chunks of it, each chunk's
    states serialized and merged in a random order, as streaming's partitions are."""
    _, spec = app(k=15)
    events = homepage(8_000, seed=2)
    expected = states_by_window(spec, events)

    clean, rejects = spec.stream.schema.validate(events)
    assert rejects.empty
    rng = random.Random(5)
    shuffled = clean.sample(frac=1.0, random_state=6).reset_index(drop=True)
    cuts = sorted(rng.sample(range(1, len(shuffled)), 40))
    stored = []
    for start, stop in zip([0, *cuts], [*cuts, len(shuffled)], strict=True):
        engine = Engine([spec])
        engine.update(shuffled.iloc[start:stop])
        stored += [(key, p.state.to_bytes(), p.rows) for key, p in engine.partials.items()]
    rng.shuffle(stored)
    merged = merge_stored(spec.aggregate, stored)
    got = {(segment, pd.Timestamp(start, unit="ns", tz="UTC").isoformat()): p.state.to_bytes()
           for (_, segment, start), p in merged.items()}
    assert got == expected

    violated = clean[(clean["score"] > 0.8) & clean["new_user"]]
    hours = violated["ts"].dt.floor("1h")
    assertion = spec.aggregate
    assert isinstance(assertion, Assertion)
    for (segment, window_start), data in expected.items():
        in_window = violated[hours == pd.Timestamp(window_start)]
        if segment != OVERALL:
            in_window = in_window[in_window["country"] == segment.split("=")[1]]
        state = assertion.state_from_bytes(data)
        sample = assertion.examples(state)
        assert [str(e["id"]) for e in sample] == brute_bottom_k(
            in_window["view_id"].tolist(), 15)
        # each example is an event with that id (the one of the smallest record, if several)
        for example in sample:
            event = in_window[(in_window["view_id"] == example["id"])
                              & (in_window["score"] == example["score"])]
            assert len(event) == 1
            assert example["country"] == event["country"].iloc[0]
            assert pd.Timestamp(example["ts"]) == event["ts"].iloc[0]


def test_an_expression_judges_as_a_rate_and_samples_as_a_function() -> None:
    """``metrics.assertion("score > 0.8 and new_user", ...)`` counts what the rate of the
    same condition counts (nulls left out), and finds and keeps the violations a per-event
    function returning the same outcome does (which judges more events: False & null is
    False in pandas)."""
    events = homepage(4_000, seed=7)
    events["new_user"] = events["new_user"].astype(object).where(
        np.random.default_rng(8).random(len(events)) > 0.1, None)
    mon = Monitor()
    mon.stream("home", schema={**SCHEMA, "new_user": "bool?"})
    condition = "score > 0.8 and new_user"
    expression = mon.metric("by_expression", "home", metrics.assertion(
        condition, id="view_id", keep=("score",), k=12))
    rate = mon.metric("rate", "home", metrics.rate(condition))

    @mon.metric("by_function", "home",
                aggregate=metrics.assertion(id="view_id", keep=("score",), k=12))
    def by_function(events: pd.DataFrame) -> pd.Series:
        return (events["score"] > 0.8) & events["new_user"]  # null where new_user is

    by_expression = run(expression, events)
    rates = run(rate, events).values
    assert by_expression.values[by_expression.values["field"] == "violation_rate"][
        "value"].tolist() == rates["value"].tolist()
    function = run(by_function, events)
    violations = [v[v["field"] == "violations"]["value"].tolist()
                  for v in (by_expression.values, function.values)]
    assert violations[0] == violations[1] and min(violations[0]) > 12
    pd.testing.assert_frame_equal(examples(expression, by_expression.windows),
                                  examples(by_function, function.windows), check_exact=True)


def test_an_expression_on_numpy_columns_judges_as_on_nullable_ones() -> None:
    """A numpy float column (NaN for null) is compared with numpy alone, a nullable one
    through pandas: the same counts, highest severity and sample, byte for byte."""
    rng = np.random.default_rng(11)
    score = rng.random(3_000)
    score[rng.random(3_000) < 0.1] = np.nan
    events = pd.DataFrame({"view_id": np.arange(3_000), "score": score,
                           "fresh": rng.random(3_000) < 0.5})
    spec = metrics.assertion("score > 0.7 and not fresh", id="view_id", keep=("score",), k=9)
    states = [spec.new_state(), spec.new_state()]
    states[0].update(events)
    states[1].update(events.astype({"score": "Float64", "fresh": "boolean"}))
    assert states[0].to_bytes() == states[1].to_bytes()
    hits = (score > 0.7) & ~events["fresh"].to_numpy()
    assert (states[0].judged, states[0].violations) == (
        int((~np.isnan(score)).sum()), int(hits.sum()))


@pytest.mark.parametrize("stored_each_chunk", [False, True])
def test_one_engine_fed_many_chunks_keeps_what_research_keeps(stored_each_chunk: bool
                                                              ) -> None:
    """The states stay in memory across hundreds of chunks, as in streaming between
    checkpoints: their queued candidates are trimmed many times (more than
    ``queue_bound(k)`` violations per window) before they are serialized; or every state
    a chunk touched is serialized after it, as the streaming stage stores its dirty
    partials (each read spells what was queued since the last)."""
    _, spec = app(k=15)
    events = homepage(60_000, seed=4)
    expected = states_by_window(spec, events)
    clean, _ = spec.stream.schema.validate(events)
    shuffled = clean.sample(frac=1.0, random_state=8).reset_index(drop=True)
    engine = Engine([spec])
    for start in range(0, len(shuffled), 400):
        touched = engine.update(shuffled.iloc[start:start + 400])
        if stored_each_chunk:
            for key in touched:
                engine.partials[key].state.to_bytes()
    violations = []
    for p in engine.partials.values():
        assert isinstance(p.state, AssertionState)
        violations.append(p.state.violations)
    overall = max(violations)
    assert overall > 4 * queue_bound(15), overall  # trimmed several times
    got = {(segment, pd.Timestamp(start, unit="ns", tz="UTC").isoformat()): p.state.to_bytes()
           for (_, segment, start), p in engine.partials.items()}
    assert got == expected


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 600), k=st.integers(1, 40),
       cuts=st.lists(st.floats(0, 1), max_size=8), order=st.randoms(use_true_random=False))
def test_any_chunking_and_merge_tree_gives_the_same_bytes(
        seed: int, rows: int, k: int, cuts: list[float], order: random.Random) -> None:
    """The sample as well as the values (the contract tests compare values): shared ids
    with other fields, null outcomes, an infinite severity, every type of field kept."""
    agg = metrics.assertion("severity", id="view_id", keep=("ts", "device", "x", "shown"),
                            k=k)
    frame = violations(np.random.default_rng(seed), rows).sample(
        frac=1.0, random_state=seed % 1000)
    whole = agg.new_state()
    whole.update(frame)
    bounds = sorted({0, rows, *(int(c * rows) for c in cuts)})
    parts = []
    for start, stop in itertools.pairwise(bounds):
        part = agg.new_state()
        part.update(frame.iloc[start:stop])
        parts.append(agg.state_from_bytes(part.to_bytes()))
    order.shuffle(parts)
    while len(parts) > 1:
        i = order.randrange(len(parts) - 1)
        parts[i].merge(parts.pop(i + 1))
    assert parts[0].to_bytes() == whole.to_bytes()
    flagged = frame[frame["severity"] > 0]
    assert [str(e["id"]) for e in agg.examples(whole)] == brute_bottom_k(
        flagged["view_id"].tolist(), k)


@pytest.mark.parametrize("id_dtype", ["Int64", "str", "object"])
def test_a_violation_without_an_id_is_counted_not_sampled(
        id_dtype: Literal["Int64", "str", "object"]) -> None:
    """In every group a chunk feeds at once (overall and per segment), whatever the
    chunking: counted as a violation, left out of the sample (the stages refuse such
    events; the state still has one rule for them)."""
    rng = np.random.default_rng(11)
    n = 3_000
    ids = rng.integers(0, 2_000, n).astype(object)
    ids[rng.random(n) < 0.2] = None
    frame = pd.DataFrame({
        "id_": pd.array(ids.tolist(), dtype="Int64") if id_dtype == "Int64"
        else pd.array([None if i is None else f"v{i}" for i in ids], dtype=id_dtype),
        "country": rng.choice(["SE", "DE"], n), "score": rng.random(n)})
    agg = metrics.assertion("score > 0.7", id="id_", keep=("country",), k=25)
    codes = (frame["country"] == "DE").to_numpy().astype(np.intp)
    groups = Groups(np.concatenate([np.zeros(n, np.intp), codes + 1]), 3,
                    np.concatenate([np.arange(n), np.arange(n)]))
    whole = [agg.new_state() for _ in range(3)]
    agg.update_groups(whole, frame, groups)
    chunked = [agg.new_state() for _ in range(3)]
    for start in range(0, n, 170):
        part = frame.iloc[start:start + 170]
        size = len(part)
        part_codes = codes[start:start + size]
        agg.update_groups(chunked, part, Groups(
            np.concatenate([np.zeros(size, np.intp), part_codes + 1]), 3,
            np.concatenate([np.arange(size), np.arange(size)])))
    violated = frame["score"] > 0.7
    for group, rows in enumerate([np.ones(n, bool), codes == 0, codes == 1]):
        assert whole[group].to_bytes() == chunked[group].to_bytes()
        assert whole[group].violations == int((violated & rows).sum())
        flagged = frame[violated & rows & frame["id_"].notna()]
        sample = agg.examples(whole[group])
        assert [str(e["id"]) for e in sample] == brute_bottom_k(flagged["id_"].tolist(), 25)
        assert len(sample) == 25


def test_an_id_seen_twice_keeps_one_example_whatever_the_order() -> None:
    agg = metrics.assertion("bad", id="user", keep=("score",), k=5)
    frame = pd.DataFrame({"user": ["u1", "u1", "u2", "u1"], "bad": [True] * 4,
                          "score": [0.7, 0.2, 0.5, 0.9]})
    kept = set()
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2]):
        state = agg.new_state()
        for row in order:
            state.update(frame.iloc[[row]])
        kept.add(state.to_bytes())
        assert agg.value(state)["violations"] == 4.0
        assert sorted(e["id"] for e in agg.examples(state)) == ["u1", "u2"]
    assert len(kept) == 1


def inclusion_counts(sampler, seeds: int, violations: int, k: int) -> np.ndarray:
    """How often each violating event (by position) is in the sample, over id sets."""
    counts = np.zeros(violations, dtype=np.int64)
    for seed in range(seeds):
        ids = [f"s{seed}-e{i}" for i in range(violations)]
        chosen = sampler(ids, k)
        counts[[ids.index(i) if isinstance(i, str) else i for i in chosen]] += 1
    return counts


def bottom_k_sampler(ids: list[str], k: int) -> list[str]:
    agg = metrics.assertion("bad", id="id_", k=k)
    state = agg.new_state()
    # half the events do not violate, and the violations come in two chunks
    frame = pd.DataFrame({"id_": ids + [f"{i}-ok" for i in ids],
                          "bad": [True] * len(ids) + [False] * len(ids)})
    state.update(frame.iloc[1::2])
    state.update(frame.iloc[::2])
    assert agg.value(state)["violations"] == len(ids)
    return [e["id"] for e in agg.examples(state)]


def uniformity_p_value(counts: np.ndarray, seeds: int, k: int) -> float:
    """Chi-square of inclusion counts: each is Binomial(seeds, k/n) under uniform
    sampling, and their sum is fixed (n - 1 degrees of freedom)."""
    p = k / len(counts)
    statistic = float(np.sum((counts - seeds * p) ** 2) / (seeds * p * (1 - p)))
    return float(stats.chi2.sf(statistic, len(counts) - 1))


def test_sample_is_uniform_over_the_violations() -> None:
    seeds, violations, k = 400, 300, 30
    counts = inclusion_counts(bottom_k_sampler, seeds, violations, k)
    assert counts.sum() == seeds * k
    assert uniformity_p_value(counts, seeds, k) > 0.001
    # positions of the sampled violations, pooled: uniform over the violations
    positions = (np.repeat(np.arange(violations), counts) + 0.5) / violations
    assert stats.kstest(positions, "uniform").pvalue > 0.001
    # the same test rejects a sampler that favours the first violations a little
    def biased(ids: list[str], k: int) -> list[int]:
        rng = np.random.default_rng(int(ids[0][1:].split("-")[0]))
        weights = np.linspace(1.3, 0.7, len(ids))
        return rng.choice(len(ids), size=k, replace=False,
                          p=weights / weights.sum()).tolist()
    biased_counts = inclusion_counts(biased, seeds, violations, k)
    assert uniformity_p_value(biased_counts, seeds, k) < 0.001


def test_state_size_is_bounded_by_k_however_many_violations() -> None:
    agg = metrics.assertion("bad", id="view_id", keep=("country", "score"), k=100)

    def serialized(violations: int) -> bytes:
        rng = np.random.default_rng(violations)
        state = agg.new_state()
        for start in range(0, violations, 250_000):
            n = min(250_000, violations - start)
            state.update(pd.DataFrame({
                "view_id": np.arange(start, start + n),
                "country": rng.choice(["SE", "DE", "BR"], n).astype(object),
                "score": rng.random(n), "bad": np.ones(n, dtype=bool)}))
        assert agg.value(state)["violations"] == violations
        assert len(agg.examples(state)) == 100
        return state.to_bytes()

    small, large = serialized(10_000), serialized(1_000_000)
    # the same 100 records; only the ids' and counts' digits are longer
    assert len(large) <= 1.05 * len(small), (len(small), len(large))


@pytest.mark.parametrize(("function", "problem"), [
    (lambda events: 1 / 0, "failed on sample events with ZeroDivisionError"),
    (lambda events: events["score"].head(2), "returned 2 values for 4 events"),
    (lambda events: events["country"], "returned (str|object) values; its aggregate needs numeric"),
    (lambda events: events[["score"]], "must return a pandas Series, not DataFrame"),
])
def test_a_bad_function_fails_at_registration_naming_the_metric(function, problem: str) -> None:
    mon, _ = app()
    with pytest.raises(DefinitionError, match=rf"metric 'broken': .*{problem}"):
        mon.metric("broken", "home", aggregate=metrics.assertion(id="view_id"))(function)
    assert "broken" not in mon.metrics


def test_a_bad_definition_fails_at_registration_naming_the_metric() -> None:
    mon = Monitor()
    mon.stream("s", schema={"uid": "str?", "view": "int", "f": "float", "flag": "bool"})
    with pytest.raises(DefinitionError, match=r"metric 'a': column 'uid' .* non-null id.*"
                       r"without '\?'"):
        mon.metric("a", "s", metrics.assertion("flag", id="uid"))
    with pytest.raises(DefinitionError, match=r"metric 'b': column 'f' .*str or int"):
        mon.metric("b", "s", metrics.assertion("flag", id="f"))
    with pytest.raises(DefinitionError, match=r"metric 'c': unknown column 'nope'"):
        mon.metric("c", "s", metrics.assertion("flag", id="view", keep=("nope",)))
    with pytest.raises(ValueError, match=r"k=0: the sample keeps 1 to 10000"):
        metrics.assertion("flag", id="uid", k=0)
    with pytest.raises(ValueError, match=r"keep= cannot name \['severity'\]"):
        metrics.assertion("flag", id="uid", keep=("severity",))


def test_a_function_failing_on_an_events_data_sends_it_to_dead_letters() -> None:
    """A function that raises on some events' data at run time (monitor.engine.derive):
    those events are reported with a reason naming the metric and left out of it; the
    others are counted and sampled as without them (tests/test_per_event_failures.py has
    batch and streaming)."""
    mon, _ = app()

    @mon.metric("fragile", "home", aggregate=metrics.assertion(id="view_id"))
    def fragile(events: pd.DataFrame) -> pd.Series:
        if (events["view_id"] > 4_000).any():  # not so in the sample events (ids 1 to 4)
            raise ValueError("cannot judge a sure score")
        return events["new_user"]

    events = homepage(5_000, seed=3)
    result = run(fragile, events)
    failing = events.index[events["view_id"] > 4_000]
    assert len(failing) > 100
    assert sorted(result.rejects["row"]) == sorted(failing)
    assert set(result.rejects["reason"]) == {
        "per-event function of metric 'fragile' failed: tests.test_assertions:"
        "test_a_function_failing_on_an_events_data_sends_it_to_dead_letters.<locals>.fragile "
        "raised ValueError: cannot judge a sure score"}
    without = run(fragile, events.drop(failing))
    pd.testing.assert_frame_equal(result.values, without.values, check_exact=True)
    assert [w.state for w in result.windows] == [w.state for w in without.windows]


def test_alert_rules_and_examples_like_any_metric() -> None:
    _, spec = app(k=3)
    events = homepage(6_000, seed=4)
    episodes = backtest(spec, events)
    values = run(spec, events).values
    over = values[(values["field"] == "violations") & (values["value"] > 40)
                  & (values["segment"] == OVERALL)]
    assert len(episodes) >= 1 and len(over) >= 1
    table = examples(spec, run(spec, events).windows)
    assert list(table.columns) == ["segment", "window_start", "window_end", "id", "severity",
                                   "ts", "country", "score"]
    assert (table.groupby(["segment", "window_start"]).size() == 3).all()


def test_definition_round_trips_and_merge_refuses_another_k() -> None:
    agg = metrics.assertion("flag", id="uid", keep=("a", "b"), k=9)
    assert Assertion.from_params(agg.params()) == agg
    other = metrics.assertion("flag", id="uid", keep=("a", "b"), k=10).new_state()
    with pytest.raises(ValueError, match="cannot merge an assertion state"):
        agg.new_state().merge(other)
    assert isinstance(agg.new_state(), AssertionState)


def test_a_boolean_outcome_keeps_what_the_same_outcome_as_severities_keeps() -> None:
    """Flags (a per-event function's, an expression's on numpy columns) are not turned
    into float severities: counts, highest severity and stored bytes are those of the
    same outcome given as 1.0 / 0.0 severities, NaN where the event judges nothing (an
    expression that holds on a null score still judges nothing)."""
    rng = np.random.default_rng(21)
    score = rng.random(2_000)
    score[rng.random(2_000) < 0.2] = np.nan
    flags = ~(score > 0.5)  # True on a null score too
    events = pd.DataFrame({"view_id": np.arange(2_000), "score": score, "flag": flags,
                           "flag_as_severity": flags.astype(np.float64),
                           "judged_as_severity": np.where(np.isnan(score), np.nan,
                                                          flags.astype(np.float64))})

    def stored(column: str) -> tuple[AssertionState, bytes]:
        state = metrics.assertion(column, id="view_id", keep=("score",), k=50).new_state()
        for start in range(0, len(events), 300):
            state.update(events.iloc[start:start + 300])
        return state, state.to_bytes()

    flagged, as_severity = stored("flag"), stored("flag_as_severity")
    assert flagged[1] == as_severity[1]
    assert (flagged[0].judged, flagged[0].violations, flagged[0].max_severity) == (
        2_000, int(flags.sum()), 1.0)
    expressed, judged = stored("not (score > 0.5)"), stored("judged_as_severity")
    assert expressed[1] == judged[1]
    known = ~np.isnan(score)
    assert (expressed[0].judged, expressed[0].violations) == (
        int(known.sum()), int((flags & known).sum()))
    assert b'"severity":1.0}' in expressed[1] and b'"severity":1}' not in expressed[1]
