"""Values and states: idempotent upserts, exact floats and times, all-or-nothing windows."""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import event, func, select

from monitor.engine import Engine
from monitor.storage import results
from monitor.storage.database import Database
from monitor.storage.models import MetricStateRow, MetricValueRow
from monitor.storage.records import WindowResult, window_results
from monitor.storage.store import SqlStore
from monitor.values import COLUMNS, MetricValue, values_frame
from tests.storage.helpers import HOUR, T0, latency_spec, window


def row_counts(database: Database) -> tuple[int, int]:
    with database.connect() as conn:
        values = conn.execute(select(func.count()).select_from(MetricValueRow)).scalar_one()
        states = conn.execute(select(func.count()).select_from(MetricStateRow)).scalar_one()
    return values, states


def bits(x: float) -> bytes:
    return struct.pack(">d", x)


def test_values_read_back_in_the_values_file_format(store: SqlStore) -> None:
    windows = [window(0), window(0, "country=SE", p50=3.0), window(1, rows=7)]
    assert store.write_windows("latency", 1, "batch", windows) == 6

    got = store.read_values(metric="latency")

    expected = values_frame(
        MetricValue("latency", "batch", w.segment, pd.Timestamp(w.window_start).as_unit("ns"),
                    pd.Timestamp(w.window_end).as_unit("ns"), field, value, w.rows)
        for w in windows for field, value in w.values.items()
    )
    assert list(got.columns) == COLUMNS
    pd.testing.assert_frame_equal(got, expected)


def test_writing_the_same_windows_twice_changes_nothing(store: SqlStore) -> None:
    windows = [window(h, s) for h in range(3) for s in ("*", "country=SE")]
    store.write_windows("latency", 1, "batch", windows)
    first = store.read_values(metric="latency")
    store.write_windows("latency", 1, "batch", windows)

    assert row_counts(store.database) == (12, 6)
    pd.testing.assert_frame_equal(store.read_values(metric="latency"), first)


def test_a_rerun_with_new_values_replaces_them(store: SqlStore) -> None:
    store.write_windows("latency", 1, "batch", [window(0), window(1)])
    store.write_windows("latency", 1, "batch", [window(1, p50=9.0, rows=99, state=b"new")])

    got = store.read_values(metric="latency")
    assert row_counts(store.database) == (4, 2)
    rerun = got[got["window_start"] == pd.Timestamp(T0 + HOUR)]
    assert rerun.set_index("field")["value"].to_dict() == {"p50": 9.0, "p99": 2.0}
    assert set(rerun["count"]) == {99}
    states = store.read_states("latency", 1, "batch", T0, T0 + 2 * HOUR)
    assert [(s.state, s.rows) for s in states] == [(b"state", 10), (b"new", 99)]


EXTREMES = {
    "nan": math.nan,
    "zero": 0.0,
    "negative_zero": -0.0,
    "inf": math.inf,
    "minus_inf": -math.inf,
    "smallest_subnormal": 5e-324,
    "minus_smallest_subnormal": -5e-324,
    "smallest_normal": 2.2250738585072014e-308,
    "largest": 1.7976931348623157e308,
    "minus_largest": -1.7976931348623157e308,
    "tenth": 0.1,
    "third": 1 / 3,
    "above_2_53": 2.0**53 + 2,
    "whole": 3.0,
    "numpy": float(np.float64(np.pi)),
}


def test_nan_signed_zeros_and_extreme_floats_round_trip_bit_exactly(store: SqlStore) -> None:
    start = T0
    store.write_windows("floats", 1, "research",
                        [WindowResult("*", start, start + HOUR, 1, EXTREMES, None)])

    got = store.read_values(metric="floats").set_index("field")["value"]

    assert {f: bits(got[f]) for f in EXTREMES} == {f: bits(v) for f, v in EXTREMES.items()}


def test_nan_is_stored_as_null(store: SqlStore) -> None:
    store.write_windows("floats", 1, "research", [window(0, p50=math.nan)])
    with store.database.connect() as conn:
        nulls = conn.execute(select(func.count()).select_from(MetricValueRow)
                             .where(MetricValueRow.value.is_(None))).scalar_one()
    assert nulls == 1


