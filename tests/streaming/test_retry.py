"""The worker's retry loop: outages and mismatches are both retried, told apart in the log."""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy import exc

from streaming.worker import StoppedBeforeStored, _Retry


def run_failing(errors: list[Exception], stopping: bool = False) -> int:
    calls = 0

    def step() -> None:
        nonlocal calls
        calls += 1
        if errors:
            raise errors.pop(0)

    asyncio.run(_Retry(0.0, lambda: stopping).until_done(step, "storing a batch"))
    return calls


def test_an_outage_is_retried_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    lost = exc.OperationalError("INSERT", {}, Exception("server closed the connection"))
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
