"""The tables, as SQLAlchemy 2 declarative models. Migrations in ``migrations/`` create them.

A test compares these models with a migrated database (Alembic's ``compare_metadata``),
so a change here without a new migration fails the suite.

Values and states use their natural key as the primary key: it is the upsert key, and
one index fewer keeps the write path fast. Their key carries the metric *version*, so
values of two definitions of a metric never mix.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from monitor.storage.types import Float64, UTCDateTime
from monitor.values import STAGES

NAME_LENGTH = 200  # metric, field, source and profile names
STAGE_LENGTH = 16
STATUS_LENGTH = 16
PAYLOAD_EXCERPT_CHARS = 1_000  # a dead letter keeps this much of the input
DEAD_LETTER_KEY_CHARS = 500  # a dead letter's key within its source (Kafka topics: 249)
ERROR_CHARS = 10_000  # a failed run keeps this much of its error

# Tables in the same database that other libraries own (APScheduler's job store);
# migrations neither create nor drop them, and the schema check ignores them.
FOREIGN_TABLES = frozenset({"apscheduler_jobs"})

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}

_STAGE_LIST = ", ".join(f"'{s}'" for s in STAGES)
AutoId = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER only


def _stage_check(column: str) -> CheckConstraint:
    return CheckConstraint(f"{column} IN ({_STAGE_LIST})", name=f"{column}_known")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class MetricDefinitionRow(Base):
    __tablename__ = "metric_definitions"
    __table_args__ = (UniqueConstraint("name", "version"), _stage_check("stage"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    version: Mapped[int] = mapped_column(Integer)
    spec_id: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    owner: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    description: Mapped[str] = mapped_column(Text)
    window: Mapped[str] = mapped_column(String(32))
    stage: Mapped[str] = mapped_column(String(STAGE_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StageChangeRow(Base):
    __tablename__ = "stage_changes"
    __table_args__ = (
        ForeignKeyConstraint(["metric", "metric_version"],
                             ["metric_definitions.name", "metric_definitions.version"]),
        Index(None, "metric", "changed_at"),
        _stage_check("to_stage"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    metric: Mapped[str] = mapped_column(String(NAME_LENGTH))
    metric_version: Mapped[int] = mapped_column(Integer)
    from_stage: Mapped[str | None] = mapped_column(String(STAGE_LENGTH))
    to_stage: Mapped[str] = mapped_column(String(STAGE_LENGTH))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    changed_by: Mapped[str] = mapped_column(String(NAME_LENGTH))
    reason: Mapped[str] = mapped_column(Text)
    # Changes into or out of streaming: the first window they apply to (monitor.stage_switch)
    effective_from: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ReferenceProfileRow(Base):
    __tablename__ = "reference_profiles"
    __table_args__ = (UniqueConstraint("name", "profile_id"), Index(None, "name", "fitted_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    profile_id: Mapped[str] = mapped_column(String(64))
    profile: Mapped[str] = mapped_column(Text)  # ReferenceProfile.to_json(): floats exact
    fitted_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MetricValueRow(Base):
    """One field of one (metric version, stage, segment, window). NaN is stored as NULL."""

    __tablename__ = "metric_values"
    __table_args__ = (
        # What the dashboard and exports ask for: a metric in a stage over a time range.
        Index(None, "metric", "stage", "window_start"),
        _stage_check("stage"),
    )

    metric: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    metric_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    stage: Mapped[str] = mapped_column(String(STAGE_LENGTH), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    segment: Mapped[str] = mapped_column(Text, primary_key=True)
    field: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    value: Mapped[float] = mapped_column(Float64, nullable=True)
    count: Mapped[int] = mapped_column(BigInteger)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MetricStateRow(Base):
    """The serialized state of one (metric version, stage, segment, window), for roll-ups."""

    __tablename__ = "metric_states"
    __table_args__ = (_stage_check("stage"),)

    metric: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    metric_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    stage: Mapped[str] = mapped_column(String(STAGE_LENGTH), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    segment: Mapped[str] = mapped_column(Text, primary_key=True)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[bytes] = mapped_column(LargeBinary)
    rows: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BatchRunRow(Base):
    __tablename__ = "batch_runs"
    __table_args__ = (Index(None, "metric", "started_at"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True)
    metric: Mapped[str] = mapped_column(String(NAME_LENGTH))
    metric_version: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(STATUS_LENGTH))
    rows_read: Mapped[int] = mapped_column(BigInteger)
    windows_written: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DeadLetterRow(Base):
    """Input a stage could not use. ``source_key`` identifies it within its source (a
    batch row's content hash, a Kafka topic/partition/offset), so a retry, a rerun or a
    replay stores it once; rows written before migration 0004 have none."""

    __tablename__ = "dead_letters"
    __table_args__ = (Index(None, "source", "created_at"),
                      Index(None, "source", "source_key", unique=True))

    id: Mapped[int] = mapped_column(AutoId, primary_key=True)
    source: Mapped[str] = mapped_column(String(NAME_LENGTH))
    source_key: Mapped[str | None] = mapped_column(String(DEAD_LETTER_KEY_CHARS))
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(String(PAYLOAD_EXCERPT_CHARS))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


def table_of(model: type[Base]) -> Table:
    """The Core table of a model, typed as one (``__table__`` is typed as a FromClause)."""
    table = model.__table__
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not mapped to a table")
    return table


class StreamCheckpointRow(Base):
    """How far the streaming stage has absorbed one source partition, durably.

    Written in the same transaction as the partition's partial states, so a worker that
    restarts (or takes the partition over) resumes exactly where the stored states end:
    events at or below ``offset`` are skipped. ``event_watermark`` is the partition's
    event watermark (it decides which events are late): its highest event time once the
    few highest are set aside, which ``event_time_top`` keeps (decimal nanoseconds,
    descending, comma-separated; see ``streaming.partition``). ``watermark`` is how far the
    partition lets windows close: the event watermark, or the wall clock minus the idle
    timeout while the partition is idle. ``owner`` is the worker that wrote it last
    (``HOST/PID``; None before migration 0007): what ``monitor stream status`` shows.
    """

    __tablename__ = "stream_checkpoints"

    topic: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    offset: Mapped[int] = mapped_column(BigInteger)  # -1: nothing absorbed yet
    watermark: Mapped[datetime | None] = mapped_column(UTCDateTime)
    event_watermark: Mapped[datetime | None] = mapped_column(UTCDateTime)
    events: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    event_time_top: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(NAME_LENGTH))


class StreamPartialRow(Base):
    """One source partition's share of an open streaming window.

    The stored value of a window is the merge of its partials over all partitions, made
    once every partition's watermark has passed the window's end plus its lateness; the
    partials are deleted in that same transaction. A ``correction`` holds the events a
    partition received after its idle mark had let the window close (migration 0009): it
    is merged into the stored state after the first value, in that transaction or a later
    one, so the first value never depends on when the partition resumed (see
    ``streaming.partition``).
    """

    __tablename__ = "stream_partials"

    metric: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    metric_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    segment: Mapped[str] = mapped_column(Text, primary_key=True)
    topic: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    correction: Mapped[bool] = mapped_column(Boolean, primary_key=True, server_default=false())
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[bytes] = mapped_column(LargeBinary)
    rows: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


# -- label joins in streaming (migration 0006) ------------------------------------------


class LabelHeldPredictionRow(Base):
    """A prediction of a metric joined to labels, held by the streaming stage until no label
    can change its window any more (see ``streaming.label_processor``).

    Keyed by where it came from (source partition, offset, the event's place in its
    message): stored in the transaction that stores the offset, so a replay or a retry
    holds it once. ``prediction_id`` is the join id as text (an int id as its decimal);
    ``payload`` the prediction's validated fields as canonical JSON, its time exact in
    ``event_time`` (nanoseconds). Deleted once every label partition has passed the
    window's end plus the horizon.
    """

    __tablename__ = "label_held_predictions"
    # The selective column first: Postgres, misled before it analyzes a table that grows
    # fast, filtered every held row of a metric through an index led by (metric, version).
    __table_args__ = (Index(None, "window_end", "metric", "metric_version"),
                      Index(None, "prediction_id", "metric", "metric_version"))

    metric: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    metric_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    offset: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event: Mapped[int] = mapped_column(Integer, primary_key=True)
    prediction_id: Mapped[str | None] = mapped_column(Text)
    event_time: Mapped[int] = mapped_column(BigInteger)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    payload: Mapped[str] = mapped_column(Text)


class LabelHeldLabelRow(Base):
    """A label held for a metric joined to labels until every window it could be joined
    to is past its horizon; keyed and stored like :class:`LabelHeldPredictionRow`."""

    __tablename__ = "label_held_labels"
    __table_args__ = (Index(None, "label_id", "metric", "metric_version"),
                      Index(None, "label_time", "metric", "metric_version"))

    metric: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    metric_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    offset: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event: Mapped[int] = mapped_column(Integer, primary_key=True)
    label_id: Mapped[str] = mapped_column(Text)
    label_time: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[str] = mapped_column(Text)


class LabelForgottenPredictionRow(Base):
    """A prediction the streaming label join forgot (its window purged), by id and time
    only: a label that arrives later and could have joined it is a dead letter, one that
    could not is held (see ``streaming.label_store``). Kept until every label that could
    join it is too late for all the windows it could join, so bounded by the horizon."""

    __tablename__ = "label_forgotten_predictions"
    # named: the convention's names pass Postgres's 63 characters
    __table_args__ = (Index("ix_label_forgotten_id", "prediction_id", "metric",
                            "metric_version"),
                      Index("ix_label_forgotten_time", "event_time", "metric",
                            "metric_version"))

    metric: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    metric_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    offset: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event: Mapped[int] = mapped_column(Integer, primary_key=True)
    prediction_id: Mapped[str] = mapped_column(Text)
    event_time: Mapped[int] = mapped_column(BigInteger)


class LabelJoinProgressRow(Base):
    """How far the streaming stage has closed (valued) and purged the windows of a metric
    joined to labels. Its row is also the lock that keeps two workers from revising the
    same metric's windows at once (see ``streaming.label_store``)."""

    __tablename__ = "label_join_progress"

    metric: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    metric_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    closed_through: Mapped[datetime | None] = mapped_column(UTCDateTime)
    purged_through: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


# -- alerting (migration 0003) -----------------------------------------------------------

ALERT_STATUS_LENGTH = 16
CHANNEL_LENGTH = 32
KEY_LENGTH = 64


class AlertStateRow(Base):
    """Where one alert stands: a rule of a metric version on a segment, in a stage.

    ``last_window_start`` is the newest window evaluated; a window at or before it is not
    evaluated again, so re-storing windows never repeats a transition. ``notified_at`` is
    when a firing (or repeat) notification was last queued, for the repeat interval.
    ``examples`` is what a firing assertion's reminder names below the detail.
    """

    __tablename__ = "alert_states"
    __table_args__ = (Index(None, "status"),)

    metric: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    metric_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    stage: Mapped[str] = mapped_column(String(STAGE_LENGTH), primary_key=True)
    rule: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    segment: Mapped[str] = mapped_column(Text, primary_key=True)
    status: Mapped[str] = mapped_column(String(ALERT_STATUS_LENGTH))
    consecutive: Mapped[int] = mapped_column(Integer)
    last_window_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_window_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    active_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    value: Mapped[float] = mapped_column(Float64, nullable=True)
    bound: Mapped[float] = mapped_column(Float64, nullable=True)
    detail: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(ALERT_STATUS_LENGTH))
    labels: Mapped[dict[str, str]] = mapped_column(JSON)
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # a firing assertion's example ids on its last window (monitor.alerts.examples), for
    # the reminders the dispatcher builds from this row; None for other metrics
    examples: Mapped[str | None] = mapped_column(Text, nullable=True)


