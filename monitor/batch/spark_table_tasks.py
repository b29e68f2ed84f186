"""What a Spark task runs on rows Spark's JDBC source read from a Postgres table or query:
the frame the single-process read makes of the same rows, then the batch stage's engine
(:func:`monitor.batch.spark_tasks.absorb`).

One process reads Postgres through ADBC into Arrow and turns each chunk into a frame with
:func:`monitor.batch.postgres_columns.to_frame`, which converts each column by its
Postgres type. Spark hands its rows over in Arrow too, with Spark's types: an ``integer``
as int32, a ``real`` as float32, ``text[]`` as a list of strings, ``json`` and
``numeric`` as text (``numeric`` is read as text on purpose: Spark's decimal would round
it to 18 places), a ``timestamptz`` in microseconds, UTC. Each column is cast to the Arrow
type ADBC gives for it, with ADBC's field (the Postgres type in its metadata), and the
same ``to_frame`` makes the frame — so validation, dead-letter payloads and every state
see exactly the values one process sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from monitor.batch.postgres_columns import to_frame
from monitor.batch.spark_tasks import absorb, to_batch, unpack


@dataclass(frozen=True)
class TableRead:
    """How the rows of a slice's JDBC read become the single-process read's frames."""

    schema: pa.Schema  # ADBC's fields of the same query, Postgres types in their metadata
    zone: str  # the session TimeZone one process reads timestamptz in


def as_adbc_reads(batch: pa.RecordBatch, read: TableRead) -> pa.Table:
    """``batch`` (Spark's Arrow) with ADBC's types and fields, column by column."""
    columns = []
    for target in read.schema:
        column = batch.column(batch.schema.get_field_index(target.name))
        columns.append(_cast(column, target.type))
    return pa.Table.from_arrays(columns, schema=read.schema)


def _cast(column: pa.Array, target: pa.DataType) -> pa.Array:
    if isinstance(target, pa.ExtensionType):  # json, numeric: text in an extension type
        storage = column.cast(target.storage_type)
        return pa.ExtensionArray.from_storage(target, storage)
    return column.cast(target)


def table_task(plan_holder: Any, read: TableRead, batches: Iterator[pa.RecordBatch]
               ) -> Iterator[pa.RecordBatch]:
    """mapInArrow over a JDBC partition's rows (``plan_holder``: the job's broadcast
    :class:`~monitor.batch.spark_tasks.TaskPlan`)."""
    plan = unpack(plan_holder)
    frames = (to_frame(as_adbc_reads(batch, read), read.zone) for batch in batches)
    yield to_batch(absorb(plan, frames))


__all__ = ["TableRead", "as_adbc_reads", "table_task"]
