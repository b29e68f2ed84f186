"""A Spark job that fails stores nothing of its slice: the days before it are stored as
one process stores them, the failed day and those after it not at all (no window, no
state, no dead letter), its runs are recorded as failed with the cause, and the
watermark stays where the next run must start."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from monitor.batch.runner import BatchRunError, Retry
from monitor.batch.sources import FileSource
from monitor.batch.spark_engine import SparkFileSource
from tests.spark.week import (
    START,
    Week,
    new_store,
    promote,
    run_batch,
    stored_states,
    stored_values,
)
from tests.spark_app import FAILING_DAY

DAY = pd.Timedelta(days=1)


def test_a_metric_failing_on_one_days_data_stores_nothing_of_that_day(
    spark: Any, week: Week, tmp_path: Path
) -> None:
    single = new_store(f"sqlite:///{tmp_path / 'single.sqlite'}")
    on_cluster = new_store(f"sqlite:///{tmp_path / 'spark.sqlite'}")
    names = ["latency", "breaks_on_day_3"]
    until = FAILING_DAY + 2 * DAY
    [local_latency, _] = promote(single, week, names)
    run_batch(single, [local_latency], FileSource, until=FAILING_DAY)
    targets = promote(on_cluster, week, names)
    with pytest.raises(BatchRunError) as failed:
        run_batch(on_cluster, targets, lambda s: SparkFileSource(spark, s), until=until,
                  retry=Retry(attempts=2, backoff_seconds=0))
    # the cause, from the Python worker's traceback, not Spark's JVM stack
    assert "injected failure on the third day's events" in str(failed.value)
    assert "JVM" not in str(failed.value)
    for target in targets:
        name = target.metric.name
        values = stored_values(on_cluster, name)
        assert len(values) and values["window_start"].max() < FAILING_DAY
        assert on_cluster.succeeded_until(name, target.version) == FAILING_DAY
        runs = on_cluster.recent_runs(name, limit=100)
        assert sorted(r.status for r in runs) == ["failed", "failed", "succeeded",
                                                  "succeeded"]
        assert all("injected failure" in (r.error or "") for r in runs if r.status == "failed")
        assert all(pd.Timestamp(r.window_start) == FAILING_DAY
                   for r in runs if r.status == "failed")
    # what was stored is what one process stores for those days
    pd.testing.assert_frame_equal(stored_values(on_cluster, "latency"),
                                  stored_values(single, "latency"), check_exact=True)
    assert stored_states(on_cluster, targets[0]) == stored_states(single, local_latency)
    single.close()
    on_cluster.close()


class VanishingFiles(SparkFileSource):
    """The stream's files, deleted on the second slice, after the driver listed them and
    before Spark read them."""

    slices = 0

    def _files(self) -> tuple[list[Path], list[Path]]:
        parquet, text = super()._files()
        if self._timeless_range is not None:  # past the first slice
            type(self).slices += 1
            if type(self).slices == 1:
                for path in parquet + text:
                    os.remove(path)
        return parquet, text


def test_a_source_vanishing_mid_run_stores_nothing_of_the_slice(
    spark: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from tests.spark.week import write_week

    week = write_week(tmp_path_factory.mktemp("vanishing"))
    store = new_store(f"sqlite:///{tmp_path_factory.mktemp('db') / 'spark.sqlite'}")
    targets = promote(store, week, ["latency"])
    with pytest.raises(BatchRunError) as failed:
        run_batch(store, targets, lambda s: VanishingFiles(spark, s), until=START + 3 * DAY,
                  retry=Retry(attempts=2, backoff_seconds=0))
    message = str(failed.value)
    # the first try met the files gone under Spark; the retry found none to list
    assert "no event file matches" in message, message
    values = stored_values(store, "latency")
    assert values["window_start"].max() == START + pd.Timedelta("23h")
    assert store.succeeded_until("latency", targets[0].version) == START + DAY
    errors = [r.error or "" for r in store.recent_runs("latency", limit=10)
              if r.status == "failed"]
    assert len(errors) == 2 and any("Spark failed computing the slice" in e
                                    for e in errors), errors
    store.close()
