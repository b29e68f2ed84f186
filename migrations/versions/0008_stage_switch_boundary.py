"""Stage changes into or out of streaming record the first window they apply to.

Workers now pick up promotions and demotions while they run, switching at a window
boundary stated when the change is made (``monitor.stage_switch``). Changes made before
this migration get the boundary the old behaviour came closest to: the first window
boundary at or after the change (workers restarted after a promotion counted from there
on; batch keeps every window before it).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import sqlalchemy as sa
from alembic import op

from monitor.stage_switch import switch_boundary
from monitor.storage.types import UTCDateTime

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stage_changes") as table:
        table.add_column(sa.Column("effective_from", sa.DateTime(timezone=True),
                                   nullable=True))
    bind = op.get_bind()
    changes = sa.table("stage_changes", sa.column("id", sa.Integer),
                       sa.column("metric", sa.String), sa.column("metric_version", sa.Integer),
                       sa.column("from_stage", sa.String), sa.column("to_stage", sa.String),
                       sa.column("changed_at", UTCDateTime),
                       sa.column("effective_from", UTCDateTime))
    definitions = sa.table("metric_definitions", sa.column("name", sa.String),
                           sa.column("version", sa.Integer), sa.column("window", sa.String))
    c, d = changes.c, definitions.c
    rows = bind.execute(
        sa.select(c.id, c.changed_at, d.window)
        .join(definitions, (d.name == c.metric) & (d.version == c.metric_version))
        .where((c.to_stage == "streaming") | (c.from_stage == "streaming"))).all()
    for row in rows:
        boundary = switch_boundary([row.window], row.changed_at, lead=pd.Timedelta(0))
        bind.execute(sa.update(changes).where(c.id == row.id)
                     .values(effective_from=boundary))


def downgrade() -> None:
    with op.batch_alter_table("stage_changes") as table:
        table.drop_column("effective_from")
