"""Metric values and states: written together per window, read back for dashboards and roll-ups.

Functions take a connection; the caller decides the transaction. :func:`write_windows`
must run inside one (``Database.begin()`` or ``SqlStore.write_windows``) so that the values
and states of every window in the call are stored together or not at all.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.engine import Connection

from monitor.storage.models import NAME_LENGTH, MetricStateRow, MetricValueRow, table_of
from monitor.storage.ports import DEFAULT_VALUES_LIMIT
from monitor.storage.records import StoredState, WindowResult, check_stage
from monitor.storage.types import to_utc, utc_now
from monitor.storage.upsert import BATCH_ROWS, bind_processors, upsert_rows
from monitor.values import COLUMNS, values_frame

VALUES = table_of(MetricValueRow)
STATES = table_of(MetricStateRow)

VALUE_COLUMNS = ("metric", "metric_version", "stage", "segment", "window_start", "field",
                 "window_end", "value", "count", "computed_at")
STATE_COLUMNS = ("metric", "metric_version", "stage", "segment", "window_start", "window_end",
                 "state", "rows", "updated_at")


def write_windows(
    conn: Connection,
    metric: str,
    version: int,
    stage: str,
    windows: Iterable[WindowResult],
    *,
    computed_at: datetime | None = None,
    batch_rows: int = BATCH_ROWS,
) -> int:
    """Upsert the values and states of ``windows``; returns the number of value rows.

    Rows go out in batches of about ``batch_rows`` as ``windows`` is consumed, so a large
    backfill streams; a window given twice in one call is a caller bug and raises.
    ``computed_at`` (default: now) is when a value last *changed*: re-writing a window
    with the same values leaves its rows, times included, as they were.
    """
    return write_metrics_windows(conn, stage, [(metric, version, windows)],
                                 computed_at=computed_at, batch_rows=batch_rows)


def write_metrics_windows(
    conn: Connection,
    stage: str,
    metrics: Iterable[tuple[str, int, Iterable[WindowResult]]],
    *,
    computed_at: datetime | None = None,
    batch_rows: int = BATCH_ROWS,
) -> int:
    """:func:`write_windows` for several (metric, version, windows) in shared upserts: the
    streaming stage closes a window of every metric at once, and one statement for all
    of them costs a tenth of one per metric."""
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, got {batch_rows}")
    # Bind once per window, not per row: the fast path hands the driver ready values.
    value_binds = bind_processors(conn, VALUES)
    as_time, as_value = value_binds["window_start"], value_binds["value"]
    as_state = bind_processors(conn, STATES)["state"]
    at = as_time(utc_now() if computed_at is None else computed_at)
    value_rows: list[tuple[Any, ...]] = []
    state_rows: list[tuple[Any, ...]] = []
    written = 0
    for metric, version, windows in metrics:
        check_key(metric, version, stage)
        for window in _unique(windows):
            start, end = as_time(window.window_start), as_time(window.window_end)
            rows = _count(window.rows)
            segment = window.segment
            value_rows.extend(
                (metric, version, stage, segment, start, field, end, as_value(value), rows, at)
                for field, value in window.values.items()
            )
            if window.state is not None:
                state_rows.append((metric, version, stage, segment, start, end,
                                   as_state(window.state), rows, at))
            if len(value_rows) >= batch_rows or len(state_rows) >= batch_rows:
                written += _flush(conn, value_rows, state_rows)
    return written + _flush(conn, value_rows, state_rows)


def _flush(conn: Connection, value_rows: list[tuple[Any, ...]],
           state_rows: list[tuple[Any, ...]]) -> int:
    written = len(value_rows)
    upsert_rows(conn, VALUES, VALUE_COLUMNS, value_rows, touch={"computed_at"})
    upsert_rows(conn, STATES, STATE_COLUMNS, state_rows, touch={"updated_at"})
    value_rows.clear()
    state_rows.clear()
    return written


def _count(rows: int) -> int:
    try:
        count = operator.index(rows)  # Python and numpy integers; not floats
    except TypeError:
        count = -1
    if isinstance(rows, bool) or count < 0:
        raise ValueError(f"a window's rows must be a count (an int >= 0), got {rows!r}")
    return count


def read_values(
    conn: Connection,
    *,
    metric: str | None = None,
    stage: str | None = None,
    segment: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    version: int | None = None,
    limit: int | None = DEFAULT_VALUES_LIMIT,
) -> pd.DataFrame:
    """Values in the values-file columns (see :class:`monitor.storage.ports.ValueReader`).

    ``since <= window_start < until``. ``version`` None picks, for each (metric, stage),
    the newest version that has values. With a ``limit`` the rows of the latest windows
    are kept.
    """
    if stage is not None:
        check_stage(stage)
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive number of rows or None, got {limit!r}")
    v = VALUES.c
    query: Select[Any] = select(v.metric, v.stage, v.segment, v.window_start, v.window_end,
                                v.field, v.value, v.count)
    conditions = []
    if metric is not None:
        conditions.append(v.metric == metric)
    if stage is not None:
        conditions.append(v.stage == stage)
    if version is not None:
        conditions.append(v.metric_version == version)
    else:
        newest = (select(v.metric, v.stage, func.max(v.metric_version).label("version"))
                  .where(*conditions).group_by(v.metric, v.stage).subquery())
        query = query.join(newest, (v.metric == newest.c.metric) & (v.stage == newest.c.stage)
                           & (v.metric_version == newest.c.version))
    if segment is not None:
        conditions.append(v.segment == segment)
    if since is not None:
        conditions.append(v.window_start >= to_utc(since))
    if until is not None:
        conditions.append(v.window_start < to_utc(until))
    query = query.where(*conditions)
    if limit is not None:
        query = query.order_by(v.window_start.desc(), v.metric, v.stage, v.segment,
                               v.field).limit(limit)
    rows = conn.execute(query).all()
    if not rows:
        return values_frame([])
    frame = pd.DataFrame(dict(zip(COLUMNS, zip(*rows, strict=True), strict=True)))
    for column in ("window_start", "window_end"):
        frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[ns, UTC]")
    frame["value"] = frame["value"].astype("float64")
    frame["count"] = frame["count"].astype("int64")
    return frame.sort_values(["metric", "stage", "segment", "window_start", "field"],
                             kind="stable").reset_index(drop=True)


def read_states(
    conn: Connection,
    metric: str,
    version: int,
    stage: str,
    since: datetime,
    until: datetime,
    segment: str | None = None,
) -> list[StoredState]:
    """Stored states with ``since <= window_start < until``, by window start then segment."""
    return read_metrics_states(conn, stage, {(metric, version): (since, until)},
                               segment=segment)[(metric, version)]


def read_metrics_states(
    conn: Connection,
    stage: str,
    ranges: Mapping[tuple[str, int], tuple[datetime, datetime]],
    segment: str | None = None,
) -> dict[tuple[str, int], list[StoredState]]:
    """:func:`read_states` of several (metric, version) -> (since, until) in one query;
    every key of ``ranges`` is in the result, by window start then segment."""
    found: dict[tuple[str, int], list[StoredState]] = {key: [] for key in ranges}
    if not ranges:
        return found
    s = STATES.c
    for metric, version in ranges:
        check_key(metric, version, stage)
    query = (select(s.metric, s.metric_version, s.segment, s.window_start, s.window_end,
                    s.state, s.rows)
             .where(s.stage == stage, or_(*(
                 and_(s.metric == metric, s.metric_version == version,
                      s.window_start >= to_utc(since), s.window_start < to_utc(until))
                 for (metric, version), (since, until) in ranges.items())))
             .order_by(s.metric, s.metric_version, s.window_start, s.segment))
    if segment is not None:
        query = query.where(s.segment == segment)
    for row in conn.execute(query):
        found[(row.metric, row.metric_version)].append(StoredState(
            row.segment, row.window_start, row.window_end, bytes(row.state), row.rows))
    return found


def _unique(windows: Iterable[WindowResult]) -> Iterator[WindowResult]:
    seen: set[tuple[str, datetime]] = set()
    for window in windows:
        key = (window.segment, window.window_start)
        if key in seen:
            raise ValueError(
                f"window {window.window_start} of segment {window.segment!r} is given twice "
                "in one write; merge its states first"
            )
        if not window.window_end > window.window_start:
            raise ValueError(f"window {window.window_start} ends at {window.window_end}, "
                             "not after it starts")
        seen.add(key)
        yield window


def check_key(metric: str, version: int, stage: str) -> None:
    if not metric or len(metric) > NAME_LENGTH:
        raise ValueError(f"metric name must have 1 to {NAME_LENGTH} characters: {metric!r}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"metric {metric!r}: version must be a positive integer, "
                         f"got {version!r}")
    check_stage(stage)