class AlertEventRow(Base):
    """Every transition of every alert (pending, firing, resolved, cleared): its history."""

    __tablename__ = "alert_events"
    __table_args__ = (Index(None, "at"), Index(None, "metric", "window_start"))

    id: Mapped[int] = mapped_column(AutoId, primary_key=True)
    metric: Mapped[str] = mapped_column(String(NAME_LENGTH))
    metric_version: Mapped[int] = mapped_column(Integer)
    stage: Mapped[str] = mapped_column(String(STAGE_LENGTH))
    rule: Mapped[str] = mapped_column(String(NAME_LENGTH))
    segment: Mapped[str] = mapped_column(Text)
    transition: Mapped[str] = mapped_column(String(ALERT_STATUS_LENGTH))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    value: Mapped[float] = mapped_column(Float64, nullable=True)
    bound: Mapped[float] = mapped_column(Float64, nullable=True)
    detail: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(ALERT_STATUS_LENGTH))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class AlertNotificationRow(Base):
    """The transactional outbox: a notification queued with the transition that caused it.

    ``key`` is its idempotency key. The dispatcher routes it (``routed_at``, ``outcome``:
    routed, silenced, muted or unrouted) into one delivery per channel.
    """

    __tablename__ = "alert_notifications"
    __table_args__ = (UniqueConstraint("key"), Index(None, "routed_at"))

    id: Mapped[int] = mapped_column(AutoId, primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY_LENGTH))
    kind: Mapped[str] = mapped_column(String(ALERT_STATUS_LENGTH))
    metric: Mapped[str] = mapped_column(String(NAME_LENGTH))
    metric_version: Mapped[int] = mapped_column(Integer)
    stage: Mapped[str] = mapped_column(String(STAGE_LENGTH))
    rule: Mapped[str] = mapped_column(String(NAME_LENGTH))
    segment: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(ALERT_STATUS_LENGTH))
    labels: Mapped[dict[str, str]] = mapped_column(JSON)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    value: Mapped[float] = mapped_column(Float64, nullable=True)
    bound: Mapped[float] = mapped_column(Float64, nullable=True)
    detail: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    routed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(ALERT_STATUS_LENGTH))
    silence_id: Mapped[int | None] = mapped_column(AutoId)


class AlertDeliveryRow(Base):
    """One notification on one channel: pending, sent, failed (and why), or silenced
    after it was routed (a silence created while it waited, e.g. during an outage).

    Deliveries sent together share a ``message_key`` (the message's idempotency key),
    fixed when the group is formed so that a retry is the same message.
    """

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        UniqueConstraint("notification_id", "channel"),
        ForeignKeyConstraint(["notification_id"], ["alert_notifications.id"]),
        Index(None, "status", "channel"),
    )

    id: Mapped[int] = mapped_column(AutoId, primary_key=True)
    notification_id: Mapped[int] = mapped_column(AutoId)
    channel: Mapped[str] = mapped_column(String(CHANNEL_LENGTH))
    status: Mapped[str] = mapped_column(String(ALERT_STATUS_LENGTH))
    message_key: Mapped[str | None] = mapped_column(String(KEY_LENGTH))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AlertSilenceRow(Base):
    """Mutes matching alerts until ``ends_at`` (see :mod:`monitor.alerts.silences`)."""

    __tablename__ = "alert_silences"
    __table_args__ = (Index(None, "ends_at"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True)
    metric: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    segment: Mapped[str | None] = mapped_column(Text)
    labels: Mapped[dict[str, str]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(NAME_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
