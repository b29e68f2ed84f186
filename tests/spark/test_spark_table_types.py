"""Spark's JDBC rows become the frame one process reads, column for column: every
Postgres type the columnar read converts (integers of each width, ``real`` and its
arrays, NaN apart from NULL, -0.0 and infinities, ``text[]`` with NULL items, ``json``
and ``jsonb`` with integers past 64 bits, ``numeric`` with its scale, timestamps with and
without time zone) is read once through the single-process path and once through Spark,
and the two frames must be equal to the bit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from monitor.batch import postgres_columns
from monitor.batch.sources import SourceError, TableSource
from monitor.batch.spark_jdbc import JdbcConnection
from monitor.batch.spark_table_tasks import as_adbc_reads
from monitor.batch.spark_tables import SparkTableSource, time_predicates
from monitor.schema import Schema
from monitor.spec import StreamSpec
from tests.storage.conftest import throwaway_postgres

COLUMNS = """ts timestamptz not null, naive timestamp, i2 smallint, i4 int, i8 bigint,
    f4 real, f8 double precision, b bool, s text, l text[], j json, jb jsonb, n numeric,
    n2 numeric(10,3), fl real[], vc varchar(5), il int[]"""
ROWS = """
('2026-03-02 10:00:00.123456+00', '2026-03-02 10:00:00.5', 7, 1, 9007199254740993, 0.1,
 'NaN', true, 'héllo', '{a,"b c",NULL}', '["x", 1, 1.10]', '{"a": [1,2]}', 1.50, 2.5,
 '{0.1,NaN,NULL}', 'ab', '{1,NULL}'),
('2026-03-02 11:00:00+00', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL),
('2026-03-02 12:59:59.999999+00', '1969-12-31 23:59:59.999999', -32768, -3, -1,
 'Infinity', '-0.0', false, '', '{}', 'null', '12345678901234567890', 'NaN', -0.001, '{}',
 '', '{}'),
('2026-03-02 13:00:00+00', '2026-03-02 13:00:00', 0, 0, 0, '-Infinity', 1e308, true,
 'x', '{""}', '{"k": "\\u00e9"}', '[]', 123456789012345678901234567890.123456789, 0,
 '{3.4e38}', 'abcde', '{2}')
"""


@pytest.fixture(scope="module")
def odd_table() -> Iterator[sa.Engine]:
    with throwaway_postgres("monitor_spark_types") as url:
        engine = sa.create_engine(url)
        with engine.begin() as connection:
            connection.execute(sa.text(f"CREATE TABLE odd ({COLUMNS})"))
            connection.execute(sa.text(f"INSERT INTO odd VALUES {ROWS}"))
        yield engine
        engine.dispose()


def test_spark_rows_become_the_frame_one_process_reads(spark: Any,
                                                       odd_table: sa.Engine) -> None:
    query = sa.select(sa.table("odd", *map(sa.column, _names(odd_table))))
    with postgres_columns.open_read(odd_table, query) as read:
        assert read is not None
        local = pa.Table.from_batches(list(read.record_batches()), read.batches.schema)
        expected = postgres_columns.to_frame(local, read.zone)
    stream = StreamSpec("odd", Schema.parse({"i8": "int?"}), table="odd")
    source = SparkTableSource(spark, stream, odd_table)
    table_read = source._table_read(query)
    connection = JdbcConnection.of(odd_table.url)
    from monitor.batch.spark_tables import _read_options

    rows = (spark.read.options(**_read_options(table_read))
            .jdbc(connection.url, f"({postgres_columns.literal_sql(odd_table, query)}) AS q",
                  properties=connection.properties)).toArrow()
    assert rows.schema.field("n").type == pa.string()  # numeric read as text, not rounded
    found = pd.concat([postgres_columns.to_frame(pa.Table.from_batches([
        as_adbc_reads(batch, table_read).to_batches()[0]]), table_read.zone)
        for batch in rows.to_batches()], ignore_index=True)
    assert len(found) == len(expected) == 4
    assert list(found.columns) == list(expected.columns)
    assert found.dtypes.to_dict() == expected.dtypes.to_dict()
    # value by value: repr tells -0.0 from 0.0, a float from a Decimal, a NaN in a list
    # (which == does not: nan != nan), and a timestamp's zone
    for name in expected.columns:
        assert [repr(v) for v in found[name]] == [repr(v) for v in expected[name]], name


def test_the_time_predicates_split_every_row_into_exactly_one_task(spark: Any,
                                                                   odd_table: sa.Engine
                                                                   ) -> None:
    since = pd.Timestamp("2026-03-02T10:00Z")
    until = pd.Timestamp("2026-03-02T14:00Z")
    field = pa.field("ts", pa.timestamp("us", tz="UTC"))
    predicates = time_predicates(field, since, until, 4)  # edges 11:00, 12:00, 13:00
    assert len(predicates) == 4
    assert predicates[0].startswith('"ts" <') and predicates[-1].startswith('"ts" >=')
    connection = JdbcConnection.of(odd_table.url)
    rows = spark.read.option("driver", "org.postgresql.Driver").jdbc(
        connection.url, "(SELECT ts FROM odd) AS q", predicates=predicates,
        properties=connection.properties)
    assert rows.rdd.getNumPartitions() == 4
    found = rows.rdd.glom().map(lambda part: sorted(r.ts.isoformat() for r in part)).collect()
    # a row on an edge goes to the range it starts; the first and last ranges are open
    assert found == [["2026-03-02T10:00:00.123456"], ["2026-03-02T11:00:00"],
                     ["2026-03-02T12:59:59.999999"], ["2026-03-02T13:00:00"]]


def test_a_sqlite_table_is_refused_with_what_to_do(spark: Any, tmp_path: Any) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'events.sqlite'}")
    stream = StreamSpec("home", Schema.parse({"x": "float"}), table="home_events")
    with pytest.raises(SourceError, match=r"reads tables from Postgres.*--engine local"):
        SparkTableSource(spark, stream, engine)
    TableSource(engine, stream)  # one process takes it


def _names(engine: sa.Engine) -> list[str]:
    return [c["name"] for c in sa.inspect(engine).get_columns("odd")]


def test_a_session_without_the_jdbc_driver_says_how_to_give_it_one(
    spark: Any, odd_table: sa.Engine
) -> None:
    stream = StreamSpec("odd", Schema.parse({"i8": "int?"}), table="odd")
    source = SparkTableSource(spark, stream, odd_table)
    source._check_driver()  # this session has it (spark.jars)
    with pytest.raises(SourceError, match=r"cannot load.*libpostgresql-jdbc-java.*"
                                          r"MONITOR_POSTGRES_JDBC_JAR"):
        source._check_driver("org.example.NoSuchDriver")
