"""A NaN is not a null: validation says "is NaN" for a NaN the source held and "is null"
for a null, whether the events come from JSON lines, CSV, Parquet or a SQL table."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from monitor.batch.sql_rows import read_rows
from monitor.cli.main import cli
from monitor.schema import SOURCE_NAN, Schema
from monitor.sources.files import read_events

SCHEMA = Schema.parse({"x": "float", "maybe": "float?", "rank": "int?", "country": "str?"})
TS = "2026-01-01T00:00:00Z"


def reasons(raw: pd.DataFrame) -> list[str | None]:
    """Each row's reason (None: clean), in row order."""
    clean, rejects = SCHEMA.validate(raw)
    by_row = dict(zip(rejects["row"], rejects["reason"], strict=True))
    assert len(clean) + len(rejects) == len(raw)
    return [by_row.get(row) for row in raw.index]


def test_null_nan_and_infinity_each_have_their_reason() -> None:
    raw = pd.DataFrame({
        "ts": [TS] * 8,
        "x": [1.0, None, SOURCE_NAN, math.inf, 1.0, 1.0, 1.0, 1.0],
        "maybe": [None, 1.0, 1.0, 1.0, SOURCE_NAN, 1.0, 1.0, 1.0],
        "rank": [None, 1, 1, 1, 1, SOURCE_NAN, 1, 1],
        "country": [None, "SE", "SE", "SE", "SE", "SE", SOURCE_NAN, "SE"],
    }, dtype=object)
    raw.loc[7, "ts"] = SOURCE_NAN
    assert reasons(raw) == [None, "field 'x' is null", "field 'x' is NaN",
                            "field 'x' is not finite", "field 'maybe' is NaN",
                            "field 'rank' is NaN", "field 'country' is NaN",
                            "field 'ts' is NaN"]


def test_a_plain_nan_in_a_frame_is_pandas_null() -> None:
    """A DataFrame a user passes writes null as NaN, in float and object columns alike."""
    raw = pd.DataFrame({"ts": [TS] * 3, "x": [1.0, float("nan"), 2.0],
                        "maybe": [float("nan")] * 3,
                        "country": pd.Series(["SE", float("nan"), float("nan")], dtype=object)})
    assert reasons(raw) == [None, "field 'x' is null", None]


def test_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text(f'{{"ts": "{TS}", "x": 1.5, "maybe": null}}\n'
                    f'{{"ts": "{TS}", "x": null}}\n'
                    f'{{"ts": "{TS}", "x": NaN}}\n'
                    f'{{"ts": "{TS}", "x": 2.5, "maybe": NaN}}\n'
                    f'{{"ts": "{TS}"}}\n')
    assert reasons(read_events(path).events) == [
        None, "field 'x' is null", "field 'x' is NaN", "field 'maybe' is NaN",
        "field 'x' is null"]


def test_a_nan_among_strings_is_nan_not_null(tmp_path: Path) -> None:
    """pandas 3 gives a column of strings its string dtype, whose only missing value is
    NaN-as-null: the NaN the source held must survive framing as itself, or it passes as
    a null (a NaN time was "missing" beside string times and "NaN" alone)."""
    path = tmp_path / "e.jsonl"
    path.write_text(f'{{"ts": "{TS}", "x": 1.0, "country": "SE"}}\n'
                    f'{{"ts": "{TS}", "x": 1.0, "country": NaN}}\n'
                    f'{{"ts": NaN, "x": 1.0, "country": "SE"}}\n'
                    f'{{"ts": "{TS}", "x": 1.0, "country": null}}\n')
    assert reasons(read_events(path).events) == [
        None, "field 'country' is NaN", "field 'ts' is NaN", None]


