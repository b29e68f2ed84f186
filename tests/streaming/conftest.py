"""One Kafka-compatible broker for the whole session of streaming tests.

The embedded broker (Tansu) on a free loopback port, started once and stopped at the
end; with ``MONITOR_KAFKA_BOOTSTRAP`` set, the tests use that cluster instead (and skip
the ones about the embedded broker itself). Every test gets topics of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from monitor.storage.store import SqlStore
from streaming.broker import EmbeddedBroker, configured_bootstrap
from tests.streaming.workers import emptied_store


@pytest.fixture(scope="session")
def embedded_broker() -> Iterator[EmbeddedBroker | None]:
    """The session's embedded broker, or None when the tests use a configured cluster."""
    if configured_bootstrap() is not None:
        yield None
        return
    with EmbeddedBroker() as broker:
        yield broker


@pytest.fixture(scope="session")
def bootstrap(embedded_broker: EmbeddedBroker | None) -> str:
    if embedded_broker is None:
        configured = configured_bootstrap()
        assert configured is not None
        return configured
    return embedded_broker.bootstrap


@pytest.fixture
def store(postgres_url: str) -> Iterator[SqlStore]:
    """The Postgres results database, emptied, for the end-to-end worker tests (a module
    that tests a store of its own defines ``store`` itself)."""
    with emptied_store(postgres_url) as store:
        yield store


@pytest.fixture
def topic(request: pytest.FixtureRequest) -> str:
    """A topic name no other test (or earlier run against a real cluster) uses."""
    return f"test-{request.node.name[:40]}-{uuid.uuid4().hex[:8]}".replace("[", "-").replace(
        "]", "")
