"""Streaming partials say whether they are a correction.

A partition whose idle mark let a window close may resume with more of its events; those
are kept in a partial of their own, merged into the window after its first value, so the
first value does not depend on whether the closing worker's tick came before or after the
partition's store (see ``streaming.partition``). The flag is part of the key: a partition
can hold both kinds for one window until it closes. Rows written before are not
corrections.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = ["metric", "metric_version", "window_start", "segment", "topic", "partition"]


def upgrade() -> None:
    with op.batch_alter_table("stream_partials") as table:
        table.add_column(sa.Column("correction", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        table.drop_constraint("pk_stream_partials", type_="primary")
        table.create_primary_key("pk_stream_partials", [*KEY, "correction"])


def downgrade() -> None:
    # a correction folds into its partition's partial only by merging states, which SQL
    # cannot do: refuse rather than drop events
    held = op.get_bind().execute(sa.text(
        "SELECT count(*) FROM stream_partials WHERE correction")).scalar()
    if held:
        raise RuntimeError(f"{held} streaming correction partial(s) are not merged yet: "
                           "let the workers close their windows before downgrading")
    with op.batch_alter_table("stream_partials") as table:
        table.drop_constraint("pk_stream_partials", type_="primary")
        table.create_primary_key("pk_stream_partials", KEY)
        table.drop_column("correction")
