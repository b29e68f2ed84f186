"""A metric's stored values as pages chart them: series (bucketed in SQL when a span holds
more windows than a chart can show), window counts, the newest window's fields."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, Integer, and_, cast, func, select
from sqlalchemy.engine import Connection

from monitor.spec import OVERALL
from monitor.storage.dashboard.read_only import VALUES, ReadOnly, as_datetime, rows_frame
from monitor.storage.dashboard.records import DEFAULT_MAX_POINTS, TimeRange, WindowValues
from monitor.storage.types import to_utc
from monitor.values import STAGES
from monitor.windows import Windows

SERIES_COLUMNS = ["stage", "segment", "field", "window_start", "value", "low", "high",
                  "windows"]
MAX_SERIES_ROWS = 200_000  # a hard stop: a chart of more points is no use anyway
MAX_WINDOW_FIELDS = 10_000  # fields of one window: a drift report of 2,500 columns


class ValueQueries:
    """One metric's stored values."""

    def __init__(self, read: ReadOnly) -> None:
        self._read = read

    def latest_window(self, metric: str, version: int | None = None) -> datetime | None:
        """The newest window start of ``metric`` in any stage (of ``version`` if given)."""
        with self._read.session() as conn:
            starts = [_latest(conn, metric, stage, version) for stage in STAGES]
        found = [s for s in starts if s is not None]
        return max(found) if found else None

    def stages_with_values(self, metric: str, version: int) -> list[str]:
        """The stages ``metric`` has values in, in stage order."""
        with self._read.session() as conn:
            return [stage for stage in STAGES
                    if _latest(conn, metric, stage, version) is not None]

    def segments_and_fields(self, metric: str, version: int, span: TimeRange
                            ) -> tuple[list[str], list[str]]:
        """The segments and fields ``metric`` has values for in ``span``, overall first."""
        v = VALUES.c
        where = (v.metric == metric, v.metric_version == version,
                 v.window_start >= to_utc(span.since), v.window_start < to_utc(span.until))
        with self._read.session() as conn:
            segments = list(conn.execute(select(v.segment).where(*where).distinct()
                                         .limit(1_000)).scalars())
            fields = list(conn.execute(select(v.field).where(*where).distinct()
                                       .limit(1_000)).scalars())
        segments.sort(key=lambda s: (s != OVERALL, s))
        return segments, sorted(fields)

    def series(
        self,
        metric: str,
        version: int,
        span: TimeRange,
        *,
        window: str,
        fields: Sequence[str],
        segments: Sequence[str],
        stages: Sequence[str] = STAGES,
        max_points: int = DEFAULT_MAX_POINTS,
    ) -> pd.DataFrame:
        """Values of ``fields`` x ``segments`` x ``stages`` over ``span``, one row per
        plotted point (columns :data:`SERIES_COLUMNS`).

        When the span holds more than ``max_points`` windows of the metric's ``window``,
        windows are grouped into buckets in SQL: ``value`` is their mean, ``low``/``high``
        their min/max and ``windows`` how many there were.
        """
        if not fields or not segments or not stages:
            return _empty_series()
        v = VALUES.c
        where = and_(v.metric == metric, v.metric_version == version,
                     v.stage.in_(list(stages)), v.segment.in_(list(segments)),
                     v.field.in_(list(fields)), v.window_start >= to_utc(span.since),
                     v.window_start < to_utc(span.until))
        with self._read.session() as conn:
            return _points(conn, v.value, where, span, window, max_points)

    def window_counts(
        self,
        metric: str,
        version: int,
        span: TimeRange,
        *,
        window: str,
        field: str,
        segment: str,
        stage: str,
        max_points: int = DEFAULT_MAX_POINTS,
    ) -> pd.DataFrame:
        """How many events each window of ``segment`` in ``stage`` held over ``span`` (the
        count stored with ``field``; every field of a window has the same), one row per
        plotted point, bucketed as :meth:`series` does; ``field`` is ``"count"``."""
        v = VALUES.c
        where = and_(v.metric == metric, v.metric_version == version, v.stage == stage,
                     v.segment == segment, v.field == field,
                     v.window_start >= to_utc(span.since), v.window_start < to_utc(span.until))
        with self._read.session() as conn:
            frame = _points(conn, v.count, where, span, window, max_points)
        return frame.assign(field="count")

    def latest_values(self, metric: str, version: int, stage: str, segment: str,
                      span: TimeRange) -> WindowValues | None:
        """Every field of the newest window of ``segment`` in ``stage`` within ``span``,
        with its count; None when the segment has no window there."""
        v = VALUES.c
        where = (v.metric == metric, v.metric_version == version, v.stage == stage,
                 v.segment == segment)
        with self._read.session() as conn:
            start = conn.execute(select(func.max(v.window_start)).where(
                *where, v.window_start >= to_utc(span.since),
                v.window_start < to_utc(span.until))).scalar()
            if start is None:
                return None
            start = to_utc(as_datetime(start))
            rows = conn.execute(select(v.field, v.value, v.count, v.window_end).where(
                *where, v.window_start == start).limit(MAX_WINDOW_FIELDS)).all()
        if not rows:
            return None
        _, _, count, end = rows[0]
        return WindowValues(start, to_utc(as_datetime(end)), int(count),
                            {field: math.nan if value is None else float(value)
                             for field, value, _, _ in rows})


