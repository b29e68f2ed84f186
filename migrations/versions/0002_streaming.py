"""Streaming stage: per-partition checkpoints and partial window states.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "stream_checkpoints",
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("watermark", UTC_TIME, nullable=True),
        sa.Column("event_watermark", UTC_TIME, nullable=True),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("topic", "partition", name="pk_stream_checkpoints"),
    )
    op.create_table(
        "stream_partials",
        sa.Column("metric", sa.String(200), nullable=False),
        sa.Column("metric_version", sa.Integer(), nullable=False),
        sa.Column("window_start", UTC_TIME, nullable=False),
        sa.Column("segment", sa.Text(), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("window_end", UTC_TIME, nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("metric", "metric_version", "window_start", "segment", "topic",
                                "partition", name="pk_stream_partials"),
    )


def downgrade() -> None:
    op.drop_table("stream_partials")
    op.drop_table("stream_checkpoints")