def test_times_come_back_tz_aware_in_utc(store: SqlStore) -> None:
    stockholm_summer = timezone(timedelta(hours=2))
    start = datetime(2026, 6, 1, 12, tzinfo=stockholm_summer)  # 10:00 UTC
    store.write_windows("latency", 1, "batch",
                        [WindowResult("*", start, start + HOUR, 3, {"p50": 1.0}, b"s")])

    [state] = store.read_states("latency", 1, "batch", start, start + HOUR)
    assert state.window_start.utcoffset() == timedelta(0)
    assert state.window_start.tzname() == "UTC"
    assert state.window_start == start and state.window_start.hour == 10
    values = store.read_values(metric="latency")
    assert str(values["window_start"].dtype) == "datetime64[ns, UTC]"
    assert values["window_start"][0] == pd.Timestamp("2026-06-01T10:00Z")
    assert store.register_metric(latency_spec()).created_at.tzname() == "UTC"


def test_naive_times_are_refused(store: SqlStore) -> None:
    naive = datetime(2026, 3, 1)
    with pytest.raises(ValueError, match="naive datetime"):
        store.write_windows("latency", 1, "batch",
                            [WindowResult("*", naive, naive + HOUR, 1, {"p50": 1.0})])
    assert row_counts(store.database) == (0, 0)
    with pytest.raises(ValueError, match="naive datetime"):
        store.read_values(since=naive)
    with pytest.raises(ValueError, match="naive datetime"):
        store.read_states("latency", 1, "batch", T0, naive)


def test_a_failure_after_the_first_window_leaves_nothing(database: Database) -> None:
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(database.engine, "after_cursor_execute", record)

    def windows_then_crash() -> Iterator[WindowResult]:
        yield window(0)
        assert statements, "the first window must have reached the database already"
        raise RuntimeError("injected crash after the first window")

    try:
        with pytest.raises(RuntimeError, match="injected crash"), database.begin() as conn:
            results.write_windows(conn, "latency", 1, "batch", windows_then_crash(),
                                  batch_rows=1)
    finally:
        event.remove(database.engine, "after_cursor_execute", record)
    assert row_counts(database) == (0, 0)


