"""Postgres read in columns (ADBC, COPY into Arrow) gives what the row path gives: the same
frames value for value (so the same validation, dead letters and stored values), NULLs,
NaN, time zones, text, lists and an empty range included; the time filter is in the
query, so the rows outside the range never leave the server. The one difference is where
a ``text[]`` column's lists are held: in Arrow (``list<string>``, for the ranking metrics
to read without a Python list per row), the same lists as the row path's Python lists."""

from __future__ import annotations

import json
import math
from collections.abc import Generator, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from monitor import Monitor
from monitor.batch import postgres_columns, sql_rows
from monitor.batch.idle_connections import IDLE
from monitor.batch.query_source import QuerySource
from monitor.batch.sources import SourceError, TableSource

# Every type a stream's schema takes from a table, and some it takes as text or numbers.
COLUMNS = """
    n integer NOT NULL, ts timestamptz, naive timestamp, big bigint, small smallint,
    x double precision, r real, flag boolean, label text, code varchar(8), fixed char(3),
    items json, tags jsonb, names text[], raw bytea, amount numeric
"""
ROW: dict[str, object] = {
    "n": 0, "ts": "2026-03-01 00:00:00+00", "naive": "2026-03-01 00:00:00", "big": 1,
    "small": 1, "x": 1.0, "r": 1.0, "flag": False, "label": "a", "code": "b", "fixed": "c",
    "items": '["a"]', "tags": '["b"]', "names": ["c"], "raw": b"d", "amount": "1"}
# rows 4 on: the first row with one or two values changed
CHANGES: list[dict[str, object]] = [
    {"r": math.inf}, {"items": '[1, "1"]'}, {"raw": b"\xff\xfe"},
    {"tags": '{"not": "a list"}'}, {"amount": "1e-30"}, {"x": -math.inf},
    {"big": None, "label": None}]
ROWS: list[dict[str, object]] = [
    {"n": 0, "ts": "2026-03-01 00:00:00+00", "naive": "2026-03-01 00:00:00", "big": 2**53 + 1,
     "small": -3, "x": 1.5, "r": 0.1, "flag": True, "label": "Malmö ☃", "code": "SE",
     "fixed": "ab", "items": '["home", "mix"]', "tags": '["a",  "b"]', "names": ["x", "y"],
     "raw": b"text", "amount": "1.50"},
    {"n": 1, "ts": "2026-03-01 05:30:00.123456+05:30", "naive": "2026-03-01 00:00:00.000001",
     "big": None, "small": None, "x": None, "r": None, "flag": None, "label": None,
     "code": None, "fixed": None, "items": None, "tags": None, "names": None, "raw": None,
     "amount": None},
    {"n": 2, "ts": "2026-03-01 12:00:00-08", "naive": "2026-03-01 23:59:59.999999", "big": -7,
     "small": 0, "x": math.nan, "r": math.inf, "flag": False, "label": "", "code": "",
     "fixed": "", "items": "[]", "tags": '{"not": "a list"}', "names": ["z", None],
     "raw": b"\xff\xfe", "amount": "NaN"},
    {"n": 3, "ts": None, "naive": None, "big": 0, "small": 1, "x": -math.inf, "r": -0.0,
     "flag": True, "label": "a\tb\nc", "code": "x", "fixed": "abc", "items": '[1, "1"]',
     "tags": "[]", "names": [], "raw": b"", "amount": "-0.000001"},
    *[{**ROW, "n": n, **change} for n, change in enumerate(CHANGES, start=4)],
]
# the schema a batch stream would declare over these columns
SCHEMA = {"n": "int", "naive": "str?", "big": "int?", "small": "int?", "x": "float?",
          "r": "float?", "flag": "bool?", "label": "str?", "code": "str?", "fixed": "str?",
          "items": "list[str]?", "tags": "list[str]?", "names": "list[str]?", "raw": "str?",
          "amount": "float?"}
ZONES = ["UTC", "America/Sao_Paulo", "Asia/Kolkata"]


def in_zone(url: str, zone: str) -> str:
    """The URL with the sessions' TimeZone set (libpq's options: both drivers take it)."""
    return make_url(url).update_query_dict({"options": f"-c TimeZone={zone}"}
                                           ).render_as_string(hide_password=False)


