"""Databases for the storage tests: a SQLite file and a throwaway Postgres database.

Both are created and migrated once per test session; each test starts from empty tables.
The Postgres server is the real one CI starts (127.0.0.1:5432, user postgres, trust
auth); ``MONITOR_TEST_POSTGRES_URL`` points the tests at another server. When it is down
the Postgres tests fail, not skip, with a message that says how to start it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from monitor.storage import upsert
from monitor.storage.database import Database
from monitor.storage.migrate import upgrade
from monitor.storage.models import Base
from monitor.storage.store import SqlStore

ADMIN_URL = os.environ.get("MONITOR_TEST_POSTGRES_URL",
                           "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
START_HINT = ("start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) "
              "main start`, or set MONITOR_TEST_POSTGRES_URL to a server where this user "
              "may create databases")


@contextmanager
def throwaway_postgres(prefix: str = "monitor_test") -> Iterator[str]:
    """A new, empty database on the test server, dropped afterwards; yields its URL."""
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", pool_size=1)
    name = f"{prefix}_{secrets.token_hex(6)}"
    problem = None
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as err:
        problem = " ".join(str(getattr(err, "orig", None) or err).split())
    if problem is not None:
        admin.dispose()
        pytest.fail(f"the Postgres storage tests need a server at {make_url(ADMIN_URL)!r}: "
                    f"{problem}; {START_HINT}", pytrace=False)
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with throwaway_postgres() as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('storage') / 'monitor.sqlite'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def postgres_database(postgres_url: str) -> Iterator[Database]:
    with Database(postgres_url) as database:
        yield database


@pytest.fixture(scope="session")
def sqlite_database(sqlite_url: str) -> Iterator[Database]:
    with Database(sqlite_url) as database:
        yield database


@pytest.fixture(params=["sqlite", "postgres", "postgres-copy"])
def database(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Database:
    """The migrated database of each kind, emptied for the test. ``postgres-copy`` writes
    every upsert through COPY, which otherwise only takes more than a few rows."""
    if request.param == "postgres-copy":
        monkeypatch.setattr(upsert, "FEW_ROWS", 0)
    kind = request.param.removesuffix("-copy")
    database: Database = request.getfixturevalue(f"{kind}_database")
    with database.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    return database


@pytest.fixture
def store(database: Database) -> SqlStore:
    return SqlStore(database)


@pytest.fixture
def fresh_sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'fresh.sqlite'}"
