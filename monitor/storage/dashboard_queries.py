"""Read-only, bounded queries for the dashboard.

Every query has a limit, a time range or an aggregation in SQL, so a page costs about
the same with a week of history or a year: series with more windows than a chart can
show are bucketed in the database (mean, min and max per bucket), the overview reads the
last windows of each metric through the ``(metric, stage, window_start)`` index, and dead
letters are counted with ``GROUP BY``.

:class:`DashboardQueries` opens its connections read-only (``default_transaction_read_only``
on Postgres, ``PRAGMA query_only`` on SQLite): a dashboard bug cannot change the results.

>>> import tempfile, pathlib
>>> from monitor.storage.migrate import upgrade
>>> url = f"sqlite:///{pathlib.Path(tempfile.mkdtemp()) / 'monitor.sqlite'}"
>>> _ = upgrade(url)
>>> with DashboardQueries.open(url) as queries:
...     queries.overview(), queries.has_data()
([], False)
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import (
    ColumnElement,
    Integer,
    and_,
    case,
    cast,
    event,
    func,
    literal,
    select,
    union_all,
)
from sqlalchemy.engine import Connection

from metrics.drift import ReferenceProfile
from monitor.alerts.silences import Silence
from monitor.segments import parse_label
from monitor.spec import OVERALL
from monitor.storage import (
    alert_states,
    dead_letters,
    definitions,
    outbox,
    profiles,
    results,
    silences,
)
from monitor.storage.alert_states import StoredAlert
from monitor.storage.dashboard_records import (
    DEFAULT_MAX_POINTS,
    DEFAULT_SPARK_WINDOWS,
    NO_DATA,
    MetricOverview,
    TimeRange,
    WindowValues,
    worst_status,
)
from monitor.storage.database import Database
from monitor.storage.models import (
    AlertDeliveryRow,
    AlertEventRow,
    AlertNotificationRow,
    AlertStateRow,
    MetricValueRow,
    table_of,
)
from monitor.storage.records import DeadLetter, MetricDefinition, StageChange, StoredState
from monitor.storage.types import to_utc
from monitor.values import STAGES
from monitor.windows import Windows

VALUES = table_of(MetricValueRow)
STATES = table_of(AlertStateRow)
EVENTS = table_of(AlertEventRow)
NOTIFICATIONS = table_of(AlertNotificationRow)
DELIVERIES = table_of(AlertDeliveryRow)

SERIES_COLUMNS = ["stage", "segment", "field", "window_start", "value", "low", "high",
                  "windows"]
MAX_SERIES_ROWS = 200_000  # a hard stop: a chart of more points is no use anyway
MAX_WINDOW_FIELDS = 10_000  # fields of one window: a drift report of 2,500 columns
DEAD_LETTER_SUFFIX = ".dead_letters"  # the streaming stage's count of rejected input


class DashboardQueries:
    """The dashboard's reads over one database; each call is one short read-only session."""

    def __init__(self, database: Database) -> None:
        self.database = database
        _make_read_only(database)

    @classmethod
    def open(cls, url: str) -> DashboardQueries:
        return cls(Database(url))

    def close(self) -> None:
        self.database.dispose()

    def __enter__(self) -> DashboardQueries:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DashboardQueries({self.database.display_url!r})"

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.database.connect() as conn:
            try:
                yield conn
            finally:
                conn.rollback()

    # -- catalog --------------------------------------------------------------------------

    def has_data(self) -> bool:
        """Whether anything is stored yet: a registered metric or a value."""
        with self._read() as conn:
            for table in (definitions.DEFINITIONS, VALUES):
                if conn.execute(select(literal(1)).select_from(table).limit(1)).first():
                    return True
        return False

    def definitions(self) -> list[MetricDefinition]:
        with self._read() as conn:
            return definitions.list_definitions(conn)

    def definition(self, name: str) -> MetricDefinition | None:
        with self._read() as conn:
            return definitions.current_definition(conn, name)

    def stage_history(self, metric: str) -> list[StageChange]:
        with self._read() as conn:
            return definitions.stage_history(conn, metric)

    def unregistered_metrics(self) -> list[str]:
        """The streaming stage's dead-letter counts (``STREAM.dead_letters``) that have
        values: one probe of the value index per stream of the registered metrics."""
        with self._read() as conn:
            return _dead_letter_metrics(conn)

    # -- the overview ---------------------------------------------------------------------

    def overview(self, spark_windows: int = DEFAULT_SPARK_WINDOWS) -> list[MetricOverview]:
        """Every registered metric's current version: stage, last value, alert status and
        the last ``spark_windows`` values of its headline field; firing metrics first."""
        with self._read() as conn:
            found = definitions.list_definitions(conn)
            statuses = _alert_counts(conn)
            rows = _overviews(conn, found, statuses, spark_windows)
        order = {"firing": 0, "pending": 1, "ok": 2, NO_DATA: 3}
        return sorted(rows, key=lambda m: (order[m.status], m.name))

    # -- values ---------------------------------------------------------------------------

    def latest_window(self, metric: str, version: int | None = None) -> datetime | None:
        """The newest window start of ``metric`` in any stage (of ``version`` if given)."""
        with self._read() as conn:
            starts = [_latest(conn, metric, stage, version) for stage in STAGES]
        found = [s for s in starts if s is not None]
        return max(found) if found else None

    def stages_with_values(self, metric: str, version: int) -> list[str]:
        """The stages ``metric`` has values in, in stage order."""
        with self._read() as conn:
            return [stage for stage in STAGES
                    if _latest(conn, metric, stage, version) is not None]

    def segments_and_fields(self, metric: str, version: int, span: TimeRange
                            ) -> tuple[list[str], list[str]]:
        """The segments and fields ``metric`` has values for in ``span``, overall first."""
        v = VALUES.c
        where = (v.metric == metric, v.metric_version == version,
                 v.window_start >= to_utc(span.since), v.window_start < to_utc(span.until))
        with self._read() as conn:
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
        with self._read() as conn:
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
        with self._read() as conn:
            frame = _points(conn, v.count, where, span, window, max_points)
        return frame.assign(field="count")

    def latest_values(self, metric: str, version: int, stage: str, segment: str,
                      span: TimeRange) -> WindowValues | None:
        """Every field of the newest window of ``segment`` in ``stage`` within ``span``,
        with its count; None when the segment has no window there."""
        v = VALUES.c
        where = (v.metric == metric, v.metric_version == version, v.stage == stage,
                 v.segment == segment)
        with self._read() as conn:
            start = conn.execute(select(func.max(v.window_start)).where(
                *where, v.window_start >= to_utc(span.since),
                v.window_start < to_utc(span.until))).scalar()
            if start is None:
                return None
            start = to_utc(_as_datetime(start))
            rows = conn.execute(select(v.field, v.value, v.count, v.window_end).where(
                *where, v.window_start == start).limit(MAX_WINDOW_FIELDS)).all()
        if not rows:
            return None
        _, _, count, end = rows[0]
        return WindowValues(start, to_utc(_as_datetime(end)), int(count),
                            {field: math.nan if value is None else float(value)
                             for field, value, _, _ in rows})

    def states(self, metric: str, version: int, stage: str, span: TimeRange,
               segment: str, limit: int = 2_000) -> list[StoredState]:
        """Stored states of one segment over ``span`` (at most ``limit``, the newest)."""
        with self._read() as conn:
            found = results.read_states(conn, metric, version, stage, span.since, span.until,
                                        segment)
        return found[-limit:]

    def profile(self, name: str, profile_id: str | None) -> ReferenceProfile | None:
        with self._read() as conn:
            try:
                return profiles.load_profile(conn, name, profile_id)
            except LookupError:
                return None

    # -- alerts ---------------------------------------------------------------------------

    def active_alerts(self, metric: str | None = None, limit: int = 500) -> list[StoredAlert]:
        """Firing, then pending alerts."""
        with self._read() as conn:
            return alert_states.active_alerts(conn, metric=metric)[:limit]

    def alert_events(self, *, metric: str | None = None, span: TimeRange | None = None,
                     transitions: Sequence[str] | None = None, limit: int = 500
                     ) -> pd.DataFrame:
        """Alert transitions on the latest windows first."""
        e = EVENTS.c
        query = select(e.metric, e.metric_version, e.stage, e.rule, e.segment, e.transition,
                       e.window_start, e.window_end, e.value, e.bound, e.detail, e.severity,
                       e.at)
        if metric is not None:
            query = query.where(e.metric == metric)
        if span is not None:
            query = query.where(e.window_start >= to_utc(span.since),
                                e.window_start < to_utc(span.until))
        if transitions is not None:
            query = query.where(e.transition.in_(list(transitions)))
        query = query.order_by(e.window_start.desc(), e.id.desc()).limit(limit)
        with self._read() as conn:
            rows = conn.execute(query).all()
        columns = ["metric", "version", "stage", "rule", "segment", "transition",
                   "window_start", "window_end", "value", "bound", "detail", "severity", "at"]
        frame = _frame(rows, columns)
        for column in ("window_start", "window_end", "at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame

    def silences(self, now: datetime, limit: int = 200) -> list[Silence]:
        """Every silence, newest first: active ones and those that ended."""
        with self._read() as conn:
            return silences.list_silences(conn, now, include_expired=True)[:limit]

    def delivery_counts(self) -> pd.DataFrame:
        """Deliveries per channel and status, plus notifications not routed yet."""
        d = DELIVERIES.c
        with self._read() as conn:
            rows = conn.execute(select(d.channel, d.status, func.count())
                                .group_by(d.channel, d.status)
                                .order_by(d.channel, d.status)).all()
            waiting = outbox.count_unrouted(conn)
            n = NOTIFICATIONS.c
            outcomes = conn.execute(select(n.outcome, func.count()).where(
                n.outcome.is_not(None)).group_by(n.outcome)).all()
        frame = _frame(rows, ["channel", "status", "count"])
        extra = [("(outbox)", "not routed yet", waiting)] if waiting else []
        extra += [("(outbox)", str(outcome), count) for outcome, count in outcomes
                  if outcome != "routed"]
        if extra:
            frame = pd.concat([frame, _frame(extra, ["channel", "status", "count"])],
                              ignore_index=True)
        return frame

    def recent_deliveries(self, limit: int = 100) -> list[outbox.Delivery]:
        with self._read() as conn:
            return outbox.recent_deliveries(conn, limit)

    # -- dead letters ---------------------------------------------------------------------

    def dead_letter_counts(self, since: datetime | None = None) -> pd.DataFrame:
        """Stored dead letters by source and reason (the part before ``: detail``)."""
        d = dead_letters.DEAD_LETTERS.c
        with self._read() as conn:
            reason = _reason_prefix(conn, d.reason)
            query = (select(d.source, reason.label("reason"), func.count().label("count"),
                            func.max(d.created_at).label("latest"))
                     .group_by(d.source, reason).order_by(func.count().desc()).limit(200))
            if since is not None:
                query = query.where(d.created_at >= to_utc(since))
            frame = _frame(conn.execute(query).all(), ["source", "reason", "count", "latest"])
        frame["latest"] = pd.to_datetime(frame["latest"], utc=True)
        return frame

    def dead_letter_metric_counts(self, span: TimeRange) -> pd.DataFrame:
        """Every rejected input the streaming stage counted (its samples are capped), by
        metric and reason over ``span``."""
        v = VALUES.c
        with self._read() as conn:
            query = (select(v.metric, v.segment, func.sum(v.value))
                     .where(v.metric.in_(_dead_letter_metrics(conn)),
                            v.segment.like("reason=%"), v.field == "count",
                            v.window_start >= to_utc(span.since),
                            v.window_start < to_utc(span.until))
                     .group_by(v.metric, v.segment).order_by(func.sum(v.value).desc())
                     .limit(200))
            frame = _frame(conn.execute(query).all(), ["metric", "segment", "count"])
        frame["reason"] = [_dead_letter_reason(segment) for segment in frame["segment"]]
        frame["count"] = pd.to_numeric(frame["count"]).fillna(0).astype("int64")
        return frame[["metric", "reason", "count"]]

    def recent_dead_letters(self, limit: int = 50) -> list[DeadLetter]:
        with self._read() as conn:
            return dead_letters.recent_dead_letters(conn, None, limit)


# -- helpers ----------------------------------------------------------------------------


def _dead_letter_reason(segment: str) -> str:
    """The reason a dead-letter count's segment label (``reason=...``) names."""
    try:
        reason = parse_label(segment).get("reason")
    except ValueError:  # a reason with a comma, labelled unescaped
        reason = None
    return reason if reason is not None else segment.removeprefix("reason=")


def _make_read_only(database: Database) -> None:
    dialect = database.dialect

    @event.listens_for(database.engine, "connect")
    def _read_only(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        if dialect == "sqlite":
            cursor.execute("PRAGMA query_only = ON")
        elif dialect == "postgresql":
            cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            dbapi_connection.commit()
        cursor.close()


def _dead_letter_metrics(conn: Connection) -> list[str]:
    specs = conn.execute(select(definitions.DEFINITIONS.c.spec)).scalars()
    streams = {spec["stream"]["name"] for spec in specs
               if isinstance(spec, dict) and isinstance(spec.get("stream"), dict)}
    v = VALUES.c
    return [name for name in sorted(f"{stream}{DEAD_LETTER_SUFFIX}" for stream in streams)
            if conn.execute(select(literal(1)).where(v.metric == name).limit(1)).first()]


def _latest(conn: Connection, metric: str, stage: str, version: int | None) -> datetime | None:
    v = VALUES.c
    query = select(func.max(v.window_start)).where(v.metric == metric, v.stage == stage)
    if version is not None:
        query = query.where(v.metric_version == version)
    found = conn.execute(query).scalar()
    return None if found is None else to_utc(found)


def _alert_counts(conn: Connection) -> dict[tuple[str, int], dict[str, int]]:
    s = STATES.c
    rows = conn.execute(select(s.metric, s.metric_version, s.status, func.count())
                        .where(s.status.in_(["pending", "firing"]))
                        .group_by(s.metric, s.metric_version, s.status)).all()
    counts: dict[tuple[str, int], dict[str, int]] = {}
    for metric, version, status, count in rows:
        counts.setdefault((metric, version), {})[status] = int(count)
    return counts


def headline_field(definition: MetricDefinition) -> str | None:
    """The field the metric's first alert rule watches, if it has rules."""
    for rule in definition.spec.get("alerts") or ():  # type: ignore[attr-defined]
        if isinstance(rule, dict) and rule.get("field"):
            return str(rule["field"])
    return None


@dataclass(frozen=True)
class _Spark:
    """Where one metric's sparkline comes from."""

    definition: MetricDefinition
    stage: str | None
    field: str | None
    last_start: datetime | None
    since: datetime | None


def _overviews(conn: Connection, found: Sequence[MetricDefinition],
               statuses: dict[tuple[str, int], dict[str, int]],
               spark_windows: int) -> list[MetricOverview]:
    """The overview rows of ``found`` in a fixed number of queries, whatever their count:
    the newest window per stage (correlated subqueries on the value index), the headline
    fields of metrics without rules, and every sparkline (UNION ALL, in chunks)."""
    latest = _latest_by_stage(conn, found)
    sparks = []
    for definition in found:
        starts = latest.get((definition.name, definition.version), {})
        stage: str | None = definition.stage if starts.get(definition.stage) else None
        if stage is None and starts:
            stage = max((t, s) for s, t in starts.items())[1]
        last_start = starts.get(stage) if stage is not None else None
        since = None
        if last_start is not None:
            width = Windows.parse(definition.window).width.to_pytimedelta()
            since = last_start - width * (spark_windows - 1)
        sparks.append(_Spark(definition, stage, headline_field(definition), last_start, since))
    sparks = [_with_field(conn, spark) for spark in sparks]
    values = _spark_values(conn, [s for s in sparks if s.since is not None])
    rows = []
    for spark in sparks:
        d = spark.definition
        points = values.get(d.name, [])
        last_value = math.nan
        if points and spark.last_start is not None and points[-1][0] == spark.last_start:
            last_value = points[-1][1]
        alerts = statuses.get((d.name, d.version), {})
        rows.append(MetricOverview(
            name=d.name, version=d.version, stage=d.stage, owner=d.owner, window=d.window,
            description=d.description, value_stage=spark.stage, headline=spark.field,
            last_window_start=spark.last_start, last_value=last_value,
            status=NO_DATA if spark.stage is None else worst_status(alerts),
            alerts=dict(alerts), sparkline=tuple(value for _, value in points)))
    return rows


def _latest_by_stage(conn: Connection, found: Sequence[MetricDefinition]
                     ) -> dict[tuple[str, int], dict[str, datetime]]:
    """The newest window start per stage of each definition, in one query."""
    d, v = definitions.DEFINITIONS.c, VALUES.c
    if not found:
        return {}
    newest = [select(func.max(v.window_start)).where(
        v.metric == d.name, v.metric_version == d.version, v.stage == stage
    ).scalar_subquery().label(stage) for stage in STAGES]
    query = select(d.name, d.version, *newest).where(
        d.name.in_(sorted({f.name for f in found})))
    wanted = {(f.name, f.version) for f in found}
    latest: dict[tuple[str, int], dict[str, datetime]] = {}
    for row in conn.execute(query):
        if (row.name, row.version) in wanted:
            latest[(row.name, row.version)] = {
                stage: to_utc(_as_datetime(row._mapping[stage])) for stage in STAGES
                if row._mapping[stage] is not None}
    return latest


def _as_datetime(value: Any) -> datetime:
    """A correlated ``max()`` comes back untyped on SQLite: ISO text in UTC."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _with_field(conn: Connection, spark: _Spark) -> _Spark:
    """A metric without alert rules shows its first field (one query each)."""
    if spark.field is not None or spark.stage is None or spark.last_start is None:
        return spark
    v = VALUES.c
    d = spark.definition
    field = conn.execute(select(v.field).where(
        v.metric == d.name, v.metric_version == d.version, v.stage == spark.stage,
        v.window_start == spark.last_start).order_by(v.field).limit(1)).scalar()
    return replace(spark, field=field)


def _spark_values(conn: Connection, sparks: Sequence[_Spark], chunk: int = 100
                  ) -> dict[str, list[tuple[datetime, float]]]:
    """The overall segment's values of each metric's headline field since ``since``."""
    v = VALUES.c
    found: dict[str, list[tuple[datetime, float]]] = {}
    for first in range(0, len(sparks), chunk):
        parts = [select(v.metric, v.window_start, v.value).where(
            v.metric == s.definition.name, v.metric_version == s.definition.version,
            v.stage == s.stage, v.segment == OVERALL, v.field == s.field,
            v.window_start >= s.since, v.window_start <= s.last_start)
            for s in sparks[first:first + chunk]]
        query = parts[0] if len(parts) == 1 else union_all(*parts)
        for metric, start, value in conn.execute(query):
            found.setdefault(metric, []).append((to_utc(_as_datetime(start)),
                                                 math.nan if value is None else float(value)))
    for points in found.values():
        points.sort()
    return found


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
        frame = _frame(conn.execute(query).all(),
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
        frame = _frame(conn.execute(query).all(),
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


def _reason_prefix(conn: Connection, column: Any) -> ColumnElement[Any]:
    """The reason without its ``: detail`` (the streaming stage appends one per message)."""
    if conn.dialect.name == "postgresql":
        return func.split_part(column, ": ", 1)
    at = func.instr(column, ": ")
    return case((at > 0, func.substr(column, 1, at - 1)), else_=column)


def _frame(rows: Sequence[Any], columns: list[str]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    return pd.DataFrame([tuple(row) for row in rows], columns=columns)


def _empty_series() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="object") for c in SERIES_COLUMNS})
    frame["window_start"] = pd.Series(dtype="datetime64[ns, UTC]")
    for column in ("value", "low", "high"):
        frame[column] = pd.Series(dtype="float64")
    frame["windows"] = pd.Series(dtype="int64")
    return frame


def default_range(latest: datetime | None, days: float, now: datetime | None = None
                  ) -> TimeRange:
    """``days`` back from just after the newest window (or from now without one)."""
    end = latest + timedelta(seconds=1) if latest is not None else (now or datetime.now(UTC))
    return TimeRange(end - timedelta(days=days), end)


