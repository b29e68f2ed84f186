"""Scale-out with real workers on the real broker into real Postgres: a third worker that
joins two others on 4 partitions takes a share of them at once, not when another dies.

Faust's own assignor is sticky and caps a member at ceil(partitions / members): with its
default of one standby replica, two workers holding 2 + 2 partitions kept them and the
third got none (faust-streaming #93). All three start a few seconds apart here, so the
third joins a group that already shares the partitions; started together, any assignor
splits them.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from examples.music_home_events import DEFAULT_START, generate_events
from monitor.storage.store import SqlStore
from monitor.targets import Target
from tests.streaming.workers import (
    PARTITIONS,
    STREAM,
    Worker,
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

# A joining worker waits half the session timeout (3 s at the workers' 6 s) for Tansu's
# JoinGroup answer, then the group rebalances: about 4 s in our runs. The bound leaves
# room for a loaded machine; a third worker that gets nothing never meets it.
SCALE_OUT_WITHIN_S = 60.0


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    return generate_events(start=DEFAULT_START, days=1, seed=13, events_per_hour=300)


@pytest.fixture(scope="module")
def profile() -> Any:
    return example_profile(seed=13)


@pytest.fixture
def targets(store: SqlStore, profile: Any) -> list[Target]:
    return promote_to_streaming(store, profile)


def latest(worker: Worker) -> set[int] | None:
    """The partitions the worker said it owns last; None before its first assignment."""
    owned = worker.owned_partitions()
    return set(owned[-1]) if owned else None


def shared_by_all(pool: list[Worker]) -> bool:
    """Every worker owns at least one partition, no partition twice, and all of them."""
    owned = [latest(w) for w in pool]
    if any(not partitions for partitions in owned):
        return False
    taken = [p for partitions in owned if partitions for p in partitions]
    return len(taken) == len(set(taken)) and set(taken) == set(range(PARTITIONS))


def test_a_third_worker_takes_a_share_of_the_partitions_and_values_equal_research(
    tmp_path: Path, store: SqlStore, targets: list[Target], events: pd.DataFrame,
    profile: Any, bootstrap: str, postgres_url: str,
) -> None:
    run_id = uuid.uuid4().hex[:8]
    topic = f"home-{run_id}"
    new_topic(bootstrap, topic)
    expected = expected_values(targets, events, profile)
    pool = [Worker(tmp_path / f"worker-{i}.log", database_url=postgres_url,
                   bootstrap=bootstrap, group=f"g-{run_id}", topic=topic)
            for i in range(3)]
    try:
        first, second, third = pool
        first.start()
        wait_for(lambda: latest(first) == set(range(PARTITIONS)), 60,
                 "the first worker to own every partition", pool)
        second.start()
        wait_for(lambda: shared_by_all([first, second]), 60,
                 "two workers sharing the partitions", pool)
        third.start()
        wait_for(lambda: shared_by_all(pool), SCALE_OUT_WITHIN_S,
                 "the third worker to take a share of the partitions", pool)
        send(bootstrap, topic, example_event_dicts(events))
        wait_for(settled(store, topic, len(STREAM.schema.validate(events)[0]), expected), 90,
                 "every window stored", pool)
        assert all(w.alive for w in pool), [w.tail() for w in pool]
        # still shared when done (stopping them rebalances, so it is checked before)
        assert shared_by_all(pool), [w.owned_partitions() for w in pool]
    finally:
        codes = [w.stop() for w in pool if w.process is not None]
    assert_same_values(store, expected)
    assert codes == [0, 0, 0], [w.tail() for w in pool]
