"""Every metric's row on the overview: stage, last value, alert status and sparkline, in a
fixed number of queries whatever the number of metrics."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import func, select, union_all
from sqlalchemy.engine import Connection

from monitor.spec import OVERALL
from monitor.storage import definitions
from monitor.storage.dashboard.read_only import VALUES, ReadOnly, as_datetime
from monitor.storage.dashboard.records import (
    DEFAULT_SPARK_WINDOWS,
    NO_DATA,
    MetricOverview,
    worst_status,
)
from monitor.storage.models import AlertStateRow, table_of
from monitor.storage.records import MetricDefinition
from monitor.storage.types import to_utc
from monitor.values import STAGES
from monitor.windows import Windows

STATES = table_of(AlertStateRow)


class OverviewQueries:
    """The overview page's rows."""

    def __init__(self, read: ReadOnly) -> None:
        self._read = read

    def metrics(self, spark_windows: int = DEFAULT_SPARK_WINDOWS) -> list[MetricOverview]:
        """Every registered metric's current version: stage, last value, alert status and
        the last ``spark_windows`` values of its headline field; firing metrics first."""
        with self._read.session() as conn:
            found = definitions.list_definitions(conn)
            statuses = _alert_counts(conn)
            rows = _overviews(conn, found, statuses, spark_windows)
        order = {"firing": 0, "pending": 1, "ok": 2, NO_DATA: 3}
        return sorted(rows, key=lambda m: (order[m.status], m.name))


def headline_field(definition: MetricDefinition) -> str | None:
    """The field the metric's first alert rule watches, if it has rules."""
    for rule in definition.spec.get("alerts") or ():  # type: ignore[attr-defined]
        if isinstance(rule, dict) and rule.get("field"):
            return str(rule["field"])
    return None


def _alert_counts(conn: Connection) -> dict[tuple[str, int], dict[str, int]]:
    s = STATES.c
    rows = conn.execute(select(s.metric, s.metric_version, s.status, func.count())
                        .where(s.status.in_(["pending", "firing"]))
                        .group_by(s.metric, s.metric_version, s.status)).all()
    counts: dict[tuple[str, int], dict[str, int]] = {}
    for metric, version, status, count in rows:
        counts.setdefault((metric, version), {})[status] = int(count)
    return counts


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
                stage: to_utc(as_datetime(row._mapping[stage])) for stage in STAGES
                if row._mapping[stage] is not None}
    return latest


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
            found.setdefault(metric, []).append((to_utc(as_datetime(start)),
                                                 math.nan if value is None else float(value)))
    for points in found.values():
        points.sort()
    return found
