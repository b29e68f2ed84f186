"""Alerting: alert states, their history, the notification outbox, deliveries, silences.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from monitor.storage.types import SqliteFloat64

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)
FLOAT64: sa.types.TypeEngine[float] = (
    sa.Double()
    .with_variant(postgresql.DOUBLE_PRECISION(), "postgresql")
    .with_variant(SqliteFloat64(), "sqlite")
)
AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _alert_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("metric", sa.String(200), nullable=False),
        sa.Column("metric_version", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("segment", sa.Text(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "alert_states",
        *_alert_columns(),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("consecutive", sa.Integer(), nullable=False),
        sa.Column("last_window_start", UTC_TIME, nullable=True),
        sa.Column("last_window_end", UTC_TIME, nullable=True),
        sa.Column("active_since", UTC_TIME, nullable=True),
        sa.Column("value", FLOAT64, nullable=True),
        sa.Column("bound", FLOAT64, nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("notified_at", UTC_TIME, nullable=True),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("metric", "metric_version", "stage", "rule", "segment",
                                name="pk_alert_states"),
    )
    op.create_index("ix_alert_states_status", "alert_states", ["status"])
    op.create_table(
        "alert_events",
        sa.Column("id", AUTO_ID, nullable=False),
        *_alert_columns(),
        sa.Column("transition", sa.String(16), nullable=False),
        sa.Column("window_start", UTC_TIME, nullable=False),
        sa.Column("window_end", UTC_TIME, nullable=False),
        sa.Column("value", FLOAT64, nullable=True),
        sa.Column("bound", FLOAT64, nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_events"),
    )
    op.create_index("ix_alert_events_at", "alert_events", ["at"])
    op.create_index("ix_alert_events_metric_window_start", "alert_events",
                    ["metric", "window_start"])
    op.create_table(
        "alert_notifications",
        sa.Column("id", AUTO_ID, nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        *_alert_columns(),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("window_start", UTC_TIME, nullable=False),
        sa.Column("window_end", UTC_TIME, nullable=False),
        sa.Column("value", FLOAT64, nullable=True),
        sa.Column("bound", FLOAT64, nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("routed_at", UTC_TIME, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("silence_id", AUTO_ID, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alert_notifications"),
        sa.UniqueConstraint("key", name="uq_alert_notifications_key"),
    )
    op.create_index("ix_alert_notifications_routed_at", "alert_notifications", ["routed_at"])
    op.create_table(
        "alert_deliveries",
        sa.Column("id", AUTO_ID, nullable=False),
        sa.Column("notification_id", AUTO_ID, nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("message_key", sa.String(64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC_TIME, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("sent_at", UTC_TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alert_deliveries"),
        sa.UniqueConstraint("notification_id", "channel",
                            name="uq_alert_deliveries_notification_id_channel"),
        sa.ForeignKeyConstraint(["notification_id"], ["alert_notifications.id"],
                                name="fk_alert_deliveries_notification_id"),
    )
    op.create_index("ix_alert_deliveries_status_channel", "alert_deliveries",
                    ["status", "channel"])
    op.create_table(
        "alert_silences",
        sa.Column("id", AUTO_ID, nullable=False),
        sa.Column("metric", sa.String(200), nullable=True),
        sa.Column("segment", sa.Text(), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("ends_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_silences"),
    )
    op.create_index("ix_alert_silences_ends_at", "alert_silences", ["ends_at"])


def downgrade() -> None:
    op.drop_table("alert_silences")
    op.drop_table("alert_deliveries")
    op.drop_table("alert_notifications")
    op.drop_table("alert_events")
    op.drop_table("alert_states")
