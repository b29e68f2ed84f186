"""A firing assertion's reminders name example ids, as its first message does.

The dispatcher builds a reminder from the alert's stored row, which kept the rule's
detail alone: the first message named a few example ids of the window that fired, the
4-hourly reminders none. ``alert_states.examples`` keeps the ids (and the export command)
of the alert's last window while it fires, written where the alert is evaluated.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # nullable, no default: an alert firing before the upgrade gets its ids at its next
    # evaluation; until then its reminders read as they did
    op.add_column("alert_states", sa.Column("examples", sa.Text(), nullable=True))


def downgrade() -> None:
    # only reminders read it: without it they name no ids, as before this revision.
    # SQLite (3.35+) drops a column in place: alembic's batch mode would rebuild the
    # table from its reflection, which cannot spell the float columns' custom type.
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE alert_states DROP COLUMN examples")
    else:
        op.drop_column("alert_states", "examples")
