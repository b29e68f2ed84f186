"""Silences kept in the database (see :mod:`monitor.alerts.silences` for matching)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from monitor.alerts.silences import Silence
from monitor.storage.models import AlertSilenceRow, table_of
from monitor.storage.types import to_utc

SILENCES = table_of(AlertSilenceRow)


def add_silence(conn: Connection, silence: Silence, now: datetime) -> Silence:
    """Store ``silence`` (starting now unless it says otherwise); returns it with its id."""
    if silence.ends_at is None:
        raise ValueError("a silence needs an expiry (ends_at); e.g. --for 2h")
    starts = to_utc(silence.starts_at or now)
    if to_utc(silence.ends_at) <= starts:
        raise ValueError("a silence must end after it starts")
    row = {"metric": silence.metric, "segment": silence.segment,
           "labels": dict(silence.labels), "reason": silence.reason,
           "created_by": silence.created_by, "created_at": starts,
           "ends_at": silence.ends_at}
    silence_id = conn.execute(insert(SILENCES).values(row).returning(SILENCES.c.id)).scalar_one()
    return Silence(int(silence_id), silence.metric, silence.segment, dict(silence.labels),
                   starts, to_utc(silence.ends_at), silence.reason, silence.created_by)


def list_silences(conn: Connection, now: datetime, *, include_expired: bool = False
                  ) -> list[Silence]:
    """Active silences (or all, newest first with ``include_expired``)."""
    s = SILENCES.c
    query = select(SILENCES).order_by(s.id.desc())
    if not include_expired:
        query = query.where(s.ends_at > to_utc(now), s.created_at <= to_utc(now))
    return [Silence(row.id, row.metric, row.segment, dict(row.labels), row.created_at,
                    row.ends_at, row.reason, row.created_by) for row in conn.execute(query)]


def end_silence(conn: Connection, silence_id: int, now: datetime) -> bool:
    """End an active silence now; False when there is no such active silence."""
    s = SILENCES.c
    result = conn.execute(update(SILENCES).where(s.id == silence_id, s.ends_at > to_utc(now))
                          .values(ends_at=to_utc(now)))
    return result.rowcount == 1
