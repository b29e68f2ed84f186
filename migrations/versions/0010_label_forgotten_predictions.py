"""The label join remembers, for a while, which predictions it forgot.

A label that reaches streaming after the window of its prediction was forgotten (its held
rows purged) can no longer be counted, and must be a dead letter rather than be held
for nothing; a label whose prediction is in a window still held must be counted. Which
of the two it is depends on the prediction, whose row the purge deleted: the purge now
keeps the id and time of each prediction it forgets (``label_forgotten_predictions``)
until no label that could take it can still be held (see ``streaming.label_store``).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "label_forgotten_predictions"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("metric", sa.String(200), nullable=False),
        sa.Column("metric_version", sa.Integer(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("event", sa.Integer(), nullable=False),
        sa.Column("prediction_id", sa.Text(), nullable=False),
        sa.Column("event_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("metric", "metric_version", "partition", "offset", "event",
                                name="pk_label_forgotten_predictions"),
    )
    op.create_index("ix_label_forgotten_id",
                    TABLE, ["prediction_id", "metric", "metric_version"])
    op.create_index("ix_label_forgotten_time",
                    TABLE, ["event_time", "metric", "metric_version"])


def downgrade() -> None:
    # Without the table a late label is held for nothing again (the silent loss this
    # revision ended); its rows only ever decide dead letters, so dropping them loses none
    # of the values stored.
    op.drop_index("ix_label_forgotten_time",
                  table_name=TABLE)
    op.drop_index("ix_label_forgotten_id",
                  table_name=TABLE)
    op.drop_table(TABLE)
