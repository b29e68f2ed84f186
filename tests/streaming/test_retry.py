"""The worker's retry loop: outages and mismatches are both retried, told apart in the log;
a stop ends the wait at once."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from sqlalchemy import exc

from streaming.retry import StoppedBeforeStored, StoreRetry


class OperationalError(Exception):
    """A driver's error for a lost connection (PEP 249 names it so)."""


def run_failing(errors: list[Exception], stopping: bool = False, backoff: float = 0.01
                ) -> int:
    calls = 0

    def step() -> None:
        nonlocal calls
        calls += 1
        if errors:
            raise errors.pop(0)

    async def main() -> None:
        stop = asyncio.Event()
        if stopping:
            stop.set()
        await StoreRetry(backoff, stop).until_done(step, "storing a batch")

    asyncio.run(main())
    return calls


def test_an_outage_is_retried_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    lost = exc.OperationalError("INSERT", {},
                                OperationalError("server closed the connection"))
    with caplog.at_level(logging.WARNING, logger="streaming.worker"):
        assert run_failing([lost, lost]) == 3
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.WARNING]


def test_a_schema_mismatch_is_retried_with_an_error_that_says_what_to_do(
        caplog: pytest.LogCaptureFixture) -> None:
    missing = exc.ProgrammingError("SELECT", {}, Exception('relation "x" does not exist'))
    with caplog.at_level(logging.WARNING, logger="streaming.worker"):
        assert run_failing([missing]) == 2
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert "monitor db upgrade" in record.getMessage()


def test_stopping_gives_up_so_the_batch_is_replayed() -> None:
    with pytest.raises(StoppedBeforeStored):
        run_failing([RuntimeError("boom")], stopping=True)


def test_a_stop_ends_the_wait_between_attempts_at_once(
        caplog: pytest.LogCaptureFixture) -> None:
    """A worker told to stop during an outage must not sit out its backoff (it used to
    wait up to 30 s, and a stop waited with it)."""
    lost = exc.OperationalError("INSERT", {}, OperationalError("connection refused"))

    async def main() -> float:
        stop = asyncio.Event()

        def step() -> None:
            raise lost

        retry = StoreRetry(60.0, stop, max_backoff_s=60.0)
        task = asyncio.create_task(retry.until_done(step, "storing a batch"))
        # Its warning is logged on the event loop right before the wait, so once we see
        # it, the retry is waiting its 60 s.
        async with asyncio.timeout(10):
            while not any("retrying in 60.0 s" in m for m in caplog.messages):
                await asyncio.sleep(0.01)
        began = time.monotonic()
        stop.set()
        with pytest.raises(StoppedBeforeStored):
            await task
        return time.monotonic() - began

    with caplog.at_level(logging.WARNING, logger="streaming.worker"):
        assert asyncio.run(main()) < 5.0
