"""Reading :class:`~monitor.stream_status.StreamStatus` from the results database: the
streaming checkpoints and the dead-letter counts the streaming stage keeps as values."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import case, func, select
from sqlalchemy.engine import Connection

from monitor.storage.models import MetricValueRow, StreamCheckpointRow, table_of
from monitor.stream_status import DeadLetterCount, PartitionRead, PartitionStatus, StreamStatus
from monitor.times import to_utc

CHECKPOINTS = table_of(StreamCheckpointRow)
VALUES = table_of(MetricValueRow)
DEAD_LETTERS_SUFFIX = ".dead_letters"  # the counting metric of stream S is S.dead_letters
REASON = "reason="  # the segment of one reason (the "*" segment holds their sum)
STAGE = "streaming"
LAST_DAY = timedelta(hours=24)


def read_stream_status(conn: Connection, at: datetime, topics: Sequence[str] = ()
                       ) -> StreamStatus:
    """Every stored partition (of ``topics``, if given) and every stream's dead letters by
    reason, measured at ``at``."""
    return StreamStatus(at, _partitions(conn, topics), _dead_letters(conn, at - LAST_DAY))


def _partitions(conn: Connection, topics: Sequence[str]) -> list[PartitionStatus]:
    c = CHECKPOINTS.c
    query = select(c.topic, c.partition, c.owner, c.offset, c.events, c.watermark,
                   c.event_watermark, c.updated_at).order_by(c.topic, c.partition)
    if topics:
        query = query.where(c.topic.in_(topics))
    return [PartitionStatus(row.topic, row.partition, row.owner, row.offset, row.events,
                            _utc(row.watermark), _utc(row.event_watermark),
                            to_utc(row.updated_at))
            for row in conn.execute(query)]


def read_partition_reads(conn: Connection, topics: Sequence[str]) -> list[PartitionRead]:
    """The latest event time absorbed of every stored partition of ``topics``: the highest
    of the checkpoint's event watermark and the few highest times it sets aside
    (``event_time_top``, decimal nanoseconds, highest first)."""
    c = CHECKPOINTS.c
    query = (select(c.topic, c.partition, c.event_watermark, c.event_time_top)
             .where(c.topic.in_(list(topics))).order_by(c.topic, c.partition))
    reads = []
    for row in conn.execute(query):
        times = [to_utc(row.event_watermark)] if row.event_watermark is not None else []
        if row.event_time_top:
            top_ns = max(int(part) for part in row.event_time_top.split(","))
            times.append(pd.Timestamp(top_ns, unit="ns", tz="UTC").to_pydatetime())
        reads.append(PartitionRead(row.topic, row.partition, max(times, default=None)))
    return reads


def _dead_letters(conn: Connection, since: datetime) -> list[DeadLetterCount]:
    v = VALUES.c
    recent = func.sum(case((v.window_end > since, v.count), else_=0))
    rows = conn.execute(
        select(v.metric, v.segment, func.sum(v.count), recent)
        .where(v.stage == STAGE, v.field == "count", v.metric.like(f"%{DEAD_LETTERS_SUFFIX}"),
               v.segment.like(f"{REASON}%"))
        .group_by(v.metric, v.segment).order_by(v.metric, v.segment))
    return [DeadLetterCount(metric[:-len(DEAD_LETTERS_SUFFIX)], segment[len(REASON):],
                            int(total or 0), int(last or 0))
            for metric, segment, total, last in rows]


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else to_utc(value)
