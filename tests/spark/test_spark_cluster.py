"""The Spark engine on a real standalone cluster — a master and two workers started from
pyspark's own scripts, the run made by ``monitor batch run --engine spark --master
spark://...`` in a process of its own, storing into Postgres: every example metric
identical to research's, though an executor is killed in the middle of the first job.

The kill is made certain, not raced: the run includes ``gated_latency`` (tests.spark_app),
whose tasks wait at a gate, a folder the test releases. The test reads which Python
worker holds a task, SIGKILLs the executor JVM that worker serves, then releases the
gate. Spark must run the lost task again on an executor still alive (or the one the
worker starts in its place) and the run must go on as if nothing happened: every slice
stored at its first try, every value identical. Killing into the parity run, rather than
a run of its own, costs the suite no second start of a cluster's executors (a minute and
more on a loaded machine).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from monitor.research import evaluate
from tests.spark.cluster import (
    Cluster,
    executor_id,
    executor_of,
    kill_and_wait,
    standalone_cluster,
)
from tests.spark.week import (
    END,
    START,
    Week,
    new_store,
    promote,
    stored_values,
)
from tests.spark_app import EVENTS_ENV, EXAMPLE_METRICS, GATE_ENV, OUTCOMES_ENV, RELEASE
from tests.storage.conftest import throwaway_postgres

ROOT = Path(__file__).resolve().parents[2]
HELD_WITHIN_S = 300.0  # the executors start, load the app and take their first tasks


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


def test_a_standalone_cluster_stores_what_research_computes_though_an_executor_dies(
    cluster: Cluster, spark_conf: Path, week: Week, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "spark-defaults.conf").write_text(
        (spark_conf / "spark-defaults.conf").read_text()
        + f"spark.executorEnv.{GATE_ENV} {gate}\n")
    names = [*EXAMPLE_METRICS, "gated_latency"]
    with throwaway_postgres("monitor_spark_cluster") as url:
        store = new_store(url)
        promote(store, week, names)
        args, env = batch_command(cluster, week, url, conf, names)
        out_path, err_path = tmp_path / "out.txt", tmp_path / "err.txt"
        with open(out_path, "w") as stdout, open(err_path, "w") as stderr:  # never fill up
            command = subprocess.Popen(
                [sys.executable, "-c", "from monitor.cli.main import cli; cli()", *args],
                cwd=ROOT, env={**os.environ, **env}, stdout=stdout, stderr=stderr)
        try:
            executor = executor_of(held_task(gate, command, err_path))
            assert executor in cluster.executor_pids()
            killed = executor_id(executor)
            kill_and_wait(executor)
        finally:
            (gate / RELEASE).touch()
            try:
                command.wait(timeout=900)
            finally:
                command.kill()
        out, err = out_path.read_text(), err_path.read_text()
        assert command.returncode == 0, out + err[-5000:]
        # Spark lost the executor with the held task, and ran that task again
        assert f"Lost executor {killed} on" in err, err[-5000:]
        lost = re.findall(rf"Lost task (\d+)\.0 in stage (\d+)\.0 .*executor {killed}\): "
                          "ExecutorLostFailure", err)
        assert lost, err[-5000:]
        # ... and the runner never saw a failure: each slice stored at its first try
        runs = store.recent_runs(limit=1000)
        assert len(runs) == len(names) * 7 and {r.status for r in runs} == {"succeeded"}
        for name in names:
            pd.testing.assert_frame_equal(stored_values(store, name), research(week, name),
                                          check_exact=True, check_dtype=False)
        assert f"{len(week.events):,} rows read" in out
        store.close()


def held_task(gate: Path, command: subprocess.Popen[bytes], log: Path) -> int:
    """The pid of the first Python worker that holds a task at the gate."""
    deadline = time.monotonic() + HELD_WITHIN_S
    while time.monotonic() < deadline:
        if started := sorted(gate.glob("started-*"), key=lambda p: p.stat().st_mtime_ns):
            return int(started[0].name.removeprefix("started-"))
        if command.poll() is not None:
            pytest.fail(f"the run ended before a task reached the gate:\n"
                        f"{log.read_text()[-5000:]}")
        time.sleep(0.1)
    pytest.fail(f"no task reached the gate in {HELD_WITHIN_S:g} s:\n{log.read_text()[-5000:]}")
