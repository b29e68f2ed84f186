"""Rejected input as the dashboard shows it: dead letters stored by the batch and streaming
stages (counted by reason with ``GROUP BY``), and the streaming stage's counts of every
rejected input (``STREAM.dead_letters`` metrics, whose samples alone are stored)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, case, func, literal, select
from sqlalchemy.engine import Connection

from monitor.segments import parse_label
from monitor.storage import dead_letters, definitions
from monitor.storage.dashboard.read_only import VALUES, ReadOnly, rows_frame
from monitor.storage.dashboard.records import TimeRange
from monitor.storage.records import DeadLetter
from monitor.storage.types import to_utc

DEAD_LETTER_SUFFIX = ".dead_letters"  # the streaming stage's count of rejected input


class DeadLetterQueries:
    """Dead letters stored, and rejected input counted."""

    def __init__(self, read: ReadOnly) -> None:
        self._read = read

    def count_metrics(self) -> list[str]:
        """The streaming stage's dead-letter counts (``STREAM.dead_letters``) that have
        values: one probe of the value index per stream of the registered metrics."""
        with self._read.session() as conn:
            return _dead_letter_metrics(conn)

    def counts(self, since: datetime | None = None) -> pd.DataFrame:
        """Stored dead letters by source and reason (the part before ``: detail``)."""
        d = dead_letters.DEAD_LETTERS.c
        with self._read.session() as conn:
            reason = _reason_prefix(conn, d.reason)
            query = (select(d.source, reason.label("reason"), func.count().label("count"),
                            func.max(d.created_at).label("latest"))
                     .group_by(d.source, reason).order_by(func.count().desc()).limit(200))
            if since is not None:
                query = query.where(d.created_at >= to_utc(since))
            frame = rows_frame(conn.execute(query).all(), ["source", "reason", "count", "latest"])
        frame["latest"] = pd.to_datetime(frame["latest"], utc=True)
        return frame

    def metric_counts(self, span: TimeRange) -> pd.DataFrame:
        """Every rejected input the streaming stage counted (its samples are capped), by
        metric and reason over ``span``."""
        v = VALUES.c
        with self._read.session() as conn:
            query = (select(v.metric, v.segment, func.sum(v.value))
                     .where(v.metric.in_(_dead_letter_metrics(conn)),
                            v.segment.like("reason=%"), v.field == "count",
                            v.window_start >= to_utc(span.since),
                            v.window_start < to_utc(span.until))
                     .group_by(v.metric, v.segment).order_by(func.sum(v.value).desc())
                     .limit(200))
            frame = rows_frame(conn.execute(query).all(), ["metric", "segment", "count"])
        frame["reason"] = [_dead_letter_reason(segment) for segment in frame["segment"]]
        frame["count"] = pd.to_numeric(frame["count"]).fillna(0).astype("int64")
        return frame[["metric", "reason", "count"]]

    def recent(self, limit: int = 50) -> list[DeadLetter]:
        with self._read.session() as conn:
            return dead_letters.recent_dead_letters(conn, None, limit)


def _dead_letter_reason(segment: str) -> str:
    """The reason a dead-letter count's segment label (``reason=...``) names."""
    try:
        reason = parse_label(segment).get("reason")
    except ValueError:  # a reason with a comma, labelled unescaped
        reason = None
    return reason if reason is not None else segment.removeprefix("reason=")


def _dead_letter_metrics(conn: Connection) -> list[str]:
    specs = conn.execute(select(definitions.DEFINITIONS.c.spec)).scalars()
    streams = {spec["stream"]["name"] for spec in specs
               if isinstance(spec, dict) and isinstance(spec.get("stream"), dict)}
    v = VALUES.c
    return [name for name in sorted(f"{stream}{DEAD_LETTER_SUFFIX}" for stream in streams)
            if conn.execute(select(literal(1)).where(v.metric == name).limit(1)).first()]


def _reason_prefix(conn: Connection, column: Any) -> ColumnElement[Any]:
    """The reason without its ``: detail`` (the streaming stage appends one per message)."""
    if conn.dialect.name == "postgresql":
        return func.split_part(column, ": ", 1)
    at = func.instr(column, ": ")
    return case((at > 0, func.substr(column, 1, at - 1)), else_=column)
