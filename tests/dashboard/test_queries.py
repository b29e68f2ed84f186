"""The dashboard queries on small hand-made databases: edge cases of the overview."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
from sqlalchemy.exc import DBAPIError

from monitor.segments import segment_label
from monitor.storage.dashboard.queries import DashboardQueries
from monitor.storage.dashboard.records import NO_DATA, TimeRange
from monitor.storage.migrate import upgrade
from monitor.storage.store import SqlStore
from tests.storage.helpers import HOUR, STREAM, T0, latency_spec, window


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'small.sqlite'}"
    upgrade(url)
    return url


def test_a_metric_without_values_has_no_data(url: str) -> None:
    with SqlStore.open(url) as store:
        store.register_metric(latency_spec())
    with DashboardQueries.open(url) as queries:
        [row] = queries.overview.metrics()
        assert queries.catalog.has_data()
    assert (row.name, row.status, row.value_stage, row.sparkline) == ("latency", NO_DATA,
                                                                       None, ())


def test_values_of_another_stage_are_shown_when_its_own_has_none(url: str) -> None:
    with SqlStore.open(url) as store:
        version = store.register_metric(latency_spec()).version
        store.record_stage_change("latency", version, "batch", by="t", reason="r")
        store.write_windows("latency", version, "research",
                            [window(h, p50=float(h)) for h in range(60)])
    with DashboardQueries.open(url) as queries:
        [row] = queries.overview.metrics(spark_windows=48)
    assert (row.stage, row.value_stage, row.status) == ("batch", "research", "ok")
    assert row.headline == "p50"  # no alert rules: the first field
    assert row.sparkline == tuple(float(h) for h in range(12, 60))
    assert row.last_value == 59.0


def test_the_dashboard_cannot_write(results_url: str) -> None:
    with (DashboardQueries.open(results_url) as queries, queries.database.connect() as conn,
          pytest.raises(DBAPIError, match=r"readonly|read-only")):
        conn.exec_driver_sql("DELETE FROM metric_values")


def test_dead_letter_reasons_are_read_from_their_labels(url: str) -> None:
    """A reason with label syntax in it is escaped in the count's segment label (and one
    labelled before labels were escaped still reads as it was written)."""
    reasons = ["malformed CSV row: expected 3 fields, got 4", "field 'a=b' is 100% null"]
    with SqlStore.open(url) as store:
        store.register_metric(latency_spec())  # its stream, home, has the dead-letter metric
        counts = [window(0, segment_label({"reason": r}), rows=2) for r in reasons]
        counts.append(window(0, "reason=field 'x' is null", rows=1))
        store.write_windows(f"{STREAM.name}.dead_letters", 1, "streaming",
                            [dataclasses.replace(w, values={"count": float(w.rows)})
                             for w in counts])
    with DashboardQueries.open(url) as queries:
        frame = queries.dead_letters.metric_counts(TimeRange(T0, T0 + 2 * HOUR))
    assert dict(zip(frame["reason"], frame["count"], strict=True)) == {
        reasons[0]: 2, reasons[1]: 2, "field 'x' is null": 1}


def test_window_counts_and_the_latest_window_of_a_segment(results_url: str) -> None:
    """What the drift page reads besides the values: each window's event count (bucketed
    like a series on long ranges) and every field of a segment's newest window."""
    with SqlStore.open(results_url) as store:
        version = store.register_metric(latency_spec()).version
        store.write_windows("latency", version, "batch", [
            *(window(h, "country=SE", rows=10 + h) for h in range(5)),
            window(5, "country=SE", p50=math.nan, rows=15),
            *(window(h, rows=100) for h in range(8))])
    span = TimeRange(T0, T0 + 8 * HOUR)
    with DashboardQueries.open(results_url) as queries:
        counts = queries.values.window_counts("latency", version, span, window="1h", field="p50",
                                              segment="country=SE", stage="batch")
        bucketed = queries.values.window_counts("latency", version, span, window="1h", field="p50",
                                                segment="country=SE", stage="batch", max_points=3)
        latest = queries.values.latest_values("latency", version, "batch", "country=SE", span)
        earlier = queries.values.latest_values("latency", version, "batch", "country=SE",
                                               TimeRange(T0, T0 + 3 * HOUR))
        none = queries.values.latest_values("latency", version, "batch", "country=BR", span)
        other_stage = queries.values.latest_values("latency", version, "research", "*", span)
    assert list(counts["value"]) == [10, 11, 12, 13, 14, 15]
    assert set(counts["field"]) == {"count"} and set(counts["windows"]) == {1}
    assert list(bucketed["value"]) == [11.0, 14.0] and list(bucketed["windows"]) == [3, 3]
    assert list(bucketed["low"]) == [10.0, 13.0] and list(bucketed["high"]) == [12.0, 15.0]
    assert latest is not None and earlier is not None
    assert (latest.window_start, latest.window_end, latest.count) == (T0 + 5 * HOUR,
                                                                      T0 + 6 * HOUR, 15)
    assert math.isnan(latest.values["p50"]) and latest.values["p99"] == 2.0
    assert (earlier.window_start, earlier.count) == (T0 + 2 * HOUR, 12)
    assert none is None and other_stage is None
