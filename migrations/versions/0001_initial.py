"""Initial schema: metric catalog, stage history, profiles, values, states, runs, dead letters.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from monitor.storage.types import SqliteFloat64

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)
# Values keep their exact bits: DOUBLE PRECISION on Postgres; on SQLite a type name
# without affinity, because a REAL column turns -0.0 into 0.
FLOAT64: sa.types.TypeEngine[float] = (
    sa.Double()
    .with_variant(postgresql.DOUBLE_PRECISION(), "postgresql")
    .with_variant(SqliteFloat64(), "sqlite")
)
AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
STAGES = "'research', 'batch', 'streaming'"


def upgrade() -> None:
    op.create_table(
        "metric_definitions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec_id", sa.String(64), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("window", sa.String(32), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_metric_definitions"),
        sa.UniqueConstraint("name", "version", name="uq_metric_definitions_name_version"),
        sa.CheckConstraint(f"stage IN ({STAGES})", name="ck_metric_definitions_stage_known"),
    )
    op.create_table(
        "stage_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(200), nullable=False),
        sa.Column("metric_version", sa.Integer(), nullable=False),
        sa.Column("from_stage", sa.String(16), nullable=True),
        sa.Column("to_stage", sa.String(16), nullable=False),
        sa.Column("changed_at", UTC_TIME, nullable=False),
        sa.Column("changed_by", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_stage_changes"),
        sa.ForeignKeyConstraint(
            ["metric", "metric_version"],
            ["metric_definitions.name", "metric_definitions.version"],
            name="fk_stage_changes_metric_metric_version",
        ),
        sa.CheckConstraint(f"to_stage IN ({STAGES})", name="ck_stage_changes_to_stage_known"),
    )
    op.create_index("ix_stage_changes_metric_changed_at", "stage_changes",
                    ["metric", "changed_at"])
    op.create_table(
        "reference_profiles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("profile_id", sa.String(64), nullable=False),
        sa.Column("profile", sa.Text(), nullable=False),
        sa.Column("fitted_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reference_profiles"),
        sa.UniqueConstraint("name", "profile_id", name="uq_reference_profiles_name_profile_id"),
    )
    op.create_index("ix_reference_profiles_name_fitted_at", "reference_profiles",
                    ["name", "fitted_at"])
    op.create_table(
        "metric_values",
        sa.Column("metric", sa.String(200), nullable=False),
        sa.Column("metric_version", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("window_start", UTC_TIME, nullable=False),
        sa.Column("segment", sa.Text(), nullable=False),
        sa.Column("field", sa.String(200), nullable=False),
        sa.Column("window_end", UTC_TIME, nullable=False),
        sa.Column("value", FLOAT64, nullable=True),  # NaN is stored as NULL
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("computed_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("metric", "metric_version", "stage", "window_start", "segment",
                                "field", name="pk_metric_values"),
        sa.CheckConstraint(f"stage IN ({STAGES})", name="ck_metric_values_stage_known"),
    )
    op.create_index("ix_metric_values_metric_stage_window_start", "metric_values",
                    ["metric", "stage", "window_start"])
    op.create_table(
        "metric_states",
        sa.Column("metric", sa.String(200), nullable=False),
        sa.Column("metric_version", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("window_start", UTC_TIME, nullable=False),
        sa.Column("segment", sa.Text(), nullable=False),
        sa.Column("window_end", UTC_TIME, nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("metric", "metric_version", "stage", "window_start", "segment",
                                name="pk_metric_states"),
        sa.CheckConstraint(f"stage IN ({STAGES})", name="ck_metric_states_stage_known"),
    )
    op.create_table(
        "batch_runs",
        sa.Column("id", AUTO_ID, nullable=False),
        sa.Column("metric", sa.String(200), nullable=False),
        sa.Column("metric_version", sa.Integer(), nullable=False),
        sa.Column("window_start", UTC_TIME, nullable=False),
        sa.Column("window_end", UTC_TIME, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rows_read", sa.BigInteger(), nullable=False),
        sa.Column("windows_written", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", UTC_TIME, nullable=False),
        sa.Column("finished_at", UTC_TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_batch_runs"),
    )
    op.create_index("ix_batch_runs_metric_started_at", "batch_runs", ["metric", "started_at"])
    op.create_table(
        "dead_letters",
        sa.Column("id", AUTO_ID, nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payload", sa.String(1000), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letters"),
    )
    op.create_index("ix_dead_letters_source_created_at", "dead_letters",
                    ["source", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_dead_letters_source_created_at", table_name="dead_letters")
    op.drop_table("dead_letters")
    op.drop_index("ix_batch_runs_metric_started_at", table_name="batch_runs")
    op.drop_table("batch_runs")
    op.drop_table("metric_states")
    op.drop_index("ix_metric_values_metric_stage_window_start", table_name="metric_values")
    op.drop_table("metric_values")
    op.drop_index("ix_reference_profiles_name_fitted_at", table_name="reference_profiles")
    op.drop_table("reference_profiles")
    op.drop_index("ix_stage_changes_metric_changed_at", table_name="stage_changes")
    op.drop_table("stage_changes")
    op.drop_table("metric_definitions")
