"""Fixtures for a module that tests the processor on a results database of its own (each
kind: SQLite and Postgres, see ``results_url``) instead of the worker tests' emptied
Postgres: import ``store`` and ``targets`` into the module, which defines ``profile`` (the
reference its drift metrics are promoted with)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from monitor.storage.store import SqlStore
from monitor.targets import Target
from tests.streaming.workers import promote_to_streaming


@pytest.fixture
def store(results_url: str) -> Iterator[SqlStore]:
    with SqlStore.open(results_url) as store:
        yield store


@pytest.fixture
def targets(store: SqlStore, profile) -> list[Target]:
    return promote_to_streaming(store, profile)
