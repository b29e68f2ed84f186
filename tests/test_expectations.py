"""Data expectations: each failure rate counted as pandas counts it per window and segment,
the default rules firing where the rate is above the tolerance, the validation summary
counting the expectations each window passed, memory of the uniqueness check bounded,
and registration errors naming the metric (all or nothing)."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import metrics
from metrics.base import State
from metrics.expectations import Expectation, NoUnknownFields
from metrics.uniqueness import UniqueState
from metrics.validation import SummaryState
from monitor import DefinitionError, Monitor, Threshold
from monitor.engine import Engine
from monitor.research import backtest, run
from monitor.spec import OVERALL
from monitor.values import MetricValue

START = pd.Timestamp("2026-03-02T00:00:00Z")
SCHEMA = {"view_id": "int", "user_id": "str?", "country": "str", "score": "float?",
          "model": "str"}
TOLERANCE = 0.05


def views(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    hour = rng.integers(0, 4, n)
    bad_hour = hour == 2  # an hour where things break: more nulls, scores out of range
    score = rng.random(n)
    score[rng.random(n) < np.where(bad_hour, 0.2, 0.01)] += 1.0
    score[rng.random(n) < 0.05] = np.nan
    user = rng.integers(0, 10_000, n).astype(str).astype(object)
    user[rng.random(n) < np.where(bad_hour, 0.1, 0.002)] = None
    user[rng.random(n) < 0.01] = "guest!"  # does not match the pattern
    model = np.where(rng.random(n) < np.where(bad_hour, 0.3, 0.0), "ranker-latest",
                     "ranker-2026.02.3").astype(object)
    return pd.DataFrame({
        "ts": START + pd.to_timedelta(hour * 3_600_000 + rng.integers(0, 3_600_000, n),
                                      unit="ms"),
        "view_id": rng.integers(0, n * 4, n),  # a few views twice
        "user_id": user,
        "country": rng.choice(["SE", "DE", "XX"], n, p=[0.5, 0.45, 0.05]).astype(object),
        "score": score,
        "model": model,
        "debug": pd.Series(np.where(rng.random(n) < 0.01, "on", np.array(None)), dtype=object),
    })


EXPECTATIONS = {
    "not_null.user_id": metrics.expect_not_null("user_id", tolerance=TOLERANCE),
    "in_range.score": metrics.expect_in_range("score", low=0.0, high=1.0,
                                              tolerance=TOLERANCE),
    "in_set.country": metrics.expect_in_set("country", values=["SE", "DE"],
                                            tolerance=TOLERANCE),
    "match.model": metrics.expect_match("model", pattern=r"ranker-\d{4}\.\d{2}\.\d+",
                                        tolerance=TOLERANCE),
    "unique.view_id": metrics.expect_unique("view_id", tolerance=TOLERANCE),
    "no_unknown_fields": metrics.expect_no_unknown_fields(tolerance=TOLERANCE),
}


def pandas_judgement(rows: pd.DataFrame) -> dict[str, tuple[int, int]]:
    """(failed, checked) of each expectation, from pandas."""
    score = rows["score"].dropna()
    country = rows["country"].dropna()
    model = rows["model"].dropna()
    repeated = rows["view_id"].duplicated(keep=False)
    return {
        "not_null.user_id": (int(rows["user_id"].isna().sum()), len(rows)),
        "in_range.score": (int(((score < 0) | (score > 1)).sum()), len(score)),
        "in_set.country": (int((~country.isin(["SE", "DE"])).sum()), len(country)),
        "match.model": (int((~model.str.fullmatch(r"ranker-\d{4}\.\d{2}\.\d+")).sum()),
                        len(model)),
        "unique.view_id": (int(repeated.sum()), len(rows)),
        "no_unknown_fields": (int(rows["debug"].notna().sum()), len(rows)),
    }


@pytest.fixture(scope="module")
def registered() -> Monitor:
    mon = Monitor()
    mon.stream("home", schema=SCHEMA)
    mon.expectations("home", [*EXPECTATIONS.values()], segment_by=["country"],
                     owner="data")
    return mon


def test_names_rules_and_owner(registered: Monitor) -> None:
    assert list(registered.metrics) == [*(f"home.{n}" for n in EXPECTATIONS),
                                        "home.expectations"]
    for name, metric in registered.metrics.items():
        assert metric.owner == "data" and metric.description
        [rule] = metric.alerts
        assert isinstance(rule, Threshold)
        field, bound = ("failed", 0.0) if name == "home.expectations" else (
            "failure_rate", TOLERANCE)
        assert (rule.field, rule.above) == (field, bound)


def test_rates_and_summary_equal_pandas_per_window_and_segment(registered: Monitor) -> None:
    events = views(20_000, seed=1)
    hour = events["ts"].dt.floor("1h")
    values = {name: run(registered.get(f"home.{name}"), events).values
              for name in [*EXPECTATIONS, "expectations"]}
    windows = 0
    for start in sorted(hour.unique()):
        for segment in [OVERALL, "country=SE", "country=DE", "country=XX"]:
            rows = events[hour == start]
            if segment != OVERALL:
                rows = rows[rows["country"] == segment.split("=")[1]]
            judged = pandas_judgement(rows)
            passed = 0
            for name, (failed, checked) in judged.items():
                mine = values[name]
                mine = mine[(mine["window_start"] == start) & (mine["segment"] == segment)]
                got = dict(zip(mine["field"], mine["value"], strict=True))
                assert (got["failed"], got["checked"]) == (failed, checked), name
                rate = failed / checked if checked else np.nan
                np.testing.assert_equal(got["failure_rate"], rate)
                ok = checked == 0 or rate <= TOLERANCE
                assert got["passed"] == float(ok), (name, start, segment)
                passed += ok
            totals = values["expectations"]
            totals = totals[(totals["window_start"] == start) & (totals["segment"] == segment)]
            summary = dict(zip(totals["field"], totals["value"], strict=True))
            assert summary == {"expectations": 6.0, "passed": float(passed),
                               "failed": float(6 - passed)}
            windows += 1
    assert windows == 16
    overall = values["expectations"]
    failed_hours = overall[(overall["segment"] == OVERALL) & (overall["field"] == "failed")]
    assert failed_hours["value"].tolist()[2] >= 3  # the bad hour fails several


def test_default_rules_fire_where_the_rate_is_above_the_tolerance(registered: Monitor
                                                                  ) -> None:
    events = views(20_000, seed=2)
    bad = START + pd.Timedelta(hours=2)
    for name in ("not_null.user_id", "in_range.score", "match.model"):
        episodes = backtest(registered.get(f"home.{name}"), events)
        overall = episodes[episodes["segment"] == OVERALL]
        assert overall["fired_window_start"].tolist() == [bad], (name, episodes)
        assert overall["resolved_window_start"].tolist() == [bad + pd.Timedelta(hours=1)]
    # the summary fires while any expectation fails: here every hour (views repeat more
    # than 5% of the time), so one alert from the first hour, never resolved
    summary = registered.get("home.expectations")
    failed = run(summary, events).values
    failed = failed[(failed["segment"] == OVERALL) & (failed["field"] == "failed")]
    assert (failed["value"] > 0).all()
    episodes = backtest(summary, events)
    overall = episodes[episodes["segment"] == OVERALL]
    assert overall["fired_window_start"].tolist() == [START]
    assert overall["resolved_window_start"].isna().all()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 400), max_keys=st.integers(1, 80),
       cuts=st.lists(st.floats(0, 1), max_size=6), order=st.randoms(use_true_random=False))
def test_uniqueness_and_summary_merge_to_the_same_bytes(
        seed: int, rows: int, max_keys: int, cuts: list[float], order: random.Random) -> None:
    unique = metrics.expect_unique("view_id", max_keys=max_keys)
    summary = metrics.validation_summary([unique, metrics.expect_not_null("user_id")])
    frame = views(rows, seed % 10_000).sample(frac=1.0, random_state=seed % 1000)
    frame["view_id"] = frame["view_id"] % max(1, rows // 2)  # repeats
    for aggregate in (unique, summary):
        whole = aggregate.new_state()
        whole.update(frame)
        parts: list[State] = []
        for start, stop in itertools.pairwise(sorted({0, rows, *(int(c * rows)
                                                                 for c in cuts)})):
            part = aggregate.new_state()
            part.update(frame.iloc[start:stop])
            parts.append(aggregate.state_from_bytes(part.to_bytes()))
        order.shuffle(parts)
        while len(parts) > 1:
            i = order.randrange(len(parts) - 1)
            parts[i].merge(parts.pop(i + 1))
        assert parts[0].to_bytes() == whole.to_bytes()
    assert isinstance(whole, SummaryState)  # the summary's, the loop's last
    member = whole.members[0]
    assert isinstance(member, UniqueState)
    value = unique.value(member)
    distinct = frame["view_id"].nunique()
    assert value["exact"] == (1.0 if distinct <= max_keys else 0.0)
    if distinct <= max_keys:
        assert value["failed"] == frame["view_id"].duplicated(keep=False).sum()


def test_uniqueness_memory_is_bounded_and_its_rate_near_the_truth() -> None:
    unique = metrics.expect_unique("view_id", max_keys=2_000)
    sizes = {}
    for n in (50_000, 400_000):
        rng = np.random.default_rng(n)
        ids = rng.integers(0, n, n)  # ~26% of events share their id
        state = unique.new_state()
        for start in range(0, n, 100_000):
            state.update(pd.DataFrame({"view_id": ids[start:start + 100_000]}))
        value = unique.value(state)
        truth = pd.Series(ids).duplicated(keep=False).mean()
        assert value["exact"] == 0.0 and value["checked"] == n
        assert abs(value["failure_rate"] - truth) < 0.03, (value, truth)
        sizes[n] = len(state.to_bytes())
    assert sizes[400_000] <= 1.2 * sizes[50_000], sizes


def test_registration_errors_name_the_metric_and_register_nothing() -> None:
    mon = Monitor()
    mon.stream("home", schema=SCHEMA)
    with pytest.raises(DefinitionError, match=r"metric 'home.in_range.country': column "
                       r"'country' is str but expect_in_range needs a numeric column"):
        mon.expectations("home", [metrics.expect_not_null("user_id"),
                                  metrics.expect_in_range("country", low=0)])
    with pytest.raises(DefinitionError, match=r"metric 'home.match.nope': unknown column "
                       r"'nope'"):
        mon.expectations("home", [metrics.expect_match("nope", pattern="x")])
    with pytest.raises(DefinitionError, match=r"metric 'home.unique.user_id': column "
                       r"'user_id' .* non-null id"):
        mon.expectations("home", [metrics.expect_unique("user_id")])
    with pytest.raises(DefinitionError, match=r"metric 'home.rate': is not an expectation"):
        mon.expectations("home", {"home.rate": metrics.rate("score > 1")})
    with pytest.raises(DefinitionError, match=r"metric 'home.not_null.score': two "
                       "expectations would have this name"):
        mon.expectations("home", [metrics.expect_not_null("score"),
                                  metrics.expect_not_null("score", tolerance=0.1)])
    assert mon.metrics == {}
    mon.expectations("home", [metrics.expect_not_null("user_id")])
    with pytest.raises(DefinitionError, match=r"metric 'home.not_null.user_id': is already "
                       "registered"):
        mon.expectations("home", [metrics.expect_not_null("user_id")])
    assert list(mon.metrics) == ["home.not_null.user_id", "home.expectations"]
    with pytest.raises(ValueError, match=r"expect_match pattern '\(' does not compile"):
        metrics.expect_match("model", pattern="(")
    with pytest.raises(ValueError, match=r"low=2 is above high=1"):
        metrics.expect_in_range("score", low=2, high=1)
    with pytest.raises(ValueError, match=r"tolerance=1.5"):
        metrics.expect_not_null("score", tolerance=1.5)


def test_no_unknown_fields_knows_the_stream_it_is_registered_on() -> None:
    mon = Monitor()
    mon.stream("home", schema=SCHEMA)
    spec = mon.metric("fields", "home", metrics.expect_no_unknown_fields())
    assert isinstance(spec.aggregate, NoUnknownFields)
    assert spec.aggregate.known == tuple(sorted(["ts", *SCHEMA]))
    events = views(2_000, seed=3)
    values = run(spec, events).values
    failed = values[values["field"] == "failed"]["value"].sum()
    assert failed == events["debug"].notna().sum() > 0


def test_the_summary_judges_each_row_once_with_the_expectations_metrics(
        registered: Monitor, monkeypatch: pytest.MonkeyPatch) -> None:
    """In one engine, a check that counts rows is evaluated once per chunk for its metric
    and the summary together (the uniqueness check, which keeps its values, twice); the
    values are those of each metric computed alone. Where the summary leaves out other
    rows (streaming's late events), the check runs on each set of rows."""
    calls: Counter[str] = Counter()
    originals = {}
    for expectation in EXPECTATIONS.values():
        kind = type(expectation)
        if hasattr(kind, "row_counts") and kind not in originals:
            originals[kind] = kind.row_counts

            def counted(self: Expectation, frame: pd.DataFrame,
                        _original: Callable[..., Mapping[str, np.ndarray]] = kind.row_counts
                        ) -> Mapping[str, np.ndarray]:
                calls[type(self).__name__] += 1
                return _original(self, frame)

            monkeypatch.setattr(kind, "row_counts", counted)
    events = views(5_000, seed=3)
    clean, _ = registered.streams["home"].schema.validate(events)
    specs = list(registered.metrics.values())
    together = Engine(specs)
    chunks = [clean.iloc[at:at + 1_000] for at in range(0, len(clean), 1_000)]
    for chunk in chunks:
        together.update(chunk)
    counting = [type(e).__name__ for e in EXPECTATIONS.values() if type(e) in originals]
    assert len(counting) == 5 and "Uniqueness" not in counting
    assert calls == dict.fromkeys(counting, len(chunks))  # before: twice per chunk
    alone = []
    for spec in specs:
        engine = Engine([spec])
        for chunk in chunks:
            engine.update(chunk)
        alone += engine.values("research")
    def order(v: MetricValue) -> tuple[str, str, pd.Timestamp, str]:
        return v.metric, v.segment, v.window_start, v.field

    assert sorted(together.values("research"), key=order) == sorted(alone, key=order)

    calls.clear()
    late = np.zeros(len(chunks[0]), dtype=bool)
    late[:10] = True
    Engine(specs).update(chunks[0], skip={"home.expectations": late})
    assert calls == dict.fromkeys(counting, 2)
