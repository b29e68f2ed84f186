"""pyspark is an optional extra: without it the package, its command line and the batch
stage's own engine work, and asking for Spark says what to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.batch.engines import BatchEngine
from monitor.batch.spark_session import SparkUnavailableError, import_pyspark
from monitor.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]


def test_nothing_imports_pyspark_until_spark_is_asked_for() -> None:
    script = ("import sys\n"
              "import monitor.cli.main, monitor.batch.engines, monitor.batch.spark_engine\n"
              "import monitor.batch.schedule\n"
              "print('pyspark' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "False"


def test_without_pyspark_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # as if it were not installed
    with pytest.raises(SparkUnavailableError, match=r"pip install 'domain-monitor\[spark\]'"):
        import_pyspark()
    engine = BatchEngine("spark")
    with pytest.raises(SparkUnavailableError, match="java"):
        engine.session()


def test_batch_run_on_spark_without_pyspark_fails_with_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from monitor.storage.migrate import upgrade
    from monitor.storage.store import SqlStore
    from tests.spark_app import mon

    monkeypatch.setitem(sys.modules, "pyspark", None)
    sqlite_url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    upgrade(sqlite_url)
    with SqlStore.open(sqlite_url) as store:
        spec = mon.get("latency")
        version = store.register_metric(spec).version
        store.record_stage_change("latency", version, "batch", by="test", reason="spark")
    result = CliRunner().invoke(cli, ["--app", "tests.spark_app:mon", "batch", "run",
                                      "--engine", "spark", "--metric", "latency",
                                      "--database-url", sqlite_url])
    assert result.exit_code == 1, result.output
    assert "pip install 'domain-monitor[spark]'" in result.output
    assert "Traceback" not in result.output


def test_an_unknown_engine_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown batch engine 'dask': use one of local, spark"):
        BatchEngine("dask")
