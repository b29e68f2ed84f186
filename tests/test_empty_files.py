"""An event file with no events - 0 bytes, blank lines, a CSV header alone - reads as no
events in every format and wherever files are read: research and its backtest say they
read 0 events, `monitor batch load` loads none, a batch files= stream has nothing to run
(`monitor stream replay` is in tests/streaming/test_replay_cli.py). A 0-byte CSV used to
fail with 'Error: Empty CSV file'."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from monitor import Monitor
from monitor.batch.sources import FileSource
from monitor.cli.main import cli
from monitor.sources.files import read_events

APP = ["--app", "tests.cli_app:mon"]
EMPTY = {
    "empty.jsonl": b"",  # what the others should do as well
    "blank.jsonl": b"\n  \n",
    "empty.csv": b"",
    "blank.csv": b"\n\n",
    "header.csv": b"ts,latency_ms,country\n",
    "header-crlf.csv": b"ts,latency_ms,country\r\n",
}


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, [*APP, *args], catch_exceptions=False)


@pytest.fixture(params=[*EMPTY, "rows.parquet"])
def empty_file(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = tmp_path / request.param
    if path.suffix == ".parquet":
        pq.write_table(pa.table({"ts": pa.array([], pa.string()),
                                 "latency_ms": pa.array([], pa.float64())}), path)
    else:
        path.write_bytes(EMPTY[request.param])
    return path


def test_it_reads_as_no_events_and_no_rejects(empty_file: Path) -> None:
    read = read_events(empty_file)
    assert read.events.empty and read.rejects.empty


def test_research_run_and_backtest_say_they_read_no_events(empty_file: Path) -> None:
    run = invoke("research", "run", "latency", "--data", str(empty_file), "--no-store")
    backtest = invoke("research", "backtest", "latency", "--data", str(empty_file),
                      "--no-store")
    for result in (run, backtest):
        assert result.exit_code == 0, result.output
        assert f"read 0 events from {empty_file}; used 0\n" in result.stderr
    assert "no alert would have fired over no windows" in backtest.stdout


def test_batch_load_loads_nothing(empty_file: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'source.sqlite'}"
    result = invoke("batch", "load", str(empty_file), "--stream", "home", "--table", "events",
                    "--source-url", url)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("loaded 0 events into events")
    assert "rejected" not in result.stdout
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM events")).scalar() == 0
    engine.dispose()


def test_a_batch_file_source_has_nothing_to_run(empty_file: Path) -> None:
    stream = Monitor().stream("home", schema={"latency_ms": "float"}, files=str(empty_file))
    source = FileSource(stream)
    assert source.earliest() is None
    since, until = pd.Timestamp("2026-05-01T00:00:00Z"), pd.Timestamp("2026-05-02T00:00:00Z")
    assert all(chunk.empty for chunk in source.chunks(since, until))
    assert source.unparsed(since, until).empty


def test_an_empty_csv_beside_other_files_takes_nothing_from_them(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(b"")
    (tmp_path / "b.jsonl").write_bytes(b'{"ts": "2026-05-01T00:00:00Z", "latency_ms": 1.5}\n')
    read = read_events(tmp_path / "*")
    assert read.events.to_dict("records") == [{"ts": "2026-05-01T00:00:00Z",
                                               "latency_ms": 1.5}]
