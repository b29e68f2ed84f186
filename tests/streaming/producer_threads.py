"""Waiting for the Kafka producers a test started to finish closing, so what they log on
their way out (from their own network threads) is logged before the test looks."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

NETWORK_THREAD = "-network-thread"  # how kafka-python names a producer's I/O thread


@contextlib.contextmanager
def producers_closed(timeout: float = 10.0) -> Iterator[None]:
    """On exit, wait up to ``timeout`` s for each producer network thread started inside."""
    before = set(threading.enumerate())
    yield
    for thread in set(threading.enumerate()) - before:
        if thread.name.endswith(NETWORK_THREAD):
            thread.join(timeout)
            assert not thread.is_alive(), f"{thread.name} still runs after {timeout} s"