@pytest.fixture
def engine(postgres_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS columnar_events")
        conn.exec_driver_sql(f"CREATE TABLE columnar_events ({COLUMNS})")
        names = ", ".join(ROWS[0])
        values = ", ".join(f"%({name})s" for name in ROWS[0])
        conn.exec_driver_sql(f"INSERT INTO columnar_events ({names}) VALUES ({values})", ROWS)
    yield engine
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE columnar_events")
    engine.dispose()


def payloads(frame: pd.DataFrame) -> list[str]:
    """Each row as the batch stage writes a dead letter's payload (and hashes it for the
    letter's key): the value the reader gave, its type included."""
    return [json.dumps(row, default=str) for row in frame.to_dict("records")]


def python_types(frame: pd.DataFrame) -> list[list[str]]:
    return [[type(v).__name__ for v in row] for row in frame.itertuples(index=False)]


def both_paths(engine: sa.Engine, query: sa.Select[Any], chunk_rows: int
               ) -> tuple[list[pd.DataFrame], list[pd.DataFrame]]:
    columnar = list(sql_rows.read_rows(engine, query, chunk_rows, "columnar_events"))
    rows = list(sql_rows.row_by_row(engine, query, chunk_rows))
    return columnar, rows


ARROW_LISTS = pd.ArrowDtype(pa.list_(pa.string()))


def as_python_lists(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its Arrow lists as the row path holds lists: Python lists, None for
    a null, in an object column."""
    frame = frame.copy()
    for name in frame.columns:
        if frame[name].dtype == ARROW_LISTS:
            lists = np.empty(len(frame), dtype=object)
            lists[:] = frame[name].array.__arrow_array__().to_pylist()
            frame[name] = lists
    return frame


def assert_same_frames(columnar: list[pd.DataFrame], rows: list[pd.DataFrame]) -> None:
    assert [len(c) for c in columnar] == [len(r) for r in rows]
    for ours, theirs in zip(columnar, rows, strict=True):
        assert list(ours.columns) == list(theirs.columns)
        assert payloads(ours) == payloads(theirs)
        in_arrow = {name for name in ours.columns if ours[name].dtype == ARROW_LISTS}
        # the text[] column, unless the chunk holds only nulls (a column of Nones then)
        assert in_arrow == ({"names"} if "names" in ours and ours["names"].notna().any()
                            else set())
        ours, theirs = as_python_lists(ours), as_python_lists(theirs)
        assert python_types(ours) == python_types(theirs)
        for name in ours.columns:  # datetime64 units and zones; str, bool, float, object
            assert ours[name].dtype == theirs[name].dtype, name


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("chunk_rows", [1, 3, 100])
def test_the_columnar_read_gives_the_row_paths_frames(
    engine: sa.Engine, zone: str, chunk_rows: int
) -> None:
    zoned = sa.create_engine(in_zone(str(engine.url.render_as_string(hide_password=False)),
                                     zone))
    table = sa.Table("columnar_events", sa.MetaData(), autoload_with=zoned)
    query = sa.select(table).order_by(table.c.n)
    try:
        columnar, rows = both_paths(zoned, query, chunk_rows)
    finally:
        zoned.dispose()
    assert sum(len(c) for c in columnar) == len(ROWS)
    assert_same_frames(columnar, rows)
    # psycopg gives a timestamptz in the session's zone; so does the columnar read
    [first] = [c for c in columnar if 0 in c["n"].tolist()]
    assert first["ts"].iloc[0].tz_convert(zone).isoformat() == first["ts"].iloc[0].isoformat()


def test_validation_and_dead_letters_are_the_row_paths(engine: sa.Engine) -> None:
    app = Monitor("columnar")
    stream = app.stream("events", table="columnar_events", time="ts", schema=SCHEMA)
    table = sa.Table("columnar_events", sa.MetaData(), autoload_with=engine)
    query = sa.select(table).order_by(table.c.n)
    [columnar], [rows] = both_paths(engine, query, 100)
    ours_clean, ours_rejects = stream.schema.validate(columnar)
    their_clean, their_rejects = stream.schema.validate(rows)
    assert ours_clean["names"].dtype == ARROW_LISTS  # kept in Arrow through validation
    pd.testing.assert_frame_equal(as_python_lists(ours_clean), their_clean, check_exact=True)
    pd.testing.assert_frame_equal(ours_rejects, their_rejects)
    assert dict(zip(ours_rejects["row"], ours_rejects["reason"], strict=True)) == {
        2: "field 'x' is NaN", 3: "missing field 'ts'", 4: "field 'r' is not finite",
        5: "field 'items' holds an item that is not a string",
        6: "field 'raw' is not UTF-8 text", 7: "field 'tags' is not a list of strings",
        9: "field 'x' is not finite"}
    assert len(ours_clean) == len(ROWS) - 7


def test_an_empty_range_reads_no_chunk_on_either_path(engine: sa.Engine) -> None:
    table = sa.Table("columnar_events", sa.MetaData(), autoload_with=engine)
    query = sa.select(table).where(table.c.n > 100)
    assert both_paths(engine, query, 10) == ([], [])


def test_a_column_of_a_type_the_frames_cannot_mirror_is_read_row_by_row(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = sa.Table("columnar_events", sa.MetaData(), autoload_with=engine)
    query = sa.select(table.c.n, sa.cast(table.c.ts, sa.Date).label("day"),
                      sa.func.gen_random_uuid().label("id")).order_by(table.c.n)
    fell_back = []
    real = sql_rows.row_by_row

    def row_by_row(*args: Any) -> Iterator[pd.DataFrame]:
        fell_back.append(True)
        return real(*args)

    monkeypatch.setattr(sql_rows, "row_by_row", row_by_row)
    [frame] = list(sql_rows.read_rows(engine, query, 100, "columnar_events"))
    assert fell_back == [True]
    assert type(frame["day"].iloc[0]).__name__ == "date"


def test_the_time_filter_is_in_the_query(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    """Only the range's rows come out of the driver: counted as Arrow batches, before any
    frame is made of them."""
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO columnar_events (n, ts) SELECT i, TIMESTAMPTZ '2026-02-01 00:00Z' "
            "+ i * INTERVAL '1 minute' FROM generate_series(10, 3 * 1440 + 9) AS i")
    app = Monitor("columnar")
    stream = app.stream("events", table="columnar_events", time="ts", schema={"n": "int"})
    arrived: list[int] = []
    real = postgres_columns.frames

    def frames(read: postgres_columns.ColumnRead, chunk_rows: int) -> Iterator[pd.DataFrame]:
        batches = list(read.batches)
        arrived.extend(batch.num_rows for batch in batches)
        counted = postgres_columns.ColumnRead(
            read.batches.from_batches(read.batches.schema, batches), read.zone,
            read.connection)
        return real(counted, chunk_rows)

    monkeypatch.setattr(postgres_columns, "frames", frames)
    day = pd.Timestamp("2026-02-02T00:00:00Z")
    chunks = list(TableSource(engine, stream, chunk_rows=500).chunks(day, day + pd.Timedelta("1D")))
    assert sum(arrived) == 1440  # of 3 * 1440 + 4 rows in the table
    assert [len(c) for c in chunks] == [500, 500, 440]
    times = pd.concat(chunks)["ts"]
    assert times.min() == day and times.max() == day + pd.Timedelta("1D") - pd.Timedelta("1min")


def test_a_failing_query_says_what_failed(engine: sa.Engine) -> None:
    app = Monitor("columnar")
    stream = app.stream("events", query="SELECT n, ts, 1 / (n - n) AS x FROM columnar_events",
                        time="ts", schema={"n": "int", "x": "float"})
    source = QuerySource(engine, stream)
    with pytest.raises(SourceError, match=r"^reading the query of stream 'events' failed: "
                                          r".*division by zero"):
        source.check()


# -- the connection a read leaves for the next (monitor.batch.idle_connections) ------------


def counting_connects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URIs the columnar read opens a new connection to, from now on."""
    IDLE.close_all()
    opened: list[str] = []
    real = postgres_columns.adbc.connect

    def connect(uri: str, **options: Any) -> Any:
        opened.append(uri)
        return real(uri, **options)

    monkeypatch.setattr(postgres_columns.adbc, "connect", connect)
    return opened


def read_all(engine: sa.Engine) -> list[pd.DataFrame]:
    table = sa.Table("columnar_events", sa.MetaData(), autoload_with=engine)
    query = sa.select(table).order_by(table.c.n)
    return list(sql_rows.read_rows(engine, query, 3, "columnar_events"))


def test_reads_one_after_another_share_one_connection(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = counting_connects(monkeypatch)
    first, second = read_all(engine), read_all(engine)
    assert len(opened) == 1
    assert_same_frames(second, first)
    assert_same_frames(second, list(sql_rows.row_by_row(
        engine, sa.select(sa.Table("columnar_events", sa.MetaData(), autoload_with=engine)
                          ).order_by(sa.text("n")), 3)))


def test_two_reads_at_once_keep_a_connection_each_for_the_next_two(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read ahead on its own thread and a label read on the run's, slice after slice."""
    opened = counting_connects(monkeypatch)
    table = sa.Table("columnar_events", sa.MetaData(), autoload_with=engine)
    for _ in range(3):
        ahead = sql_rows.read_rows(engine, sa.select(table).order_by(table.c.n), 3, "ahead")
        next(ahead)  # under way, its connection taken
        read_all(engine)
        list(ahead)
    assert len(opened) == 2


def test_a_connection_that_went_stale_while_idle_is_replaced(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = counting_connects(monkeypatch)
    expected = read_all(engine)
    idle = IDLE.take(opened[0])
    assert idle is not None
    with idle.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        [pid] = cursor.fetchone()
    IDLE.give_back(opened[0], idle)
    with engine.begin() as conn:  # the server ends the idle session (a restart, a timeout)
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    assert_same_frames(read_all(engine), expected)
    assert len(opened) == 2


def test_a_read_that_stops_early_or_fails_does_not_leave_its_connection(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = counting_connects(monkeypatch)
    expected = read_all(engine)
    table = sa.Table("columnar_events", sa.MetaData(), autoload_with=engine)
    chunks = sql_rows.read_rows(engine, sa.select(table).order_by(table.c.n), 3, "early")
    next(chunks)
    assert isinstance(chunks, Generator)
    chunks.close()  # the consumer stopped mid-result: the connection is closed
    assert IDLE.take(opened[0]) is None
    failing = sa.select((1 / (table.c.n - table.c.n)).label("x"))
    with pytest.raises(SourceError, match="division by zero"):
        list(sql_rows.read_rows(engine, failing, 3, "failing"))
    assert IDLE.take(opened[0]) is None
    assert_same_frames(read_all(engine), expected)
    # the first read's (reused and closed by the early stop), the failure's, this one's
    assert len(opened) == 3
