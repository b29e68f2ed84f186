"""Fitted reference profiles, kept as their exact JSON under (name, profile id)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from metrics.drift import ReferenceProfile
from monitor.storage.models import ReferenceProfileRow, table_of
from monitor.storage.types import to_utc, utc_now

PROFILES = table_of(ReferenceProfileRow)


def save_profile(conn: Connection, profile: ReferenceProfile,
                 fitted_at: datetime | None = None) -> None:
    """Keep ``profile``; saving one already stored changes nothing (not even its time)."""
    row = {"name": profile.name, "profile_id": profile.id, "profile": profile.to_json(),
           "fitted_at": utc_now() if fitted_at is None else to_utc(fitted_at)}
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(insert(PROFILES).values(row)
                 .on_conflict_do_nothing(index_elements=["name", "profile_id"]))


def load_profile(conn: Connection, name: str, profile_id: str | None = None) -> ReferenceProfile:
    """The profile with ``profile_id``, or the one fitted last under ``name``."""
    p = PROFILES.c
    query = select(p.profile).where(p.name == name)
    if profile_id is not None:
        query = query.where(p.profile_id == profile_id)
    text = conn.execute(query.order_by(p.fitted_at.desc(), p.id.desc()).limit(1)).scalar()
    if text is None:
        which = f"{name!r} with id {profile_id}" if profile_id else f"{name!r}"
        raise LookupError(f"no reference profile {which} is stored; fit and save it first")
    return ReferenceProfile.from_json(text)
