"""Registered metric definitions, their versions, and their stage history.

Registering a spec whose id matches the current version returns that version; a changed
spec (a different ``MetricSpec.id``) becomes version + 1, so values computed under two
definitions are never mixed. The current version is the highest. Going back to an older
spec also makes a new version: the numbers only grow.

What the id leaves out (owner, description, alert rules, where the stream is found) is
brought up to date in the version itself, by :func:`refresh_definition`, whenever a stage
meets the app's spec. So is an id stored before ids held only what decides values
(``MetricSpec.legacy_id``): the version is adopted under the new id, keeping its number,
its stage and its values, so upgrading makes no metric a new version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection, Row

from metrics.base import canonical_json
from monitor.spec import MetricSpec
from monitor.stage_switch import (
    COMMIT_WITHIN,
    STREAMING,
    check_boundary,
    open_versions,
    switch_boundary,
    switch_lead,
    touches_streaming,
)
from monitor.storage.models import MetricDefinitionRow, StageChangeRow, table_of
from monitor.storage.records import MetricDefinition, StageChange, check_stage
from monitor.storage.types import to_utc, utc_now

DEFINITIONS = table_of(MetricDefinitionRow)
CHANGES = table_of(StageChangeRow)


def register_metric(
    conn: Connection,
    spec: MetricSpec,
    *,
    stage: str = "research",
    by: str = "monitor",
    at: datetime | None = None,
) -> MetricDefinition:
    """The current definition of ``spec.name`` if ``spec`` matches it, else a new version.

    A new version starts in ``stage`` and its registration is the first entry of its
    stage history. What the spec id leaves out (owner, description, alert rules...) is
    updated in the current version in place, as :func:`refresh_definition` does.
    """
    check_stage(stage)
    stored = _current_row(conn, spec.name)
    current = None if stored is None else _refreshed(conn, stored, spec)
    if current is not None and current.spec_id == spec.id:
        return current
    version = 1 if current is None else current.version + 1
    at = utc_now() if at is None else to_utc(at)
    row = {"name": spec.name, "version": version, "spec_id": spec.id, "spec": spec.to_dict(),
           "owner": spec.owner, "description": spec.description, "window": spec.window,
           "stage": stage, "created_at": at}
    conn.execute(insert(DEFINITIONS).values(row))
    reason = f"registered version {version}"
    if current is not None:
        reason += f": spec changed from {current.spec_id} to {spec.id}"
    boundary = _boundary(conn, spec.name, version, spec.window, None, stage, at, None, None)
    _insert_change(conn, StageChange(spec.name, version, None, stage, at, by, reason, boundary))
    return _definition(row)


def refresh_definition(conn: Connection, spec: MetricSpec, version: int) -> MetricDefinition:
    """Version ``version`` of ``spec.name``, brought up to date with ``spec`` when it is
    that version's definition: stored under ``spec.id``, or under ``spec.legacy_id`` (the
    id older releases gave it), which is then replaced by ``spec.id``. Its stored spec,
    owner and description follow ``spec``; its number and stage stay. Another definition's
    version is returned as stored. LookupError when there is no such version.
    """
    d = DEFINITIONS.c
    row = conn.execute(select(DEFINITIONS).where(d.name == spec.name, d.version == version)
                       ).first()
    if row is None:
        raise LookupError(f"metric {spec.name!r} has no version {version}")
    return _refreshed(conn, row, spec)


def current_definition(conn: Connection, name: str) -> MetricDefinition | None:
    row = _current_row(conn, name)
    return None if row is None else _definition(row._mapping)


def get_definition(conn: Connection, name: str, version: int) -> MetricDefinition | None:
    row = conn.execute(select(DEFINITIONS).where(DEFINITIONS.c.name == name,
                                                 DEFINITIONS.c.version == version)).first()
    return None if row is None else _definition(row._mapping)


def list_definitions(conn: Connection) -> list[MetricDefinition]:
    """The current version of every registered metric, by name."""
    d = DEFINITIONS.c
    newest = (select(d.name, func.max(d.version).label("version")).group_by(d.name)
              .subquery())
    query = (select(DEFINITIONS)
             .join(newest, (d.name == newest.c.name) & (d.version == newest.c.version))
             .order_by(d.name))
    return [_definition(row._mapping) for row in conn.execute(query)]


def record_stage_change(
    conn: Connection,
    metric: str,
    version: int,
    to_stage: str,
    *,
    by: str,
    reason: str,
    at: datetime | None = None,
    lead: pd.Timedelta | None = None,
    effective_from: datetime | None = None,
) -> StageChange:
    """Move ``metric`` version ``version`` to ``to_stage`` and append it to the history.

    Which moves are allowed is the lifecycle's rule, not the store's; the store only
    refuses unknown stages, unknown versions, a move to the stage it is in, and a
    change without a reason or an author. A change into or out of streaming gets its
    boundary: ``effective_from`` if given, else :func:`monitor.stage_switch.switch_boundary`
    (``lead`` by default the deployment's :func:`~monitor.stage_switch.switch_lead`); a
    window boundary of this version and of the version it takes over from, if any. Whether
    an earlier boundary than the lead gives is safe (no worker read past it) is the
    lifecycle's to check.
    """
    check_stage(to_stage)
    if not reason or not reason.strip():
        raise ValueError(f"metric {metric!r}: a stage change needs a reason")
    if not by or not by.strip():
        raise ValueError(f"metric {metric!r}: a stage change needs to say who made it")
    d = DEFINITIONS.c
    row = conn.execute(select(d.id, d.stage, d.window)
                       .where(d.name == metric, d.version == version)
                       .with_for_update()).first()
    if row is None:
        versions = conn.execute(select(d.version).where(d.name == metric)
                                .order_by(d.version)).scalars().all()
        known = f"its versions are {', '.join(map(str, versions))}" if versions else \
            "it is not registered"
        raise LookupError(f"metric {metric!r} has no version {version}; {known}")
    if row.stage == to_stage:
        raise ValueError(f"metric {metric!r} version {version} is already in stage {to_stage!r}")
    now = at is None
    at = utc_now() if at is None else to_utc(at)
    boundary = _boundary(conn, metric, version, row.window, row.stage, to_stage, at, lead,
                         effective_from)
    conn.execute(update(DEFINITIONS).where(d.id == row.id).values(stage=to_stage))
    change = StageChange(metric, version, row.stage, to_stage, at, by, reason, boundary)
    _insert_change(conn, change)
    if boundary is not None and now:
        _committing_in_time(metric, at)
    return change


class StageChangeTooSlow(ValueError):
    """A change into or out of streaming that took too long to record: nothing changed."""


def _committing_in_time(metric: str, at: datetime) -> None:
    """Refuse a change into or out of streaming still uncommitted half of
    :data:`~monitor.stage_switch.COMMIT_WITHIN` after the time it records: workers count on
    seeing it by then (the other half is for the commit itself)."""
    took = pd.Timestamp(utc_now()) - pd.Timestamp(at)
    if took > COMMIT_WITHIN / 2:
        raise StageChangeTooSlow(
            f"metric {metric!r}: the stage change took {took.total_seconds():.1f} s to record "
            f"(the database is slow or locked), longer than running workers allow for; "
            f"nothing changed: try again")


def _boundary(conn: Connection, metric: str, version: int, window: str,
              from_stage: str | None, to_stage: str, at: datetime,
              lead: pd.Timedelta | None, effective_from: datetime | None) -> datetime | None:
    """Where a change applies in streaming (None: it does not touch streaming)."""
    if not touches_streaming(from_stage, to_stage):
        return None
    windows = [window]
    if to_stage == STREAMING:  # a takeover ends the streaming version's windows there
        windows += [_window(conn, metric, other)
                    for other in open_versions(stage_history(conn, metric)) if other != version]
    if effective_from is not None:
        return check_boundary(metric, windows, to_utc(effective_from))
    return switch_boundary(windows, at, switch_lead() if lead is None else lead)


def _window(conn: Connection, metric: str, version: int) -> str:
    d = DEFINITIONS.c
    return str(conn.execute(select(d.window).where(d.name == metric, d.version == version)
                            ).scalar_one())


def stage_history(conn: Connection, metric: str) -> list[StageChange]:
    """Every stage change of every version of ``metric``, oldest first."""
    c = CHANGES.c
    query = select(CHANGES).where(c.metric == metric).order_by(c.changed_at, c.id)
    return [StageChange(row.metric, row.metric_version, row.from_stage, row.to_stage,
                        row.changed_at, row.changed_by, row.reason, row.effective_from)
            for row in conn.execute(query)]


def _refreshed(conn: Connection, row: Row[Any], spec: MetricSpec) -> MetricDefinition:
    """``row`` updated from ``spec`` if ``spec`` is its definition; the one place that
    knows a version stored under ``spec.legacy_id`` is ``spec``'s."""
    stored = row._mapping
    if stored["spec_id"] not in (spec.id, spec.legacy_id):
        return _definition(stored)
    now = {"spec_id": spec.id, "spec": spec.to_dict(), "owner": spec.owner,
           "description": spec.description}
    changed = {column: value for column, value in now.items()
               if canonical_json(stored[column]) != canonical_json(value)}
    if changed:
        conn.execute(update(DEFINITIONS).where(DEFINITIONS.c.id == stored["id"])
                     .values(changed))
    return _definition({**stored, **changed})


def _current_row(conn: Connection, name: str) -> Row[Any] | None:
    d = DEFINITIONS.c
    return conn.execute(select(DEFINITIONS).where(d.name == name)
                        .order_by(d.version.desc()).limit(1)).first()


def _insert_change(conn: Connection, change: StageChange) -> None:
    conn.execute(insert(CHANGES).values(
        metric=change.metric, metric_version=change.version, from_stage=change.from_stage,
        to_stage=change.to_stage, changed_at=change.at, changed_by=change.by,
        reason=change.reason, effective_from=change.effective_from))


def _definition(row: Any) -> MetricDefinition:
    return MetricDefinition(
        name=row["name"], version=row["version"], spec_id=row["spec_id"], spec=row["spec"],
        owner=row["owner"], description=row["description"], window=row["window"],
        stage=row["stage"], created_at=row["created_at"])
