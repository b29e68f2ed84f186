"""research == single-process batch == batch on Spark (``local[2]``) from a Postgres
table, bit for bit; a job that fails stores nothing of its slice; the database password
shows nowhere Spark writes.

The example week is loaded into a Postgres table (its ranked lists as ``text[]``). Every
example metric runs over it once in this process (the columnar read) and once on Spark
(its JDBC source, each day split into a task per core by time predicates); the stored
values must equal research's over the same events, and the two stores must hold the same
states (byte for byte), runs and alert transitions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from monitor.batch.query_source import QuerySource
from monitor.batch.runner import BatchRunError, Retry
from monitor.batch.sources import TableSource
from monitor.batch.spark_jdbc import JdbcConnection
from monitor.batch.spark_tables import SparkTableSource
from monitor.batch.tables import load_events
from monitor.spec import MetricSpec
from monitor.targets import Target
from tests.spark.week import (
    START,
    Week,
    assert_spark_equals_one_process,
    new_store,
    promote,
    run_batch,
    stored_states,
    stored_values,
)
from tests.spark_app import FAILING_DAY, mon
from tests.storage.conftest import throwaway_postgres

TABLE = "home_events"
DAY = pd.Timedelta(days=1)
SECRET = "hunter2-not-for-logs"  # the local server trusts: any password connects


@pytest.fixture(scope="module")
def events_table(week: Week) -> Iterator[sa.Engine]:
    """The week's events in a Postgres table, reached with a URL that has a password."""
    with throwaway_postgres("monitor_spark_table") as url:
        engine = sa.create_engine(sa.make_url(url).set(password=SECRET))
        assert load_events(engine, mon.streams["home"], week.events, TABLE) == len(week.events)
        yield engine
        engine.dispose()


def on_table(targets: list[Target]) -> list[Target]:
    """The targets reading the events table instead of the files (labels stay files)."""
    def moved(metric: MetricSpec) -> MetricSpec:
        stream = dataclasses.replace(metric.stream, table=TABLE, files=None)
        return dataclasses.replace(metric, stream=stream)
    return [dataclasses.replace(t, metric=moved(t.metric)) for t in targets]


def test_every_example_metric_is_identical_in_research_batch_and_spark_from_a_table(
    spark: Any, week: Week, events_table: sa.Engine, tmp_path: Path
) -> None:
    single = new_store(f"sqlite:///{tmp_path / 'single.sqlite'}")
    on_spark = new_store(f"sqlite:///{tmp_path / 'spark.sqlite'}")
    local_targets = on_table(promote(single, week))
    spark_targets = on_table(promote(on_spark, week))
    local_runs = run_batch(single, local_targets, lambda s: TableSource(events_table, s))
    spark_runs = run_batch(on_spark, spark_targets,
                           lambda s: SparkTableSource(spark, s, events_table))
    assert_spark_equals_one_process(week, single, on_spark, (local_targets, local_runs),
                                    (spark_targets, spark_runs))
    single.close()
    on_spark.close()


def test_a_failing_job_on_a_table_stores_nothing_of_its_day(
    spark: Any, week: Week, events_table: sa.Engine, tmp_path: Path
) -> None:
    store = new_store(f"sqlite:///{tmp_path / 'spark.sqlite'}")
    targets = on_table(promote(store, week, ["latency", "breaks_on_day_3"]))
    with pytest.raises(BatchRunError) as failed:
        run_batch(store, targets, lambda s: SparkTableSource(spark, s, events_table),
                  until=FAILING_DAY + pd.Timedelta(days=1), retry=Retry(attempts=1))
    assert "injected failure on the third day's events" in str(failed.value)
    for target in targets:
        name = target.metric.name
        assert stored_values(store, name)["window_start"].max() < FAILING_DAY
        assert store.succeeded_until(name, target.version) == FAILING_DAY
        statuses = sorted(r.status for r in store.recent_runs(name, limit=10))
        assert statuses == ["failed", "succeeded", "succeeded"]
    store.close()


def test_the_password_shows_nowhere_spark_shows(spark: Any, events_table: sa.Engine) -> None:
    """The runs above reached the database with this password; here is what Spark shows
    of a slice's read."""
    assert events_table.url.password == SECRET
    connection = JdbcConnection.of(events_table.url)  # the password only as a property,
    assert SECRET not in connection.url + repr(connection)  # which Spark redacts
    assert connection.properties["password"] == SECRET
    # the slice's rows as Spark plans them: the plans as explain, the UI's SQL tab and
    # the event log show them (the relation's options among them), and Spark's settings
    stream = dataclasses.replace(mon.streams["home"], table=TABLE, files=None)
    rows, _ = SparkTableSource(spark, stream, events_table).rows(START, START + DAY)
    execution = rows._jdf.queryExecution()
    plans = execution.toString() + execution.analyzed().treeString() + \
        execution.executedPlan().treeString()
    assert "JDBCRelation((SELECT" in plans and "numPartitions=4" in plans, plans
    assert SECRET not in plans
    assert SECRET not in str(spark.sparkContext.getConf().getAll())


def test_a_query_stream_reads_in_the_time_zone_one_process_reads_in(
    spark: Any, week: Week, events_table: sa.Engine, tmp_path: Path
) -> None:
    """A query= whose values depend on the session's time zone (a segment named with the
    hour it renders) gives what one process gives with a session in another zone than
    the server's and the JVM's (UTC)."""
    names = list(mon.streams["home"].schema.names)
    columns = ", ".join("to_char(ts, 'TZ') || ' ' || country AS country" if name == "country"
                        else name for name in names)
    kolkata = sa.create_engine(events_table.url.update_query_dict(
        {"options": "-c TimeZone=Asia/Kolkata"}))

    def on_query(targets: list[Target]) -> list[Target]:
        return [dataclasses.replace(t, metric=dataclasses.replace(t.metric, stream=(
            dataclasses.replace(t.metric.stream, table=None, files=None,
                                query=f"SELECT {columns} FROM {TABLE}")))) for t in targets]

    single = new_store(f"sqlite:///{tmp_path / 'single.sqlite'}")
    on_spark = new_store(f"sqlite:///{tmp_path / 'spark.sqlite'}")
    until = START + pd.Timedelta(days=1)
    [local] = on_query(promote(single, week, ["fav_rank"]))
    [spark_target] = on_query(promote(on_spark, week, ["fav_rank"]))
    run_batch(single, [local], lambda s: QuerySource(kolkata, s), until=until)
    run_batch(on_spark, [spark_target], lambda s: SparkTableSource(spark, s, kolkata),
              until=until)
    values = stored_values(single, "fav_rank")
    assert {s.split()[0] for s in values["segment"] if s != "*"} == {"country=IST"}
    pd.testing.assert_frame_equal(stored_values(on_spark, "fav_rank"), values,
                                  check_exact=True)
    assert stored_states(on_spark, spark_target) == stored_states(single, local)
    kolkata.dispose()
    single.close()
    on_spark.close()
