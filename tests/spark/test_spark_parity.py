"""research == single-process batch == batch on Spark (``local[2]``), bit for bit.

The example week (a Parquet file a day, in row groups small enough that Spark splits each
day into several tasks) runs through every example metric — tails, drift, the drift
report, estimated performance, ranking, and the AUC joined to late click outcomes — once
in this process and once on Spark; the stored values must equal research's exactly, and
the two stores must hold the same states (byte for byte), runs and alert transitions.
A second week mixes in JSON lines and CSV days with bad lines and bad rows: Spark stores
the same values and the same dead letters, keyed the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from monitor.batch.sources import FileSource
from monitor.batch.spark_engine import SparkFileSource
from tests.spark.week import (
    DAYS,
    START,
    Week,
    assert_spark_equals_one_process,
    new_store,
    promote,
    run_batch,
    stored_states,
    stored_values,
    write_week,
)
from tests.storage.conftest import throwaway_postgres


def on_spark(spark: Any) -> Any:
    return lambda stream: SparkFileSource(spark, stream)


def test_every_example_metric_is_identical_in_research_batch_and_spark(
    spark: Any, week: Week, tmp_path: Path
) -> None:
    parquet = sorted(Path(week.events_glob).parent.glob("home-*.parquet"))
    assert spark.read.parquet(*map(str, parquet)).rdd.getNumPartitions() > DAYS
    single = new_store(f"sqlite:///{tmp_path / 'single.sqlite'}")
    with throwaway_postgres("monitor_spark") as url:
        on_cluster = new_store(url)
        local_targets = promote(single, week)
        spark_targets = promote(on_cluster, week)
        local_runs = run_batch(single, local_targets, FileSource)
        spark_runs = run_batch(on_cluster, spark_targets, on_spark(spark))
        assert_spark_equals_one_process(week, single, on_cluster, (local_targets, local_runs),
                                        (spark_targets, spark_runs))
        on_cluster.close()
    single.close()


BAD_LINES = [
    "{not json",
    json.dumps({"ts": "2026-03-03T10:00:00.000Z", "view_id": 1, "latency_ms": "slow"}),
    json.dumps({"ts": "yesterday", "view_id": 2, "latency_ms": 10.0}),
]


@pytest.fixture(scope="module")
def mixed_week(tmp_path_factory: pytest.TempPathFactory) -> Week:
    """A week whose second day is JSON lines (with bad lines) and third day CSV."""
    week = write_week(tmp_path_factory.mktemp("spark_mixed"), text_days=(1, 2))
    with open(Path(week.events_glob).parent / "home-1.jsonl", "a", encoding="utf-8") as out:
        out.write("\n".join(BAD_LINES) + "\n")
    return week


def test_json_lines_and_csv_days_give_the_same_values_and_dead_letters(
    spark: Any, mixed_week: Week, tmp_path: Path
) -> None:
    names = ["latency", "fav_rank", "feature_drift"]
    single = new_store(f"sqlite:///{tmp_path / 'single.sqlite'}")
    on_cluster = new_store(f"sqlite:///{tmp_path / 'spark.sqlite'}")
    local_targets = promote(single, mixed_week, names)
    spark_targets = promote(on_cluster, mixed_week, names)
    until = START + pd.Timedelta(days=3)
    local_runs = run_batch(single, local_targets, FileSource, until=until)
    spark_runs = run_batch(on_cluster, spark_targets, on_spark(spark), until=until)
    assert [(s.rows_read, s.rows_rejected) for s in spark_runs] == [
        (s.rows_read, s.rows_rejected) for s in local_runs]
    assert spark_runs[0].rows_rejected == len(BAD_LINES)
    for local, spark_target in zip(local_targets, spark_targets, strict=True):
        pd.testing.assert_frame_equal(stored_values(on_cluster, local.metric.name),
                                      stored_values(single, local.metric.name),
                                      check_exact=True)
        assert stored_states(on_cluster, spark_target) == stored_states(single, local)

    def letters(store: Any) -> list[tuple[object, ...]]:
        return sorted((d.source, d.reason) for d in store.recent_dead_letters(limit=1000))

    # The same rows refused for the same reasons. (Their payloads, and so their keys, can
    # differ: one process renders a JSON row with the column types of every file of the
    # glob read together, a Spark task with those of its file alone.)
    found = letters(on_cluster)
    assert found == letters(single)
    source = f"batch:{mixed_week.events_glob}"
    assert found == sorted([(source, "malformed JSON: Expecting property name enclosed in "
                                     "double quotes"),
                            (source, "field 'user_id' is null"),
                            (source, "unparseable timestamp in ts")])
    single.close()
    on_cluster.close()


def test_a_run_without_a_range_starts_at_the_earliest_event_of_the_files(
    spark: Any, week: Week
) -> None:
    from tests.spark.week import mon, on_files

    source = SparkFileSource(spark, on_files(mon.get("latency"), week).stream)
    first = week.events["ts"].min()
    assert START <= first < START + pd.Timedelta("1h")
    assert source.earliest() == FileSource(source.stream).earliest() == first
