"""The engine splits events by window and segment exactly as a pandas groupby would."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import metrics
from monitor import OVERALL, Monitor
from monitor.research import evaluate, run
from monitor.segments import parse_label


def events(n: int = 2000, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-03-01T00:00:00Z")
    return pd.DataFrame({
        "ts": start + pd.to_timedelta(rng.integers(0, 6 * 3600, n), unit="s"),
        "latency_ms": rng.lognormal(4, 1, n),
        "country": rng.choice(["SE", "US", "BR"], n),
        "device": rng.choice(["ios", "web"], n),
    })


@pytest.fixture
def mon() -> Monitor:
    mon = Monitor()
    mon.stream("home", schema={"latency_ms": "float", "country": "str", "device": "str"})
    return mon


def test_values_match_a_pandas_groupby(mon: Monitor) -> None:
    spec = mon.metric("lat", "home", metrics.mean("latency_ms"), window="1h",
                      segment_by=["country", "device"])
    data = events()
    values = evaluate(spec, data)

    data["window_start"] = data["ts"].dt.floor("1h")
    keys = ["window_start", "country", "device"]
    expected = data.groupby(keys)["latency_ms"].agg(["mean", "size"])
    by_segment = values[values["segment"] != OVERALL]
    assert len(by_segment) == len(expected)
    for row in by_segment.itertuples():
        label, window_start, window_end = row.segment, row.window_start, row.window_end
        assert isinstance(label, str)
        assert isinstance(window_start, pd.Timestamp) and isinstance(window_end, pd.Timestamp)
        segment = parse_label(label)
        country, device = segment["country"], segment["device"]
        assert country is not None and device is not None  # the events have no nulls
        mean, size = expected.loc[(window_start, country, device), :]
        assert row.value == pytest.approx(mean, rel=1e-12)
        assert row.count == size
        assert window_end - window_start == pd.Timedelta("1h")

    overall = values[values["segment"] == OVERALL].set_index("window_start")
    expected_overall = data.groupby("window_start")["latency_ms"].mean()
    assert overall["value"].to_numpy() == pytest.approx(expected_overall.to_numpy(), rel=1e-12)
    assert int(overall["count"].sum()) == len(data)


def test_windows_are_aligned_to_utc(mon: Monitor) -> None:
    spec = mon.metric("n", "home", metrics.count(), window="15m")
    data = pd.DataFrame({"ts": ["2026-03-01T10:14:59.999Z", "2026-03-01T10:15:00Z",
                                "2026-03-01T11:29:00+01:00"],
                         "latency_ms": [1.0, 2.0, 3.0], "country": "SE", "device": "ios"})
    values = evaluate(spec, data)
    assert [t.isoformat() for t in values["window_start"]] == [
        "2026-03-01T10:00:00+00:00", "2026-03-01T10:15:00+00:00"]
    assert list(values["value"]) == [1.0, 2.0]


def test_values_do_not_depend_on_chunking(mon: Monitor) -> None:
    from monitor.engine import Engine

    spec = mon.metric("lat", "home", metrics.sum_of("latency_ms"), window="1h",
                      segment_by=["country"])
    clean, _ = spec.stream.schema.validate(events())
    whole = Engine([spec])
    whole.update(clean)
    chunked = Engine([spec])
    shuffled = clean.sample(frac=1, random_state=3)
    for chunk in np.array_split(np.arange(len(shuffled)), 7):
        chunked.update(shuffled.iloc[chunk])
    assert whole.values("x") == chunked.values("x")


def test_metrics_of_one_engine_get_the_states_each_gets_alone(mon: Monitor) -> None:
    """The metrics that keep every row share their groups per (window, segment columns):
    each still ends with the very states (bytes, rows) an engine of its own gives it,
    beside metrics with other windows or segments and one leaving rows out."""
    from monitor.engine import Engine

    specs = [
        mon.metric("lat_mean", "home", metrics.mean("latency_ms"), window="1h",
                   segment_by=["country"]),
        mon.metric("lat_tail", "home", metrics.quantiles("latency_ms", ps=(0.5, 0.99)),
                   window="1h", segment_by=["country"]),
        mon.metric("n_device", "home", metrics.count(), window="1h", segment_by=["device"]),
        mon.metric("n_15m", "home", metrics.count(), window="15m", segment_by=["country"]),
        mon.metric("lat_sum", "home", metrics.sum_of("latency_ms"), window="1h",
                   segment_by=["country"]),
    ]
    clean, _ = specs[0].stream.schema.validate(events())
    skip = np.random.default_rng(5).random(len(clean)) < 0.3
    together = Engine(specs)
    together.update(clean, skip={"lat_sum": skip})
    for spec in specs:
        alone = Engine([spec])
        alone.update(clean[~skip] if spec.name == "lat_sum" else clean)
        mine = {key: p for key, p in together.partials.items() if key[0] == spec.name}
        assert mine.keys() == alone.partials.keys()
        for key, partial in alone.partials.items():
            assert mine[key].rows == partial.rows
            assert mine[key].state.to_bytes() == partial.state.to_bytes()


def test_per_event_function_feeds_the_aggregate(mon: Monitor) -> None:
    @mon.metric("slow_share", "home", aggregate=metrics.mean(), window="1h")
    def slow_share(frame: pd.DataFrame) -> pd.Series:
        return (frame["latency_ms"] > 100).astype(float)

    data = events()
    values = evaluate(slow_share, data)
    overall = values[values["segment"] == OVERALL]
    expected = (data["latency_ms"] > 100).groupby(data["ts"].dt.floor("1h")).mean()
    assert overall["value"].to_numpy() == pytest.approx(expected.to_numpy(), rel=1e-12)


def test_a_per_event_function_failing_on_a_chunk_is_run_on_its_halves(mon: Monitor) -> None:
    """The rule of monitor.engine.derive: a function that fails on a chunk (here, wrong
    for more than 10 events, though right for each event) is run on the chunk's halves,
    down to single events; the values come from the parts it succeeded on, and an event
    is left out only if it fails alone (none here)."""
    sizes: list[int] = []

    @mon.metric("fragile", "home", aggregate=metrics.mean(), window="1h")
    def fragile(frame: pd.DataFrame) -> pd.Series:
        sizes.append(len(frame))
        if len(frame) > 10:
            return frame["latency_ms"].head(10)
        return frame["latency_ms"]

    data = events()
    result = run(fragile, data)
    assert result.rejects.empty
    assert max(sizes) == len(data) and max(s for s in sizes if s < len(data)) <= len(data) // 2
    expected = data.groupby(data["ts"].dt.floor("1h"))["latency_ms"].mean()
    overall = result.values[result.values["segment"] == OVERALL]
    assert overall["value"].to_numpy() == pytest.approx(expected.to_numpy(), rel=1e-12)
    assert overall["count"].sum() == len(data)


def test_null_segment_values_get_their_own_segment() -> None:
    mon = Monitor()
    mon.stream("s", schema={"x": "float", "country": "str?"})
    spec = mon.metric("n", "s", metrics.count(), segment_by=["country"])
    data = pd.DataFrame({"ts": ["2026-01-01T00:00:00Z"] * 3, "x": [1.0, 2.0, 3.0],
                         "country": ["SE", None, "SE"]})
    values = evaluate(spec, data).set_index("segment")["value"]
    assert values.to_dict() == {"*": 3.0, "country=<null>": 1.0, "country=SE": 2.0}


def test_an_aggregate_without_a_grouped_update_sees_only_its_columns(mon: Monitor) -> None:
    """The engine hands whole chunks to ``update_groups``; the default one passes each
    state only the columns its aggregate declares, as a single ``update`` always had."""
    from dataclasses import dataclass

    from metrics.aggregates import Sum, SumState

    seen: list[list[str]] = []

    class Spy(SumState):
        def update(self, frame: pd.DataFrame) -> None:
            seen.append(list(frame.columns))
            super().update(frame)

    @dataclass(frozen=True)
    class SpySum(Sum):
        kind = "test_spy_sum"

        def new_state(self) -> Spy:
            return Spy("latency_ms")

        update_groups = metrics.base.Aggregate.update_groups  # the default, per group

    spec = mon.metric("spy", "home", SpySum("latency_ms"), window="1h",
                      segment_by=["country"])
    values = evaluate(spec, events())
    assert seen and all(columns == ["latency_ms"] for columns in seen)
    assert len(values)
