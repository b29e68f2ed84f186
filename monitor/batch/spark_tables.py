"""A stream's Postgres table (``table=``) or query (``query=``) read and computed by Spark.

For each slice the runner asks for, :class:`SparkTableSource` runs one Spark job:

- Spark's JDBC source reads the very SELECT one process reads
  (:meth:`~monitor.batch.sources.TableSource.range_query`: the stream's columns, the
  slice's time filter in its WHERE clause, so Postgres reads only the slice's rows, by the
  time index), split into one partition per core by predicates on the time column, each
  partition a task with its own connection. The first predicate is open below and the last
  open above, so every row of the slice falls in exactly one partition whatever the
  comparison's time zone;
- each task casts Spark's Arrow batches back to the types one process reads
  (:mod:`monitor.batch.spark_table_tasks`) and runs the batch stage's engine over them;
- the states are merged per key on the executors and stored by the runner, as for files
  (:mod:`monitor.batch.spark_engine`).

What one process reads is the reference: the columns' Arrow types and the session's time
zone come from an empty read of the same query through the columnar path, and the JDBC
sessions are put in that time zone (a ``query=`` that renders or truncates times gives
the same rows). A column type that path cannot mirror (a ``date``, a ``uuid``, ...) is
refused with what to do: cast it in a ``query=``. Only Postgres: a SQLite table is a file
on the driver's machine, which executors elsewhere cannot read.

The earliest event time (a first run's start) is asked of the database by the driver, as
one process asks it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import pairwise
from typing import Any

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from psycopg import sql

from monitor.batch import postgres_columns
from monitor.batch.query_source import QuerySource
from monitor.batch.slice_states import SliceStates
from monitor.batch.sources import SourceError, TableSource
from monitor.batch.spark_engine import SparkJobError, merged_states, run_job, slice_states
from monitor.batch.spark_jdbc import DRIVER_CLASS, JdbcConnection, missing_driver_hint
from monitor.batch.spark_table_tasks import TableRead, table_task
from monitor.batch.spark_tasks import OUTPUT_DDL, StateMerger, TaskPlan
from monitor.errors import first_line
from monitor.spec import MetricSpec, StreamSpec

# Partitions (and so connections at once) of a slice's read at most: a day slice's rows
# spread over a big cluster's every core would open more connections than Postgres takes
# by default (max_connections = 100) for little gain, the database's disks being shared.
MAX_PARTITIONS = 16
FETCH_ROWS = 10_000  # rows a JDBC connection fetches at a time (PgJDBC reads all without)
# Postgres types Spark's JDBC source reads as the columnar path does, once cast
# (numeric read as text: Spark's decimal would round it).
_READABLE = (postgres_columns.AS_ARROW | postgres_columns.AS_LISTS
             | {"json", "jsonb", "numeric"})


@dataclass
class SparkTableSource:
    """A stream's table or query in Postgres, read by Spark's executors over JDBC."""

    spark: Any  # a pyspark.sql.SparkSession (see monitor.batch.spark_session)
    stream: StreamSpec
    database: sa.Engine
    partitions: int | None = None  # per slice; None: the default parallelism, at most 16
    _local: TableSource | QuerySource = field(init=False, repr=False)
    _read: TableRead | None = field(default=None, init=False, repr=False)
    _driver_checked: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        name = self.stream.name
        if self.database.dialect.name != "postgresql":
            raise SourceError(
                f"stream {name!r}: the Spark engine reads tables from Postgres, and this "
                f"one is in {self.database.dialect.name} "
                f"({self.database.url.render_as_string(hide_password=True)}), a file Spark's "
                "executors cannot reach; run it with --engine local, or give the stream "
                "files= (Parquet) for Spark")
        if self.stream.table:
            self._local = TableSource(self.database, self.stream)
        elif self.stream.query:
            self._local = QuerySource(self.database, self.stream)
        else:
            raise SourceError(f"stream {name!r} declares no table= or query=")

    def check(self) -> None:
        self._local.check()
        self._check_driver()

    def earliest(self) -> pd.Timestamp | None:
        return self._local.earliest()

    def states(self, metrics: Sequence[MetricSpec], since: pd.Timestamp,
               until: pd.Timestamp, labels: pd.DataFrame | None) -> SliceStates:
        from pyspark import cloudpickle

        context = self.spark.sparkContext
        names = ", ".join(m.name for m in metrics)
        merger = StateMerger({m.name: m.aggregate for m in metrics})

        def job() -> list[Any]:
            plan = context.broadcast(cloudpickle.dumps(
                TaskPlan(tuple(metrics), since, until, False, labels)))
            try:
                rows, read = self.rows(since, until)
                records = rows.mapInArrow(partial(table_task, plan, read), OUTPUT_DDL)
                context.setJobDescription(f"batch {names}: {since} to {until}")
                return merged_states(context, [records.rdd.map(tuple)], merger)
            finally:
                plan.destroy()

        merged = run_job(f"the slice {since} to {until} of {names}", job)
        return slice_states(metrics, dict(merged))

    def rows(self, since: pd.Timestamp, until: pd.Timestamp) -> tuple[Any, TableRead]:
        """The rows of ``[since, until)`` as a Spark DataFrame of the JDBC source (a
        partition per time predicate), and how a task makes them one process's frames."""
        query = self._local.range_query(since, until)
        read = self._table_read(query)
        if not self._driver_checked:  # the runner checks its sources; this for others
            self._check_driver()
        connection = JdbcConnection.of(self.database.url)
        slice_sql = postgres_columns.literal_sql(self.database, query)
        parts = self.partitions or min(MAX_PARTITIONS,
                                       self.spark.sparkContext.defaultParallelism)
        predicates = time_predicates(read.schema.field(self.stream.time), since, until, parts)
        rows = (self.spark.read.options(**_read_options(read))
                .jdbc(connection.url, f"({slice_sql}) AS slice", predicates=predicates,
                      properties=connection.properties))
        return rows, read

    def _table_read(self, query: sa.Select[Any]) -> TableRead:
        """The Arrow fields and time zone one process reads the query's rows with (read
        once: a table's columns do not change under a run)."""
        if self._read is not None:
            return self._read
        what = f"the source of stream {self.stream.name!r}"
        try:
            with postgres_columns.open_read(self.database, query.limit(0)) as opened:
                if opened is None:
                    raise SourceError(
                        f"{what} has a column of a type the Spark engine cannot read as one "
                        "process does (a date, a uuid, an interval, ...); declare the stream "
                        "with a query= that casts it (to text, say), or run it with "
                        "--engine local")
                schema = opened.batches.schema
                for _ in opened.record_batches():
                    pass
                zone = opened.zone
        except (postgres_columns.Error, postgres_columns.ReadFailed) as err:
            raise SourceError(f"reading {what} failed: {first_line(err)}") from err
        odd = [f"{f.name} ({_type_name(f)})" for f in schema if _type_name(f) not in _READABLE]
        if odd:
            raise SourceError(f"{what}: the Spark engine cannot read {', '.join(odd)} as one "
                              "process does; cast it in a query= or run with --engine local")
        self._read = TableRead(schema, zone)
        return self._read

    def _check_driver(self, driver: str = DRIVER_CLASS) -> None:
        """That Spark can load the JDBC driver; else a SourceError that says how to give it
        one (a task would fail with a bare ClassNotFoundException)."""
        jvm = self.spark.sparkContext._jvm
        try:
            jvm.org.apache.spark.util.Utils.classForName(driver, True, False)
            self._driver_checked = True
        except Exception as err:
            if "ClassNotFoundException" in str(err):
                raise SourceError(f"stream {self.stream.name!r}: "
                                  f"{missing_driver_hint()}") from None
            raise SparkJobError(f"Spark could not check for the JDBC driver: "
                                f"{first_line(err)}") from None


