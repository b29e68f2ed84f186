"""Which database errors are outages, judged on what the real drivers raise; waiting them
out, and waiting for a database at start."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from monitor.batch.sql_rows import read_rows
from monitor.storage.database import Database
from monitor.storage.outages import (
    Backoff,
    call_through_outages,
    describe_error,
    is_outage,
    wait_for_database,
)
from tests.outage_proxy import OutageProxy

PASSWORD = "outage-s3cret"  # the test server trusts local users, so any password works


def raised(operation: Callable[[], object]) -> Exception:
    try:
        operation()
    except Exception as err:
        return err
    raise AssertionError("it did not fail")


def execute(url: str, statement: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[OutageProxy]:
    with OutageProxy.for_url(postgres_url) as proxy:
        yield proxy


def with_password(url: str) -> str:
    return make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)


def test_a_refused_connection_is_an_outage_and_so_is_one_cut_in_a_transaction(
    postgres_url: str, proxy: OutageProxy,
) -> None:
    proxy.down()
    refused = raised(lambda: execute(proxy.url(postgres_url), "SELECT 1"))
    assert is_outage(refused)
    with Database(proxy.url(postgres_url)) as database:
        assert is_outage(raised(database.check))  # DatabaseUnavailableError, the same cause
    proxy.up()
    engine = sa.create_engine(proxy.url(postgres_url))

    def cut_in_the_middle() -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql("SELECT 1")
            proxy.down()
            conn.exec_driver_sql("SELECT 2")

    cut = raised(cut_in_the_middle)
    engine.dispose()
    assert isinstance(cut, sa.exc.OperationalError) and is_outage(cut)


def test_a_cut_while_a_source_is_read_is_an_outage_behind_its_source_error(
    postgres_url: str, proxy: OutageProxy,
) -> None:
    engine = sa.create_engine(proxy.url(postgres_url))
    # ~60 MB: more than a batch of the columnar read, which holds the rest on the server
    query = sa.select(sa.func.generate_series(1, 300_000).label("n"),
                      sa.func.repeat("x", 200).label("text"))

    def read() -> None:
        for number, _ in enumerate(read_rows(engine, query, 1_000, "table 'n'")):
            if number == 1:
                proxy.down()

    err = raised(read)
    engine.dispose()
    assert type(err).__name__ == "SourceError" and is_outage(err)


@pytest.mark.parametrize("change", [{"database": "monitor_no_such_db"},
                                    {"username": "monitor_no_such_role"}])
def test_a_wrong_database_or_user_is_no_outage(postgres_url: str, change: dict[str, Any]
                                              ) -> None:
    url = make_url(postgres_url).set(**change).render_as_string(hide_password=False)
    assert not is_outage(raised(lambda: execute(url, "SELECT 1")))
    with Database(url) as database:
        assert not is_outage(raised(database.check))


@pytest.mark.parametrize("statement", ["SELECT 1/0", "SELECT * FROM no_such_table",
                                       "SELECT 'a' || chr(0)"])
def test_errors_of_the_statement_are_no_outage(postgres_url: str, statement: str) -> None:
    err = raised(lambda: execute(postgres_url, statement))
    assert isinstance(err, sa.exc.DBAPIError) and not is_outage(err)


def test_a_busy_sqlite_file_is_an_outage_and_a_missing_table_is_not(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'busy.sqlite'}"
    execute(url, "CREATE TABLE t (x INTEGER)")
    holder = sqlite3.connect(tmp_path / "busy.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # holds the write lock
    engine = sa.create_engine(url, connect_args={"timeout": 0})
    try:
        with engine.begin() as conn:
            busy = raised(lambda: conn.exec_driver_sql("INSERT INTO t VALUES (1)"))
    finally:
        holder.rollback()
        holder.close()
        engine.dispose()
    assert "locked" in str(busy) and is_outage(busy)
    assert not is_outage(raised(lambda: execute(url, "SELECT * FROM no_such_table")))


def test_an_error_says_itself_whether_it_is_an_outage_and_plain_errors_are_not() -> None:
    class StepFailed(RuntimeError):
        def __init__(self, outage: bool) -> None:
            super().__init__("a step failed in another process")
            self.outage = outage

    assert is_outage(StepFailed(True)) and not is_outage(StepFailed(False))
    assert is_outage(TimeoutError()) and is_outage(ConnectionResetError())
    assert not is_outage(KeyError("latency_ms")) and not is_outage(RuntimeError("bug"))


def test_a_driver_error_is_described_in_one_line_without_its_sql_or_parameters(
    postgres_url: str,
) -> None:
    err = raised(lambda: execute(postgres_url, "SELECT 1/0 -- secret-ish literal"))
    assert describe_error(err) == "DataError: division by zero"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return False


def test_an_outage_is_retried_with_a_capped_backoff_until_the_operation_succeeds() -> None:
    clock = FakeClock()
    failures = iter([ConnectionRefusedError()] * 6)

    def operation() -> str:
        if (err := next(failures, None)) is not None:
            raise err
        return "stored"

    assert call_through_outages(operation, "storing", backoff=Backoff(0.5, 2.0),
                                wait=clock.wait, clock=clock) == "stored"
    assert clock.waits == [0.5, 1.0, 2.0, 2.0, 2.0, 2.0]


def test_an_error_waiting_cannot_cure_is_raised_at_once_and_an_outage_after_its_patience(
) -> None:
    clock = FakeClock()

    def bug() -> None:
        raise ValueError("not an outage")

    with pytest.raises(ValueError):
        call_through_outages(bug, "storing", wait=clock.wait, clock=clock)
    assert clock.waits == []

    def down() -> None:
        raise ConnectionRefusedError()

    with pytest.raises(ConnectionRefusedError):
        call_through_outages(down, "storing", patience_seconds=10, backoff=Backoff(1, 4),
                             wait=clock.wait, clock=clock)
    assert clock.waits == [1, 2, 4, 3]  # the last wait ends at the patience


def test_a_process_waits_for_a_database_that_is_down_at_its_start(
    postgres_url: str, proxy: OutageProxy, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="monitor.storage.outages")
    proxy.down()
    threading.Timer(2.0, proxy.up).start()
    with Database(with_password(proxy.url(postgres_url))) as database:
        assert wait_for_database(database, threading.Event(), Backoff(0.2, 0.5))
        database.check()  # it works now
    tries = [r.getMessage() for r in caplog.records if "failed (try" in r.getMessage()]
    assert len(tries) >= 2  # one line per try while it was down
    assert all(line.startswith("connecting to the database failed (try ")
               and f"127.0.0.1:{proxy.port}" in line and "trying again in" in line
               for line in tries)
    assert PASSWORD not in caplog.text


def test_waiting_for_a_database_ends_when_the_process_is_stopped(
    postgres_url: str, proxy: OutageProxy,
) -> None:
    proxy.down()
    stop = threading.Event()
    threading.Timer(1.0, stop.set).start()
    with Database(proxy.url(postgres_url)) as database:
        assert not wait_for_database(database, stop, Backoff(0.2, 0.5))


def test_a_wrong_database_name_is_not_waited_for(postgres_url: str) -> None:
    url = make_url(postgres_url).set(database="monitor_no_such_db").render_as_string(
        hide_password=False)
    with Database(url) as database, pytest.raises(Exception, match="does not exist"):
        wait_for_database(database, threading.Event())
