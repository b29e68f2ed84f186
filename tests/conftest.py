"""Fixtures for every test directory: the results databases of ``tests/storage``.

The session-wide SQLite file and throwaway Postgres database are the storage tests' own
fixtures, imported here so the CLI tests at this level can record into them too.
"""

from __future__ import annotations

import pytest

from monitor.storage.database import Database
from monitor.storage.models import Base
from tests.storage.conftest import postgres_url, sqlite_url

__all__ = ["postgres_url", "results_url", "sqlite_url"]


@pytest.fixture(params=["sqlite", "postgres"])
def results_url(request: pytest.FixtureRequest) -> str:
    """The URL of a migrated results database of each kind, emptied for the test."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    with Database(url) as database, database.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    return url