def test_csv(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text(f"ts,x,maybe,country\n{TS},1.5,,NaN\n{TS},,1,\n{TS},NaN,1,SE\n"
                    f"{TS},nan,NULL,SE\n{TS},2,NA,SE\n")
    events = read_events(path).events
    assert reasons(events) == [None, "field 'x' is null", "field 'x' is NaN",
                               "field 'x' is NaN", None]
    assert events.loc[0, "country"] == "NaN"  # text in a text column


def test_parquet(tmp_path: Path) -> None:
    path = tmp_path / "e.parquet"
    pq.write_table(pa.table({"ts": [TS] * 4,
                             "x": pa.array([1.0, None, math.nan, 2.0]),
                             "maybe": pa.array([None, None, None, math.nan])}), path)
    assert reasons(read_events(path).events) == [
        None, "field 'x' is null", "field 'x' is NaN", "field 'maybe' is NaN"]


def test_research_run_reports_nan_apart_from_null(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text("".join([
        f'{{"ts": "{TS}", "latency_ms": 1.0, "country": "SE"}}\n',
        f'{{"ts": "{TS}", "latency_ms": NaN, "country": "SE"}}\n',
        f'{{"ts": "{TS}", "latency_ms": null, "country": "SE"}}\n']))
    result = CliRunner().invoke(cli, ["--app", "tests.cli_app:mon", "research", "run",
                                      "latency", "--data", str(path), "--no-store"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert ("rejected 2: 1 field 'latency_ms' is NaN; 1 field 'latency_ms' is null"
            in result.stderr)


@pytest.fixture(params=["sqlite", "postgres"])
def source_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'source.sqlite'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def test_rows_of_a_sql_table(source_url: str) -> None:
    """As the batch stage fetches them (the driver's tuples): Postgres keeps a NaN apart
    from NULL; SQLite stores a NaN as NULL, so there both are null."""
    engine = sa.create_engine(source_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS nan_events"))
            conn.execute(sa.text("CREATE TABLE nan_events (n INTEGER, ts TEXT, x FLOAT, "
                                 "maybe FLOAT)"))
            conn.execute(sa.text("INSERT INTO nan_events VALUES (:n, :ts, :x, :maybe)"), [
                {"n": 0, "ts": TS, "x": 1.5, "maybe": None},
                {"n": 1, "ts": TS, "x": None, "maybe": 1.0},
                {"n": 2, "ts": TS, "x": math.nan, "maybe": 1.0},
                {"n": 3, "ts": TS, "x": 2.0, "maybe": math.nan}])
        table = sa.Table("nan_events", sa.MetaData(), autoload_with=engine)
        query = sa.select(table.c.ts, table.c.x, table.c.maybe).order_by(table.c.n)
        # the batch stage's own reader (monitor.batch.sql_rows), one chunk
        [frame] = list(read_rows(engine, query, chunk_rows=100, what="nan_events"))
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE nan_events"))
    finally:
        engine.dispose()
    got = reasons(frame)
    if engine.dialect.name == "postgresql":
        assert got == [None, "field 'x' is null", "field 'x' is NaN", "field 'maybe' is NaN"]
    else:
        assert got == [None, "field 'x' is null", "field 'x' is null", None]


def test_batch_load_stores_a_null_as_null(source_url: str) -> None:
    """`monitor batch load` (load_events) wrote a null float as NaN on pandas 3, which
    Postgres keeps as NaN: every null read back as 'is NaN' and was dead-lettered."""
    from monitor import Monitor
    from monitor.batch.tables import load_events

    mon = Monitor("nan-load")
    stream = mon.stream("events", schema={"x": "float?"}, table="nan_load")
    engine = sa.create_engine(source_url)
    try:
        load_events(engine, stream, pd.DataFrame({"ts": [TS, TS], "x": [1.5, None]}))
        with engine.begin() as conn:
            nulls = conn.exec_driver_sql(
                "SELECT COUNT(*) FROM nan_load WHERE x IS NULL").scalar()
            conn.exec_driver_sql("DROP TABLE nan_load")
    finally:
        engine.dispose()
    assert nulls == 1
