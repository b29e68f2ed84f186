"""Dead letters keyed by their source, so a retry, a rerun or a replay stores each once.

``source_key`` is unique within a source; rows written before this revision keep a NULL
key (NULLs never conflict), so they stay as they are.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-10
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_dead_letters_source_source_key"


def upgrade() -> None:
    op.add_column("dead_letters", sa.Column("source_key", sa.String(500), nullable=True))
    op.create_index(INDEX, "dead_letters", ["source", "source_key"], unique=True)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="dead_letters")
    with op.batch_alter_table("dead_letters") as batch:  # SQLite rebuilds the table
        batch.drop_column("source_key")
