"""Faults around real workers, the real broker and real Postgres: a worker stopped
(SIGTERM, as an operator restarting it would) or killed (SIGKILL) during normal flow and
during a database outage loses nothing and counts nothing twice, and stops in bounded
time. The outage is a proxy in front of Postgres that cuts and refuses connections
(:mod:`tests.outage_proxy`), so the rest of the test session keeps its server."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from examples.music_home_events import DEFAULT_START, generate_events
from monitor.storage.store import SqlStore
from monitor.targets import Target
from streaming.worker import STOP_WITHIN_S
from tests.outage_proxy import OutageProxy
from tests.streaming.workers import (
    STREAM,
    Worker,
    absorbed_events,
    assert_same_values,
    example_event_dicts,
    example_profile,
    expected_values,
    new_topic,
    promote_to_streaming,
    send,
    settled,
    wait_for,
)

START = DEFAULT_START


@pytest.fixture(scope="module")
def profile() -> Any:
    return example_profile(seed=21)


@pytest.fixture
def targets(store: SqlStore, profile: Any) -> list[Target]:
    return promote_to_streaming(store, profile)


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[OutageProxy]:
    with OutageProxy.for_url(postgres_url) as proxy:
        yield proxy


def valid_count(events: pd.DataFrame) -> int:
    return len(STREAM.schema.validate(events)[0])


def log_has(worker: Worker, text: str) -> bool:
    return worker.log_path.exists() and text in worker.log_path.read_text(errors="replace")


@pytest.mark.parametrize("outage", [True, False], ids=["during-an-outage", "normal-flow"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
def test_a_worker_stopped_or_killed_mid_replay_loses_and_doubles_nothing(
    signum: int, outage: bool, tmp_path: Path, store: SqlStore, targets: list[Target],
    profile: Any, proxy: OutageProxy, bootstrap: str, postgres_url: str,
) -> None:
    """The worker writes through the proxy. Half the events are stored; then (with
    ``outage``) Postgres goes away, the rest are sent and the worker fails to store them;
    it is stopped or killed and must be gone within STOP_WITHIN_S; Postgres comes back and
    a new worker must end with exactly research's values."""
    run_id = uuid.uuid4().hex[:8]
    events = generate_events(start=START, days=1, seed=22, events_per_hour=400)
    topic = f"home-{run_id}"
    new_topic(bootstrap, topic)
    expected = expected_values(targets, events, profile)
    rows = example_event_dicts(events)
    half = len(rows) // 2

    def worker(name: str) -> Worker:
        return Worker(tmp_path / f"{name}.log", database_url=proxy.url(postgres_url),
                      bootstrap=bootstrap, group=f"g-{run_id}", topic=topic)

    first = worker("first").start()
    try:
        send(bootstrap, topic, rows[:half])
        wait_for(lambda: absorbed_events(store, topic) >= half // 2, 90,
                 "the first events stored", [first])
        if outage:
            proxy.down()
            send(bootstrap, topic, rows[half:])
            wait_for(lambda: log_has(first, "retrying"), 60, "a failed store", [first])
        else:  # stopped while messages keep coming
            producer = threading.Thread(
                target=lambda: send(bootstrap, topic, rows[half:], batch=5), daemon=True)
            producer.start()
            wait_for(lambda: absorbed_events(store, topic) > half, 90,
                     "events of the second half stored", [first])
        assert first.alive, first.tail()
        signalled = time.monotonic()
        first.signal(signum)
        code = first.wait(STOP_WITHIN_S + 5)
        took = time.monotonic() - signalled
        assert code is not None, f"not stopped {took:.0f} s after the signal:\n{first.tail()}"
        if signum == signal.SIGTERM:
            assert took <= STOP_WITHIN_S + 2, first.tail()
    finally:
        if first.alive:
            first.kill()
        proxy.up()
    if not outage:
        producer.join(60)
    second = worker("second").start()
    try:
        wait_for(settled(store, topic, valid_count(events), expected), 120,
                 "every window stored", [second])
    finally:
        second.stop()
    assert absorbed_events(store, topic) == valid_count(events)
    assert_same_values(store, expected)


