"""The stored values alert rules compare new windows with, for many alerts in a few
statements.

A rule that looks back (:class:`~monitor.alerts.rules.Change`,
:class:`~monitor.alerts.rules.Anomaly`) reads its history for each segment it watches;
a statement each cost a slice one round trip per rule and segment of every metric. The
requests are read as one ``UNION ALL`` of a subquery each (the newest ``last``, or
those within a span), ``PER_STATEMENT`` at a time: SQLite allows 500 terms in a
compound select.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import literal, select, union_all
from sqlalchemy.engine import Connection

from monitor.alerts.ports import HistoryRequest
from monitor.alerts.rules import Point
from monitor.storage.models import MetricValueRow, table_of
from monitor.storage.types import to_utc

VALUES = table_of(MetricValueRow)
PER_STATEMENT = 200


def value_histories(conn: Connection, requests: Sequence[HistoryRequest]
                    ) -> list[list[Point]]:
    """The stored values each request asks for, oldest first, in the order of
    ``requests``."""
    found: list[list[Point]] = [[] for _ in requests]
    for first in range(0, len(requests), PER_STATEMENT):
        chunk = requests[first:first + PER_STATEMENT]
        parts = [select(*_one(index, request).subquery().c)
                 for index, request in enumerate(chunk, start=first)]
        query = parts[0] if len(parts) == 1 else union_all(*parts)
        rows = sorted(conn.execute(query).all(), key=lambda row: (row[0], row[1]))
        for index, start, value, count in rows:
            found[index].append(Point(to_utc(start), float(value), int(count)))
    return found


def _one(index: int, request: HistoryRequest) -> Any:
    """One request's rows, tagged with its index."""
    v = VALUES.c
    key, before = request.key, to_utc(request.before)
    query = select(literal(index).label("request"), v.window_start, v.value, v.count).where(
        v.metric == key.metric, v.metric_version == key.version, v.stage == key.stage,
        v.segment == key.segment, v.field == request.field, v.window_start < before)
    if request.min_count:
        query = query.where(v.count >= request.min_count)
    if request.span is not None:
        return query.where(v.window_start >= before - request.span)
    return query.order_by(v.window_start.desc()).limit(request.last)
