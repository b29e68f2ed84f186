"""Registration fails early with an error that names the metric and the problem."""

from __future__ import annotations

import pandas as pd
import pytest

import metrics
from monitor import DefinitionError, Monitor, Threshold


@pytest.fixture
def mon() -> Monitor:
    mon = Monitor()
    mon.stream("home", schema={"latency_ms": "float", "country": "str", "rank": "int",
                               "clicked": "bool?"})
    return mon


def raises_naming(problem: str):
    return pytest.raises(DefinitionError, match=rf"metric 'm1': .*{problem}")


def test_a_good_metric_registers(mon: Monitor) -> None:
    spec = mon.metric("m1", "home", metrics.mean("latency_ms"), segment_by=["country"],
                      alerts=[Threshold(above=500)], owner="ml-team")
    assert mon.get("m1") is spec
    assert spec.alerts[0].field == "mean"  # a single-field aggregate fills the rule's field


def test_unknown_column(mon: Monitor) -> None:
    with raises_naming("unknown column 'latency'"):
        mon.metric("m1", "home", metrics.mean("latency"))


def test_bad_window_string(mon: Monitor) -> None:
    with raises_naming("window: bad duration '1 hour'"):
        mon.metric("m1", "home", metrics.count(), window="1 hour")
    with raises_naming("does not divide a day"):
        mon.metric("m1", "home", metrics.count(), window="7m")


def test_duplicate_name(mon: Monitor) -> None:
    mon.metric("m1", "home", metrics.count())
    with raises_naming("already registered"):
        mon.metric("m1", "home", metrics.count())


def test_segment_column_not_in_schema(mon: Monitor) -> None:
    with raises_naming("segment column 'region' is not in the schema of stream 'home'"):
        mon.metric("m1", "home", metrics.count(), segment_by=["region"])


def test_unknown_stream(mon: Monitor) -> None:
    with raises_naming("unknown stream 'feed'"):
        mon.metric("m1", "feed", metrics.count())


def test_column_of_the_wrong_type(mon: Monitor) -> None:
    with raises_naming("column 'country' is str but mean needs a numeric column"):
        mon.metric("m1", "home", metrics.mean("country"))


def test_per_event_function_of_the_wrong_length(mon: Monitor) -> None:
    with raises_naming("returned 1 values for 4 events"):
        @mon.metric("m1", "home", aggregate=metrics.mean())
        def m1(events: pd.DataFrame) -> pd.Series:
            return events["latency_ms"].head(1)


def test_per_event_function_of_the_wrong_type(mon: Monitor) -> None:
    with raises_naming("must return a pandas Series, not list"):
        @mon.metric("m1", "home", aggregate=metrics.mean())
        def m1(events: pd.DataFrame) -> pd.Series:
            return list(events["latency_ms"])  # type: ignore[return-value]
    with raises_naming("returned object values; its aggregate needs numeric values"):
        @mon.metric("m1", "home", aggregate=metrics.mean())
        def m1_strings(events: pd.DataFrame) -> pd.Series:
            return events["country"].astype(object)


def test_per_event_function_that_raises(mon: Monitor) -> None:
    with raises_naming("per-event function failed on sample events with KeyError"):
        @mon.metric("m1", "home", aggregate=metrics.mean())
        def m1(events: pd.DataFrame) -> pd.Series:
            return events["no_such_column"]


def test_per_event_aggregate_must_leave_the_column_open(mon: Monitor) -> None:
    with raises_naming("must not name a column"):
        @mon.metric("m1", "home", aggregate=metrics.mean("latency_ms"))
        def m1(events: pd.DataFrame) -> pd.Series:
            return events["latency_ms"]


def test_alert_on_unknown_field(mon: Monitor) -> None:
    with raises_naming("alert rule on unknown field 'p99'"):
        mon.metric("m1", "home", metrics.mean("latency_ms"), alerts=[Threshold("p99", above=1)])


def test_aggregate_without_column(mon: Monitor) -> None:
    with raises_naming("mean needs an input column"):
        mon.metric("m1", "home", metrics.mean())


def test_bad_stream_schema() -> None:
    mon = Monitor()
    with pytest.raises(DefinitionError, match="stream 'home': field 'x' has type 'double'"):
        mon.stream("home", schema={"x": "double"})


def test_spec_id_changes_with_the_definition(mon: Monitor) -> None:
    a = mon.metric("m1", "home", metrics.mean("latency_ms"), window="1h")
    b = mon.metric("m2", "home", metrics.mean("latency_ms"), window="1h")
    c = mon.metric("m3", "home", metrics.mean("latency_ms"), window="5m")
    assert a.aggregate.id == b.aggregate.id
    assert a.id != b.id  # the name is part of the definition
    assert b.to_dict() | {"name": "x"} != c.to_dict() | {"name": "x"}


def test_monitors_do_not_share_metrics() -> None:
    first, second = Monitor(), Monitor()
    first.stream("home", schema={"x": "float"})
    first.metric("m", "home", metrics.count())
    assert second.metrics == {}


def test_schedule_must_be_a_cron_expression(mon: Monitor) -> None:
    with raises_naming("schedule: 'hourly' is not a cron expression"):
        mon.metric("m1", "home", metrics.count(), schedule="hourly")
    spec = mon.metric("m2", "home", metrics.count(), schedule="15 * * * *")
    plain = mon.metric("m3", "home", metrics.count())
    assert spec.schedule == "15 * * * *"
    # when a metric runs does not change what it computes
    assert spec.to_dict() | {"name": "x"} == plain.to_dict() | {"name": "x"}
