"""Streaming joins labels: predictions and labels held until their horizon passes.

A metric joined to labels keeps, in the streaming stage, the predictions of its windows
and the labels that may still join them, stored with the offsets of the partitions they
came from; ``label_join_progress`` says how far each metric's windows are closed and
purged (see ``streaming.label_processor``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)


def _source_key() -> list[sa.Column]:
    return [sa.Column("metric", sa.String(200), nullable=False),
            sa.Column("metric_version", sa.Integer(), nullable=False),
            sa.Column("partition", sa.Integer(), nullable=False),
            sa.Column("offset", sa.BigInteger(), nullable=False),
            sa.Column("event", sa.Integer(), nullable=False)]


def upgrade() -> None:
    op.create_table(
        "label_held_predictions",
        *_source_key(),
        sa.Column("prediction_id", sa.Text(), nullable=True),
        sa.Column("event_time", sa.BigInteger(), nullable=False),
        sa.Column("window_start", UTC_TIME, nullable=False),
        sa.Column("window_end", UTC_TIME, nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("metric", "metric_version", "partition", "offset", "event",
                                name="pk_label_held_predictions"),
    )
    op.create_index("ix_label_held_predictions_window_end_metric_metric_version",
                    "label_held_predictions", ["window_end", "metric", "metric_version"])
    op.create_index("ix_label_held_predictions_prediction_id_metric_metric_version",
                    "label_held_predictions", ["prediction_id", "metric", "metric_version"])
    op.create_table(
        "label_held_labels",
        *_source_key(),
        sa.Column("label_id", sa.Text(), nullable=False),
        sa.Column("label_time", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("metric", "metric_version", "partition", "offset", "event",
                                name="pk_label_held_labels"),
    )
    op.create_index("ix_label_held_labels_label_id_metric_metric_version",
                    "label_held_labels", ["label_id", "metric", "metric_version"])
    op.create_index("ix_label_held_labels_label_time_metric_metric_version",
                    "label_held_labels", ["label_time", "metric", "metric_version"])
    op.create_table(
        "label_join_progress",
        sa.Column("metric", sa.String(200), nullable=False),
        sa.Column("metric_version", sa.Integer(), nullable=False),
        sa.Column("closed_through", UTC_TIME, nullable=True),
        sa.Column("purged_through", UTC_TIME, nullable=True),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("metric", "metric_version", name="pk_label_join_progress"),
    )


def downgrade() -> None:
    op.drop_table("label_join_progress")
    op.drop_index("ix_label_held_labels_label_time_metric_metric_version",
                  table_name="label_held_labels")
    op.drop_index("ix_label_held_labels_label_id_metric_metric_version",
                  table_name="label_held_labels")
    op.drop_table("label_held_labels")
    op.drop_index("ix_label_held_predictions_prediction_id_metric_metric_version",
                  table_name="label_held_predictions")
    op.drop_index("ix_label_held_predictions_window_end_metric_metric_version",
                  table_name="label_held_predictions")
    op.drop_table("label_held_predictions")
