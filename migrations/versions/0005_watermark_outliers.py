"""Streaming checkpoints keep the highest event times of their partition.

A partition's event watermark sets its highest event times aside (see
``streaming.partition``), so the checkpoint stores them to resume exactly. Rows written
before keep working: a checkpoint without them starts from its stored watermark.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stream_checkpoints") as table:
        table.add_column(sa.Column("event_time_top", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stream_checkpoints") as table:
        table.drop_column("event_time_top")