def test_one_event_from_a_wrong_clock_makes_no_event_late(
    tmp_path: Path, store: SqlStore, targets: list[Target], profile: Any, bootstrap: str,
    postgres_url: str,
) -> None:
    """History replayed through a real worker, with one event stamped 20 h ahead of its
    neighbours: nothing is dead-lettered as late, and the values equal research's (the
    skewed event counts in its own window there too)."""
    run_id = uuid.uuid4().hex[:8]
    events = generate_events(start=START, days=1, seed=23, events_per_hour=300)
    skewed = len(events) // 4
    events.loc[events.index[skewed], "ts"] = events["ts"].iloc[skewed] + pd.Timedelta(hours=20)
    topic = f"home-{run_id}"
    new_topic(bootstrap, topic)
    expected = expected_values(targets, events, profile)
    worker = Worker(tmp_path / "worker.log", database_url=postgres_url, bootstrap=bootstrap,
                    group=f"g-{run_id}", topic=topic).start()
    try:
        send(bootstrap, topic, example_event_dicts(events))
        wait_for(settled(store, topic, valid_count(events), expected), 120,
                 "every window stored", [worker])
    finally:
        worker.stop()
    late = store.read_values(metric="home.dead_letters", stage="streaming", limit=None)
    assert late.empty, late
    assert_same_values(store, expected)


def test_a_worker_started_while_postgres_is_down_waits_for_it(
    tmp_path: Path, store: SqlStore, targets: list[Target], profile: Any,
    proxy: OutageProxy, bootstrap: str, postgres_url: str,
) -> None:
    """It used to exit at once; it must say it waits, then work once Postgres is back."""
    run_id = uuid.uuid4().hex[:8]
    events = generate_events(start=START, days=1, seed=24, events_per_hour=100)
    topic = f"home-{run_id}"
    new_topic(bootstrap, topic)
    expected = expected_values(targets, events, profile)
    proxy.down()
    worker = Worker(tmp_path / "worker.log", database_url=proxy.url(postgres_url),
                    bootstrap=bootstrap, group=f"g-{run_id}", topic=topic).start()
    try:
        # A third try shows it waited through the first two instead of exiting.
        wait_for(lambda: log_has(worker, "failed (try 3)"), 30,
                 "a third try at the database", [worker])
        assert worker.alive and log_has(worker, "trying again"), worker.tail()
        proxy.up()
        send(bootstrap, topic, example_event_dicts(events))
        wait_for(settled(store, topic, valid_count(events), expected), 120,
                 "every window stored", [worker])
    finally:
        code = worker.stop()
    assert code == 0, worker.tail()
    assert_same_values(store, expected)


def test_the_worker_help_states_the_stop_bound() -> None:
    from click.testing import CliRunner

    from monitor.cli.main import cli

    result = CliRunner().invoke(cli, ["stream", "worker", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert f"within {STOP_WITHIN_S:.0f} s" in " ".join(result.output.split())


def test_a_segment_value_postgres_cannot_hold_stalls_nothing(
    tmp_path: Path, store: SqlStore, targets: list[Target], profile: Any, bootstrap: str,
    postgres_url: str,
) -> None:
    """A NUL in a segment value made every store of its partition fail, forever; a 10 kB
    one too (index rows are limited). Both are segments like any other now: every window
    stored, values equal research's, whose labels escape and shorten them the same way."""
    run_id = uuid.uuid4().hex[:8]
    events = generate_events(start=START, days=1, seed=25, events_per_hour=200)
    events.loc[events.index[100], "country"] = "SE\u0000"
    events.loc[events.index[2000], "country"] = "x" * 10_000
    topic = f"home-{run_id}"
    new_topic(bootstrap, topic)
    expected = expected_values(targets, events, profile)
    worker = Worker(tmp_path / "worker.log", database_url=postgres_url, bootstrap=bootstrap,
                    group=f"g-{run_id}", topic=topic).start()
    try:
        send(bootstrap, topic, example_event_dicts(events))
        wait_for(settled(store, topic, valid_count(events), expected), 120,
                 "every window stored", [worker])
    finally:
        code = worker.stop()
    assert code == 0, worker.tail()
    assert_same_values(store, expected)
