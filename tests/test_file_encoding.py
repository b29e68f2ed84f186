"""Bytes that are not UTF-8 are a rejected row with a reason, in every file format and
wherever event files are read (research run and backtest, `monitor batch load`, a batch
stream's files=); `monitor stream replay` is in tests/streaming/test_replay_encoding.py."""

from __future__ import annotations

import os
import subprocess
import sys
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
from monitor.values import read_values_csv

APP = ["--app", "tests.cli_app:mon"]
HEADER = b"ts,latency_ms,country\n"
GOOD = [b"2026-05-01T00:00:00Z,1.0,SE\n", b"2026-05-01T00:10:00Z,2.0,US\n",
        b"2026-05-01T00:20:00Z,3.0,SE\n"]
BAD_VALUE = b"2026-05-01T00:05:00Z,9.0,S\xffE\n"  # 0xFF inside a value
BAD_AND_LONG = b"2026-05-01T00:06:00Z,9.0,S\xffE,surplus\n"  # and a field too many


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, [*APP, *args], catch_exceptions=False)


def jsonl(country: bytes) -> bytes:
    return b'{"ts": "2026-05-01T00:05:00Z", "latency_ms": 9.0, "country": "' + country + b'"}\n'


def good_jsonl() -> list[bytes]:
    return [b'{"ts": "2026-05-01T00:%02d:00Z", "latency_ms": %d.0, "country": "%s"}\n'
            % (10 * i, i + 1, c) for i, c in enumerate([b"SE", b"US", b"SE"])]


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, Path]:
    """The same three good events, with a line of bad bytes, in each format."""
    files = {
        "csv": HEADER + GOOD[0] + BAD_VALUE + GOOD[1] + GOOD[2],
        "csv_long_row": HEADER + GOOD[0] + BAD_AND_LONG + GOOD[1] + GOOD[2],
        "jsonl": b"".join([good_jsonl()[0], jsonl(b"S\xffE"), *good_jsonl()[1:]]),
    }
    paths = {}
    for name, data in files.items():
        paths[name] = tmp_path / f"{name}.{'jsonl' if name == 'jsonl' else 'csv'}"
        paths[name].write_bytes(data)
    return paths


@pytest.mark.parametrize("name", ["csv", "csv_long_row", "jsonl"])
def test_the_reader_rejects_the_line_and_keeps_the_rest(bad_files: dict[str, Path],
                                                        name: str) -> None:
    read = read_events(bad_files[name])
    assert list(read.events["country"]) == ["SE", "US", "SE"]
    [reject] = read.rejects.to_dict("records")
    line = 2 if name == "jsonl" else 3  # a CSV's header is line 1
    assert reject["row"] == f"{bad_files[name].name}:{line}"
    assert reject["reason"] == "not UTF-8 text"
    assert "S\\xffE" in reject["excerpt"]