def time_predicates(time: pa.Field, since: pd.Timestamp, until: pd.Timestamp,
                    parts: int) -> list[str]:
    """``parts`` WHERE clauses on the time column that split ``[since, until)`` into equal
    ranges, the first open below and the last open above (see the module); one clause
    that holds every row when the column's type gives no order to split by (text)."""
    kind = time.type
    if not (pa.types.is_timestamp(kind) or pa.types.is_integer(kind)
            or pa.types.is_floating(kind) or _type_name(time) == "numeric"):
        return ["TRUE"]
    step = (until - since) / max(1, parts)
    edges = [(since + step * i).floor("ms") for i in range(1, max(1, parts))]
    column = sql.Identifier(time.name).as_string(None)
    bounds = [_literal(kind, edge) for edge in dict.fromkeys(edges)]
    if not bounds:
        return ["TRUE"]
    clauses = [f"{column} < {bounds[0]}"]
    clauses += [f"{column} >= {low} AND {column} < {high}"
                for low, high in pairwise(bounds)]
    return [*clauses, f"{column} >= {bounds[-1]}"]


def _literal(kind: pa.DataType, edge: pd.Timestamp) -> str:
    """``edge`` as a literal of the time column's kind, as the slice's own bounds are
    (:func:`monitor.batch.sources.TableSource.range_query`)."""
    if pa.types.is_timestamp(kind):
        value: object = (edge.to_pydatetime() if kind.tz is not None
                         else edge.tz_convert(None).to_pydatetime())
    else:
        value = edge.value // 1_000_000  # epoch milliseconds
    return sql.Literal(value).as_string(None)


def _read_options(read: TableRead) -> dict[str, str]:
    text = [f.name for f in read.schema if _type_name(f) == "numeric"]
    options = {
        "driver": DRIVER_CLASS,
        "fetchsize": str(FETCH_ROWS),
        # a timestamp without time zone as Spark's timestamp_ntz: its wall-clock value as
        # stored, as one process reads it, not shifted by a JVM's zone
        "preferTimestampNTZ": "true",
        # the session in the zone one process reads in (see the module)
        "sessionInitStatement": f"SET TIME ZONE {sql.Literal(read.zone).as_string(None)}",
    }
    if text:
        options["customSchema"] = ", ".join(f"`{_backticked(name)}` STRING" for name in text)
    return options


def _backticked(name: str) -> str:
    return name.replace("`", "``")


def _type_name(field: pa.Field) -> str:
    return (field.metadata or {}).get(postgres_columns.TYPE_NAME_KEY, b"").decode()


__all__ = ["SparkTableSource", "time_predicates"]