def test_a_database_error_midway_rolls_back_the_values_too(store: SqlStore) -> None:
    store.write_windows("latency", 1, "batch", [window(0, p50=1.0)])
    executed: list[str] = []

    def fail_on_states(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        executed.append(statement)
        if "metric_states" in statement:
            raise RuntimeError("injected failure while writing states")

    event.listen(store.database.engine, "before_cursor_execute", fail_on_states)
    try:
        with pytest.raises(RuntimeError, match="injected"):
            store.write_windows("latency", 1, "batch", [window(0, p50=5.0), window(1)])
    finally:
        event.remove(store.database.engine, "before_cursor_execute", fail_on_states)

    assert any("metric_values" in s for s in executed)  # the values went out first
    got = store.read_values(metric="latency")
    assert got["value"].tolist() == [1.0, 2.0] and row_counts(store.database) == (2, 1)


def test_a_window_given_twice_in_one_write_is_refused(store: SqlStore) -> None:
    with pytest.raises(ValueError, match="given twice"):
        store.write_windows("latency", 1, "batch", [window(0), window(1), window(0)])
    assert row_counts(store.database) == (0, 0)


def test_bad_keys_are_refused_with_a_reason(store: SqlStore) -> None:
    with pytest.raises(ValueError, match="unknown stage 'prod'"):
        store.write_windows("latency", 1, "prod", [window(0)])
    with pytest.raises(ValueError, match="version must be a positive integer"):
        store.write_windows("latency", 0, "batch", [window(0)])


def test_read_values_filters(store: SqlStore) -> None:
    store.write_windows("latency", 1, "batch",
                        [window(h, s) for h in range(4) for s in ("*", "country=SE")])
    store.write_windows("latency", 1, "research", [window(0)])
    store.write_windows("ctr", 1, "batch", [window(0)])

    def keys(frame: pd.DataFrame) -> set[tuple[str, str, str, int]]:
        hours = ((frame["window_start"] - pd.Timestamp(T0)) // pd.Timedelta(HOUR)).astype(int)
        return set(zip(frame["metric"], frame["stage"], frame["segment"], hours, strict=True))

    assert keys(store.read_values(metric="latency", stage="research")) == {
        ("latency", "research", "*", 0)}
    assert keys(store.read_values(stage="batch", segment="country=SE",
                                  since=T0 + HOUR, until=T0 + 3 * HOUR)) == {
        ("latency", "batch", "country=SE", 1), ("latency", "batch", "country=SE", 2)}
    assert len(store.read_values()) == 2 * (8 + 1 + 1)
    latest = store.read_values(metric="latency", stage="batch", limit=4)
    assert keys(latest) == {("latency", "batch", s, 3) for s in ("*", "country=SE")}
    with pytest.raises(ValueError, match="limit"):
        store.read_values(limit=0)


def test_values_of_two_versions_never_mix(store: SqlStore) -> None:
    store.write_windows("latency", 1, "batch", [window(0, p50=1.0), window(1, p50=1.0)])
    store.write_windows("latency", 2, "batch", [window(1, p50=2.0)])
    store.write_windows("latency", 1, "streaming", [window(0, p50=3.0)])

    newest = store.read_values(metric="latency")
    assert set(zip(newest["stage"], newest["value"], strict=True)) == {
        ("batch", 2.0), ("streaming", 3.0), ("streaming", 2.0)}
    assert len(newest[newest["stage"] == "batch"]) == 2  # version 2 only: one window
    older = store.read_values(metric="latency", stage="batch", version=1)
    assert len(older) == 4 and set(older["value"]) == {1.0, 2.0}


def test_states_of_a_range_revive_and_roll_up(store: SqlStore) -> None:
    spec = latency_spec()
    rng = np.random.default_rng(3)
    times = pd.Timestamp(T0) + pd.to_timedelta(rng.integers(0, 3 * 3600, 600), unit="s")
    events = pd.DataFrame({"ts": times, "latency_ms": rng.lognormal(5, 1, 600),
                           "country": rng.choice(["SE", "US"], 600)})
    engine = Engine([spec])
    engine.update(events)
    store.write_windows("latency", 1, "batch", window_results(spec, engine.partials))

    stored = store.read_states("latency", 1, "batch", T0, T0 + 3 * HOUR, segment="*")
    assert [s.window_start for s in stored] == [T0, T0 + HOUR, T0 + 2 * HOUR]
    rolled = spec.aggregate.state_from_bytes(stored[0].state)
    for part in stored[1:]:
        rolled.merge(spec.aggregate.state_from_bytes(part.state))
    whole = spec.aggregate.new_state()
    whole.update(events)
    assert spec.aggregate.value(rolled) == spec.aggregate.value(whole)
    assert sum(s.rows for s in stored) == 600


def test_a_rewrite_carries_the_sign_of_a_zero(store: SqlStore) -> None:
    for zero in (0.0, -0.0, 0.0):
        store.write_windows("floats", 1, "batch", [window(0, p50=zero)])
        got = store.read_values(metric="floats").set_index("field")["value"]
        assert bits(got["p50"]) == bits(zero)


def test_an_unchanged_rewrite_leaves_rows_and_times_alone(database: Database) -> None:
    def computed_at() -> set[datetime]:
        with database.connect() as conn:
            return set(conn.execute(select(MetricValueRow.computed_at)).scalars())

    first, later, latest = (T0 + timedelta(days=d) for d in (1, 2, 3))
    for at in (first, later):
        with database.begin() as conn:
            results.write_windows(conn, "latency", 1, "batch", [window(0)], computed_at=at)
    assert computed_at() == {first}
    with database.begin() as conn:
        results.write_windows(conn, "latency", 1, "batch", [window(0, p99=7.0)],
                              computed_at=latest)
    assert computed_at() == {first, latest}  # only the changed field was rewritten


def test_two_writes_in_one_transaction(database: Database) -> None:
    with database.begin() as conn:
        results.write_windows(conn, "latency", 1, "batch", [window(0)])
        results.write_windows(conn, "latency", 1, "batch", [window(1), window(0, p50=4.0)])
    assert row_counts(database) == (4, 2)