def test_a_bad_line_leaves_the_row_numbers_of_the_others_alone(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_bytes(HEADER + BAD_VALUE + GOOD[0] + b"2026-05-01T00:00:00Z,1.0\n")
    assert list(read_events(path).rejects["row"]) == ["e.csv:2", "e.csv:4"]


def test_a_header_that_is_not_utf8_is_an_error_that_says_so(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_bytes(b"ts,latency_ms,co\xffuntry\n" + GOOD[0])
    with pytest.raises(ValueError, match=r"header line of .* is not UTF-8 text"):
        read_events(path)


@pytest.mark.parametrize("name", ["csv", "csv_long_row", "jsonl"])
def test_research_run_and_backtest_reject_the_row_and_compute_the_rest(
        bad_files: dict[str, Path], name: str, tmp_path: Path) -> None:
    out = tmp_path / "values.csv"
    run = invoke("research", "run", "latency", "--data", str(bad_files[name]), "--no-store",
                 "--out", str(out))
    backtest = invoke("research", "backtest", "latency", "--data", str(bad_files[name]),
                      "--no-store")
    for result in (run, backtest):
        assert result.exit_code == 0, result.output
        assert "read 4 events" in result.stderr
        assert "used 3, rejected 1: 1 not UTF-8 text" in result.stderr
    values = read_values_csv(out)
    assert set(values["segment"]) == {"*", "country=SE", "country=US"}
    assert values.loc[values["segment"] == "*", "count"].iloc[0] == 3


def test_research_run_in_a_process_prints_no_traceback(bad_files: dict[str, Path]) -> None:
    """pyarrow used to fail inside its invalid-row callback on the bad bytes: Python
    printed 'Exception ignored' with a traceback, then the read failed."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [str(Path(sys.executable).parent / "monitor"), *APP, "research", "run", "latency",
         "--data", str(bad_files["csv_long_row"]), "--no-store"],
        capture_output=True, text=True, cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
        check=False)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
    assert "rejected 1: 1 not UTF-8 text" in done.stderr


def test_batch_load_rejects_the_row(bad_files: dict[str, Path], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'source.sqlite'}"
    result = invoke("batch", "load", str(bad_files["csv"]), "--stream", "home",
                    "--table", "home_events", "--source-url", url)
    assert result.exit_code == 0, result.output
    assert "loaded 3 events" in result.stdout and "1 rejected" in result.stdout
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        countries = conn.execute(sa.text("SELECT country FROM home_events")).scalars().all()
    engine.dispose()
    assert sorted(countries) == ["SE", "SE", "US"]


def test_a_batch_file_source_reads_past_the_bad_line(bad_files: dict[str, Path]) -> None:
    mon = Monitor()
    stream = mon.stream("home", schema={"latency_ms": "float", "country": "str"},
                        files=str(bad_files["jsonl"]))
    [chunk] = FileSource(stream).chunks(pd.Timestamp("2026-05-01T00:00:00Z"),
                                        pd.Timestamp("2026-05-02T00:00:00Z"))
    assert list(chunk["country"]) == ["SE", "US", "SE"]


def test_parquet_binary_values_are_text_when_utf8_and_rejected_otherwise(
        tmp_path: Path) -> None:
    path = tmp_path / "e.parquet"
    pq.write_table(pa.table({
        "ts": ["2026-05-01T00:00:00Z", "2026-05-01T00:05:00Z", "2026-05-01T00:10:00Z"],
        "latency_ms": [1.0, 9.0, 2.0],
        "country": pa.array([b"SE", b"S\xffE", "Göteborg".encode()], type=pa.binary()),
    }), path)
    out = tmp_path / "values.csv"
    result = invoke("research", "run", "latency", "--data", str(path), "--no-store",
                    "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "used 2, rejected 1: 1 field 'country' is not UTF-8 text" in result.stderr
    assert set(read_values_csv(out)["segment"]) == {"*", "country=SE", "country=Göteborg"}


@pytest.mark.parametrize("nan", [False, True], ids=["fast path", "slow path (a NaN)"])
def test_a_json_string_with_a_lone_surrogate_escape_is_a_rejected_line(
        tmp_path: Path, nan: bool) -> None:
    r"""json.loads keeps "\udc00" as a lone surrogate, which is no text (UTF-8 cannot
    hold it); pandas' reader dropped a lone high one silently ("S\ud800E" became "SE")
    and failed the whole read on a lone low one. A pair is one character, and kept."""
    path = tmp_path / "e.jsonl"
    lines = [jsonl(rb"S\ud800E"), good_jsonl()[0], jsonl(rb"\udc00"),
             jsonl(rb"\ud83d\ude00"), jsonl(rb"a\\ud800")]  # an emoji; an escaped backslash
    if nan:
        lines.append(b'{"ts": "2026-05-01T00:30:00Z", "latency_ms": NaN, "country": "SE"}\n')
    path.write_bytes(b"".join(lines))
    read = read_events(path)
    assert list(read.events["country"]) == ["SE", "\U0001f600", "a\\ud800", *(["SE"] * nan)]
    assert list(read.rejects["row"]) == ["e.jsonl:1", "e.jsonl:3"]
    assert set(read.rejects["reason"]) == {
        "malformed JSON: a string holds a lone surrogate escape (not text)"}
    assert read.rejects["excerpt"].iloc[0] == jsonl(rb"S\ud800E").decode().strip()
    result = invoke("research", "run", "latency", "--data", str(path), "--no-store")
    assert result.exit_code == 0, result.output
    assert (f"read {5 + nan} events from {path}; used 3, rejected {2 + nan}: 2 malformed "
            "JSON: a string holds a lone surrogate escape (not text)") in result.stderr
