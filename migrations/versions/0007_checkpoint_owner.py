"""Streaming checkpoints name the worker that wrote them.

``monitor stream status`` shows which worker holds each partition; the checkpoint row is
where a worker writes anyway (every stored micro-batch, and every second or so while the
partition is idle), so the owner costs no extra write. Rows written before stay None
("unknown") until their partition is stored again.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stream_checkpoints") as table:
        table.add_column(sa.Column("owner", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stream_checkpoints") as table:
        table.drop_column("owner")
