"""A stream names the engine (and Spark master) the batch stage computes it on; the
command line's --engine/--master override it. No JVM here: Spark's start is replaced by
one that says which master it was asked for, which is all these tests need to see."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import metrics
from monitor import Monitor
from monitor.batch import spark_session
from monitor.batch.engines import BatchEngine, EngineConflictError
from monitor.batch.schedule import run_scheduled_metric
from monitor.batch.sources import FileSource, SourceError, TableSource
from monitor.batch.spark_engine import SparkFileSource
from monitor.batch.spark_session import SparkUnavailableError
from monitor.cli.main import cli
from monitor.errors import DefinitionError
from monitor.storage.migrate import upgrade
from monitor.storage.store import SqlStore

MASTER = "spark://spark-master.invalid:7077"
SCHEMA = {"x": "float"}

app = Monitor("engines")
app.stream("on_spark", schema=SCHEMA, files="events.jsonl", engine="spark", master=MASTER)
app.stream("here", schema=SCHEMA, files="events.jsonl")  # in the working directory
app.metric("n_spark", "on_spark", metrics.count(), window="1h")
app.metric("n_here", "here", metrics.count(), window="1h")


class FakeSession:
    def __init__(self, master: str) -> None:
        self.master = master

    def stop(self) -> None:
        pass


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The masters Spark was started on (a stand-in session, no JVM)."""
    masters: list[str] = []

    def start(master: str = spark_session.DEFAULT_MASTER, conf: Any = None) -> FakeSession:
        masters.append(master)
        return FakeSession(master)
    monkeypatch.setattr(spark_session, "spark_session", start)
    return masters


@pytest.fixture
def refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spark's start fails saying which master it was asked for."""
    def start(master: str = spark_session.DEFAULT_MASTER, conf: Any = None) -> None:
        raise SparkUnavailableError(f"asked to start Spark on {master}")
    monkeypatch.setattr(spark_session, "spark_session", start)


def test_a_stream_names_its_engine_and_master() -> None:
    stream = app.streams["on_spark"]
    assert (stream.engine, stream.master) == ("spark", MASTER)
    assert stream.to_dict()["engine"] == "spark"
    plain = app.streams["here"]
    assert "engine" not in plain.to_dict() and "master" not in plain.to_dict()
    # where it is computed decides no value: the metric keeps its id
    other = Monitor("other")
    other.stream("on_spark", schema=SCHEMA, files="events.jsonl")
    other.metric("n_spark", "on_spark", metrics.count(), window="1h")
    assert other.get("n_spark").id == app.get("n_spark").id


def test_a_bad_engine_or_a_master_without_spark_is_refused_at_registration() -> None:
    mon = Monitor("bad")
    with pytest.raises(DefinitionError, match=r"stream 'a'.*engine='dask' is not one of"):
        mon.stream("a", schema=SCHEMA, engine="dask")
    with pytest.raises(DefinitionError, match=r"stream 'b'.*master= .*needs engine='spark'"):
        mon.stream("b", schema=SCHEMA, master=MASTER)


def test_the_command_line_overrides_the_streams_choice() -> None:
    spark, here = app.streams["on_spark"], app.streams["here"]
    assert BatchEngine().choice(spark) == ("spark", MASTER)
    assert BatchEngine().choice(here) == ("local", "local[*]")
    assert BatchEngine("local").choice(spark)[0] == "local"
    assert BatchEngine("spark").choice(here) == ("spark", "local[*]")
    assert BatchEngine(master="local[2]").choice(spark) == ("spark", "local[2]")


def test_each_stream_gets_its_engines_source(started: list[str], tmp_path: Path) -> None:
    sources = BatchEngine().sources(None)
    assert isinstance(sources(app.streams["here"]), FileSource)
    assert isinstance(sources(app.streams["on_spark"]), SparkFileSource)
    assert started == [MASTER]
    # on Spark, a table is read from Postgres; one in SQLite is refused with what to do
    mon = Monitor("tables")
    table = mon.stream("t", schema=SCHEMA, table="events", engine="spark")
    sqlite = sa.create_engine(f"sqlite:///{tmp_path / 'events.sqlite'}")
    with pytest.raises(SourceError, match="reads tables from Postgres"):
        BatchEngine(master=MASTER).sources(sqlite)(table)
    assert isinstance(BatchEngine("local").sources(sqlite)(table), TableSource)


def test_streams_on_two_masters_in_one_process_are_refused(started: list[str]) -> None:
    mon = Monitor("two")
    first = mon.stream("first", schema=SCHEMA, files="a.jsonl", engine="spark")
    second = mon.stream("second", schema=SCHEMA, files="b.jsonl", engine="spark",
                        master=MASTER)
    sources = BatchEngine().sources(None)
    sources(first)
    with pytest.raises(EngineConflictError, match=r"stream 'second'.*'spark://.*already "
                                                   r"runs Spark on 'local\[\*\]'.*--master"):
        sources(second)
    assert started == ["local[*]"]
    sources = BatchEngine(master="local[2]").sources(None)  # one master named for the run
    sources(first), sources(second)


@pytest.fixture
def store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps({"ts": f"2026-03-02T0{h}:30:00Z", "x": 1.0}) + "\n"
                              for h in range(3)))
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    upgrade(url)
    with SqlStore.open(url) as store:
        for name in ("n_spark", "n_here"):
            version = store.register_metric(app.get(name)).version
            store.record_stage_change(name, version, "batch", by="test", reason="engines")
    yield url


def test_batch_run_computes_a_stream_where_it_says_unless_told(
    refused: None, store_url: str
) -> None:
    def run(*options: str) -> Any:
        return CliRunner().invoke(cli, ["--app", "tests.test_batch_engines:app", "batch", "run",
                                        "--database-url", store_url, "--until",
                                        "2026-03-02T03:00Z", *options])
    on_spark = run("--metric", "n_spark")
    assert on_spark.exit_code == 1 and f"asked to start Spark on {MASTER}" in on_spark.output
    assert run("--metric", "n_spark", "--master", "local[3]").output.count("local[3]") == 1
    here = run("--metric", "n_spark", "--engine", "local")
    assert here.exit_code == 0, here.output
    assert "n_spark v1: 3 windows" in here.output
    assert run("--metric", "n_here").exit_code == 0


def test_the_scheduler_computes_a_stream_where_it_says(refused: None, store_url: str) -> None:
    run_scheduled_metric("tests.test_batch_engines:app", "n_spark", store_url)
    with SqlStore.open(store_url) as store:
        [failed] = store.recent_runs("n_spark", limit=10)
    assert failed.status == "failed" and f"asked to start Spark on {MASTER}" in (failed.error
                                                                                 or "")
