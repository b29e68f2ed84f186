"""The example's consistency check and input expectation fire in the cache failover (the
latency spike) and not before: zero violations in every hour before it, as pandas counts
them on the same events, and the kept examples are users shown the cold backend's
editorial default beside their own favourite."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from examples.music_home import LATENCY_SPIKE, PERSONAL_CAROUSELS, mon
from examples.music_home_events import DEFAULT_START, generate_events
from monitor.assertion_examples import examples
from monitor.research import backtest, run
from monitor.spec import OVERALL


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    # the spike is hours 60-64; the day after it is quiet again
    return generate_events(start=DEFAULT_START, days=3, seed=11, events_per_hour=1_500)


def hours(values: pd.DataFrame, field: str) -> pd.Series:
    overall = values[(values["segment"] == OVERALL) & (values["field"] == field)]
    return overall.set_index((overall["window_start"] - DEFAULT_START)
                             // pd.Timedelta(hours=1))["value"]


def test_the_consistency_check_counts_what_pandas_counts_and_fires_in_the_spike(
        events: pd.DataFrame) -> None:
    spec = mon.get("fav_consistency")
    result = run(spec, events)
    violating = hours(result.values, "violating_keys")
    by_hour = events.groupby([events["ts"].dt.floor("1h"), "user_id"])["fav_carousel"]
    expected = (by_hour.nunique() > 1).groupby(level=0).sum()
    assert violating.tolist() == expected.astype(float).tolist()
    assert (hours(result.values, "exact") == 1.0).all()

    spike = range(LATENCY_SPIKE.start_hour, LATENCY_SPIKE.end_hour or 0)
    assert (violating.drop(list(spike)) == 0).all()
    assert (violating.loc[list(spike)] > 20).all(), violating.loc[list(spike)]
    episodes = backtest(spec, events)
    begin, end = LATENCY_SPIKE.window(DEFAULT_START)
    assert episodes["fired_window_start"].tolist() == [begin]
    assert episodes["resolved_window_start"].tolist() == [end]

    table = examples(spec, result.windows)
    assert len(table) == 20 * len(spike)  # k examples an hour, only in the spike
    for row in table.to_dict("records"):
        assert row["events"] >= 2
        own = {v for v in events.loc[events["user_id"] == int(row["id"]), "fav_carousel"]
               if v in PERSONAL_CAROUSELS}
        assert sorted(row["values"]) == sorted(["top_hits", *own]), row


def test_the_input_expectation_and_its_summary_fire_in_the_spike(events: pd.DataFrame
                                                                  ) -> None:
    expectation = run(mon.get("home.in_set.fav_carousel"), events).values
    failed = hours(expectation, "failed")
    by_hour = events.groupby(events["ts"].dt.floor("1h"))["fav_carousel"]
    expected = by_hour.apply(lambda v: int((~v.isin(PERSONAL_CAROUSELS)).sum()))
    assert failed.tolist() == expected.astype(float).tolist()
    spike = list(range(LATENCY_SPIKE.start_hour, LATENCY_SPIKE.end_hour or 0))
    rate = hours(expectation, "failure_rate")
    assert (rate.drop(spike) == 0).all() and (rate.loc[spike] > 0.03).all()

    summary = hours(run(mon.get("home.expectations"), events).values, "failed")
    assert np.array_equal(summary.to_numpy(), np.isin(summary.index, spike).astype(float))
    begin, end = LATENCY_SPIKE.window(DEFAULT_START)
    for name in ("home.in_set.fav_carousel", "home.expectations"):
        episodes = backtest(mon.get(name), events)
        assert episodes["fired_window_start"].tolist() == [begin], name
        assert episodes["resolved_window_start"].tolist() == [end], name
