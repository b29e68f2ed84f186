"""One local Spark (``local[2]``) for the whole test session: starting Spark takes
seconds, so the in-process Spark tests share it; the cluster tests start their own
processes.

Spark's Python workers import the metrics' per-event functions by module (examples.*,
tests.spark_app), so the repository's root goes on their PYTHONPATH.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.batch.spark_session import spark_session
from tests.spark.week import Week, write_week

ROOT = Path(__file__).resolve().parents[2]
TEST_SETTINGS = {
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "4",
    # a day's Parquet file (~1 MB) becomes several tasks, as a big one would on a cluster
    "spark.sql.files.maxPartitionBytes": "262144",
    "spark.sql.files.openCostInBytes": "0",
    "spark.driver.memory": "1g",
}


def with_root_on_pythonpath() -> None:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # tests stay on loopback
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(ROOT) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *paths])


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    with_root_on_pythonpath()
    session = spark_session("local[2]", TEST_SETTINGS)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def week(tmp_path_factory: pytest.TempPathFactory) -> Week:
    return write_week(tmp_path_factory.mktemp("spark_week"))
