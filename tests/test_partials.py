"""The two steps every stage takes with window states (monitor/partials.py): stored states
merged by key give the values of one pass over all the events, in any order they are
read; a window's segments are valued together, whatever else the partials hold."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

import metrics
from metrics.drift import ReferenceProfile
from monitor import Monitor
from monitor.engine import Engine
from monitor.partials import Partial, PartialKey, merge_stored, partial_values
from monitor.spec import MetricSpec
from monitor.storage.records import window_results

START = pd.Timestamp("2026-03-02", tz="UTC")


def events(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame({
        "ts": START + pd.to_timedelta(rng.uniform(0, 3 * 3600, n), unit="s"),
        "x": rng.normal(0.0, 1.0, n),
        "device": rng.choice(["ios", "web", "tv"], n),
        "country": rng.choice(["BR", "SE", "US"], n),
    })


@pytest.fixture(scope="module")
def mon() -> Monitor:
    rng = np.random.default_rng(7)
    profile = ReferenceProfile.fit(events(rng, 4_000)[["x", "device"]], name="training")
    mon = Monitor("partials")
    mon.stream("s", schema={"x": "float", "device": "str", "country": "str"})
    mon.metric("drift", "s", metrics.drift_report(["x", "device"], profile), window="1h",
               segment_by=["country"])
    mon.metric("tails", "s", metrics.quantiles("x", ps=(0.5, 0.99)), window="1h",
               segment_by=["country"])
    mon.metric("mean", "s", metrics.mean("x"), window="1h", segment_by=["device"])
    return mon


def shifted(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Events where one country's ``x`` moved: drift in one segment, not the others."""
    frame = events(rng, n)
    frame.loc[frame["country"] == "BR", "x"] += 0.5
    return frame


@pytest.mark.parametrize("name", ["drift", "tails", "mean"])
def test_stored_states_merged_in_any_order_give_the_values_of_one_pass(
        mon: Monitor, name: str) -> None:
    """Chunks computed apart (as batch slices or stream partitions are), their states
    serialized and read back shuffled, merge into the states and values that one engine
    fed every event gives, bit for bit."""
    spec = mon.metrics[name]
    rng = np.random.default_rng(11)
    data = shifted(rng, 3_000)
    whole = Engine([spec])
    whole.update(data)
    stored: list[tuple[PartialKey, bytes, int]] = []
    for cut in np.array_split(np.arange(len(data)), 5):
        engine = Engine([spec])
        engine.update(data.iloc[cut])
        stored += [(key, p.state.to_bytes(), p.rows) for key, p in engine.partials.items()]
    expected = window_results(spec, whole.partials)
    for seed in range(4):
        random.Random(seed).shuffle(stored)
        merged = merge_stored(spec.aggregate, stored)
        assert window_results(spec, merged) == expected


def test_a_windows_segments_are_valued_together_whatever_else_the_partials_hold(
        mon: Monitor) -> None:
    """A drift window's values are its aggregate's window pass over its segments (one
    correction over columns x segments), the same when the partials also hold other
    windows and metrics, in any order: what research, batch and streaming each hand it."""
    spec = mon.metrics["drift"]
    rng = np.random.default_rng(12)
    engine = Engine(list(mon.metrics.values()))
    engine.update(shifted(rng, 3_000))
    first_hour = START.value
    window = {segment: partial.state for (name, segment, start), partial
              in engine.partials.items() if name == "drift" and start == first_hour}
    assert len(window) == 4  # the overall segment and three countries
    by_aggregate = spec.aggregate.window_values(window)
    expected = {("drift", segment, first_hour): {f: float(by_aggregate[segment][f])
                                                  for f in spec.aggregate.fields()}
                for segment in window}
    items = list(engine.partials.items())
    for seed in range(3):
        random.Random(seed).shuffle(items)
        valued = partial_values(spec, dict(items))
        assert {key for key in valued if key[0] != "drift"} == set()
        assert {key: valued[key] for key in expected} == expected
    alone = only_window(spec, engine.partials, first_hour)
    assert partial_values(spec, alone) == expected
    # Valued one segment at a time, the correction covers fewer tests: other values.
    one_by_one = {key: spec.aggregate.value(partial.state) for key, partial in alone.items()}
    assert any(one_by_one[key]["x.p_adjusted"] != expected[key]["x.p_adjusted"]
               for key in expected)


def only_window(spec: MetricSpec, partials: dict[PartialKey, Partial], start_ns: int
                ) -> dict[PartialKey, Partial]:
    return {key: partial for key, partial in partials.items()
            if key[0] == spec.name and key[2] == start_ns}


def test_values_are_floats_in_the_aggregates_field_order(mon: Monitor) -> None:
    spec = mon.metrics["tails"]
    engine = Engine([spec])
    engine.update(events(np.random.default_rng(13), 200))
    for values in partial_values(spec, engine.partials).values():
        assert list(values) == list(spec.aggregate.fields())
        assert all(type(value) is float for value in values.values())


def test_merging_counts_the_events_of_every_state_of_a_key(mon: Monitor) -> None:
    spec = mon.metrics["mean"]
    states = []
    for values in ([1.0, 2.0], [3.0], [4.0, 5.0, 6.0]):
        state = spec.aggregate.new_state()
        state.update(pd.DataFrame({"x": values}))
        states.append(state.to_bytes())
    merged = merge_stored(spec.aggregate, [("a", states[0], 2), ("b", states[1], 1),
                                           ("a", states[2], 3)])
    assert {key: partial.rows for key, partial in merged.items()} == {"a": 5, "b": 1}
    assert spec.aggregate.value(merged["a"].state) == {"mean": 3.6}
