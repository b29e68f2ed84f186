"""Where the streaming stage stands, for the whole consumer group, as the database has it.

What ``monitor stream status`` prints: per partition its owner (the worker that wrote its
checkpoint last), the stored offset, the watermark and how long ago the checkpoint was
written; per stream its dead letters by reason. Pure records and their rendering; the
database is read by :mod:`monitor.storage.stream_status`.

A live owner writes its checkpoints at every stored micro-batch and, while a partition is
idle, about every second after the idle timeout: a checkpoint much older than the idle
timeout belongs to a partition no worker is storing (all workers gone, stuck on the
database, or the group rebalancing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class PartitionStatus:
    topic: str
    partition: int
    owner: str | None  # HOST/PID of the worker that stored it last; None: not recorded
    offset: int  # the highest offset stored (-1: none)
    events: int  # events absorbed over the partition's life
    watermark: datetime | None  # how far it lets windows close
    event_watermark: datetime | None  # what its events' times give (decides lateness)
    stored_at: datetime  # when its checkpoint was written last


@dataclass(frozen=True)
class PartitionRead:
    """How far the streaming stage has read a partition in event time: the latest event
    time it has absorbed (None: none yet). A stage switch from a boundary at or before it
    would leave windows the worker already counted to another stage."""

    topic: str
    partition: int
    latest_event: datetime | None


@dataclass(frozen=True)
class DeadLetterCount:
    stream: str
    reason: str
    total: int
    last_day: int  # in the dead-letter windows of the last 24 hours


@dataclass(frozen=True)
class StreamStatus:
    at: datetime  # the wall clock the ages and lags are measured against
    partitions: Sequence[PartitionStatus]
    dead_letters: Sequence[DeadLetterCount]

    def as_json(self) -> dict[str, Any]:
        return {
            "at": _iso(self.at),
            "partitions": [{
                "topic": p.topic, "partition": p.partition, "owner": p.owner,
                "offset": p.offset, "events": p.events, "watermark": _iso(p.watermark),
                "event_watermark": _iso(p.event_watermark),
                "lag_s": _seconds(self.at, p.watermark),
                "checkpoint_age_s": _seconds(self.at, p.stored_at),
            } for p in self.partitions],
            "dead_letters": [{"stream": d.stream, "reason": d.reason, "total": d.total,
                              "last_24h": d.last_day} for d in self.dead_letters],
        }


def render(status: StreamStatus) -> str:
    """The status as text for a terminal.

    >>> from datetime import timezone
    >>> at = datetime(2026, 12, 3, 7, 0, 30, tzinfo=timezone.utc)
    >>> mark = datetime(2026, 12, 3, 7, 0, 0, tzinfo=timezone.utc)
    >>> print(render(StreamStatus(at, [PartitionStatus("home", 0, "host/12", 41, 42, mark,
    ...     mark, at)], [DeadLetterCount("home", "late", 3, 1)])))
    topic home: 1 partition, 42 events absorbed
      partition  owner    offset  watermark             lag    checkpoint age
      0          host/12  41      2026-12-03 07:00:00Z  30 s   0 s
    dead letters (streaming): total, last 24 h
      home  late  3  1
    """
    lines: list[str] = []
    topics: dict[str, list[PartitionStatus]] = {}
    for partition in status.partitions:
        topics.setdefault(partition.topic, []).append(partition)
    if not topics:
        lines.append("no stored streaming checkpoints: no worker has stored a partition yet")
    for topic, partitions in topics.items():
        events = sum(p.events for p in partitions)
        plural = "" if len(partitions) == 1 else "s"
        lines.append(f"topic {topic}: {len(partitions)} partition{plural}, {events:,} events "
                     "absorbed")
        rows = [["partition", "owner", "offset", "watermark", "lag", "checkpoint age"]]
        rows += [[str(p.partition), p.owner or "unknown", str(p.offset),
                  _time(p.watermark), _age(_seconds(status.at, p.watermark)),
                  _age(_seconds(status.at, p.stored_at))] for p in partitions]
        lines += _table(rows)
    if status.dead_letters:
        lines.append("dead letters (streaming): total, last 24 h")
        lines += _table([[d.stream, d.reason, str(d.total), str(d.last_day)]
                         for d in status.dead_letters])
    else:
        lines.append("no dead letters")
    return "\n".join(lines)


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths,
                                                                     strict=True)).rstrip()
            for row in rows]


def _seconds(at: datetime, then: datetime | None) -> float | None:
    return None if then is None else (at - then).total_seconds()


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if abs(seconds) < 120:
        return f"{seconds:.0f} s"
    if abs(seconds) < 7_200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3_600:.1f} h"


def _time(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%SZ")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")