def _latest(conn: Connection, metric: str, stage: str, version: int | None) -> datetime | None:
    v = VALUES.c
    query = select(func.max(v.window_start)).where(v.metric == metric, v.stage == stage)
    if version is not None:
        query = query.where(v.metric_version == version)
    found = conn.execute(query).scalar()
    return None if found is None else to_utc(found)


def _points(conn: Connection, measure: Any, where: ColumnElement[bool], span: TimeRange,
            window: str, max_points: int) -> pd.DataFrame:
    """``measure`` (a value column) where ``where`` holds, one row per window, or per bucket
    of windows with their mean, min and max when ``span`` holds more than ``max_points``
    windows (columns :data:`SERIES_COLUMNS`)."""
    v = VALUES.c
    width = int(Windows.parse(window).width.total_seconds())
    bucket = span.bucket_seconds(width, max_points)
    if bucket == width:
        query = (select(v.stage, v.segment, v.field, v.window_start, measure)
                 .where(where).order_by(v.window_start).limit(MAX_SERIES_ROWS))
        frame = rows_frame(conn.execute(query).all(),
                       ["stage", "segment", "field", "window_start", "value"])
        frame["low"] = frame["value"]
        frame["high"] = frame["value"]
        frame["windows"] = 1
    else:
        start = _epoch(conn, v.window_start)
        slot = cast(func.floor(start / bucket), Integer)
        query = (select(v.stage, v.segment, v.field, slot.label("slot"),
                        func.avg(measure), func.min(measure), func.max(measure),
                        func.count())
                 .where(where).group_by(v.stage, v.segment, v.field, slot)
                 .order_by(slot).limit(MAX_SERIES_ROWS))
        frame = rows_frame(conn.execute(query).all(),
                       ["stage", "segment", "field", "slot", "value", "low", "high",
                        "windows"])
        frame["window_start"] = pd.to_datetime(frame["slot"].astype("int64") * bucket,
                                               unit="s", utc=True)
    if frame.empty:
        return _empty_series()
    frame["window_start"] = pd.to_datetime(frame["window_start"], utc=True)
    for column in ("value", "low", "high"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    frame["windows"] = frame["windows"].astype("int64")
    return frame[SERIES_COLUMNS].reset_index(drop=True)


def _epoch(conn: Connection, column: Any) -> ColumnElement[Any]:
    """Seconds since 1970 of a UTC datetime column, in this database's SQL."""
    if conn.dialect.name == "sqlite":
        return cast(func.strftime("%s", column), Integer)
    return func.extract("epoch", column)


def _empty_series() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="object") for c in SERIES_COLUMNS})
    frame["window_start"] = pd.Series(dtype="datetime64[ns, UTC]")
    for column in ("value", "low", "high"):
        frame[column] = pd.Series(dtype="float64")
    frame["windows"] = pd.Series(dtype="int64")
    return frame
