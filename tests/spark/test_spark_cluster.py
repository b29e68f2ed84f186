"""The Spark engine on a real standalone cluster — a master and two workers started from
pyspark's own scripts, the run made by ``monitor batch run --engine spark --master
spark://...`` in a process of its own, storing into Postgres: every example metric
identical to research's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from monitor.research import evaluate
from tests.spark.cluster import Cluster, standalone_cluster
from tests.spark.week import (
    END,
    START,
    Week,
    new_store,
    promote,
    stored_values,
)
from tests.spark_app import EVENTS_ENV, EXAMPLE_METRICS, OUTCOMES_ENV
from tests.storage.conftest import throwaway_postgres

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    env = {"PYTHONPATH": str(ROOT)}
    with standalone_cluster(2, tmp_path_factory.mktemp("spark_cluster"), env) as running:
        yield running


@pytest.fixture(scope="module")
def spark_conf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Spark's own defaults file for the command's driver: small executors, and a day's
    Parquet file split into several tasks."""
    folder = tmp_path_factory.mktemp("spark_conf")
    (folder / "spark-defaults.conf").write_text(
        "spark.executor.memory 512m\n"
        "spark.executor.cores 1\n"
        "spark.ui.enabled false\n"
        "spark.sql.files.maxPartitionBytes 262144\n"
        "spark.sql.files.openCostInBytes 0\n"
        "spark.driver.host 127.0.0.1\n")
    return folder


def batch_command(cluster: Cluster, week: Week, url: str, conf: Path, metrics: list[str]
                  ) -> tuple[list[str], dict[str, str]]:
    args = ["--app", "tests.spark_app:mon", "batch", "run", "--engine", "spark",
            "--master", cluster.master_url, "--database-url", url,
            "--since", START.isoformat(), "--until", END.isoformat()]
    for name in metrics:
        args += ["--metric", name]
    env = {EVENTS_ENV: week.events_glob, OUTCOMES_ENV: week.outcomes_path,
           "SPARK_CONF_DIR": str(conf), "PYTHONPATH": str(ROOT),
           "PYSPARK_PYTHON": sys.executable}
    return args, env


def research(week: Week, store_metric: str) -> pd.DataFrame:
    from tests.spark.week import mon, on_files

    metric = on_files(mon.get(store_metric), week)
    labels = week.labels if metric.labels is not None else None
    return evaluate(metric, week.events, reference=week.profile,
                    labels=labels).drop(columns="stage")


def test_a_standalone_cluster_stores_what_research_computes(
    cluster: Cluster, spark_conf: Path, week: Week
) -> None:
    with throwaway_postgres("monitor_spark_cluster") as url:
        store = new_store(url)
        promote(store, week)
        args, env = batch_command(cluster, week, url, spark_conf, list(EXAMPLE_METRICS))
        done = subprocess.run(
            [sys.executable, "-c", "from monitor.cli.main import cli; cli()", *args],
            cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout + done.stderr[-5000:]
        for name in EXAMPLE_METRICS:
            pd.testing.assert_frame_equal(stored_values(store, name), research(week, name),
                                          check_exact=True, check_dtype=False)
        assert f"{len(week.events):,} rows read" in done.stdout
        store.close()
