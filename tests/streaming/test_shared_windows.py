"""Two workers' processors on one database: a window one worker closes while another
still holds its partition's partial is counted once, whatever comes after (found by the
scale-out test: with partitions idle, history replayed by three workers was counted
twice in a few windows, 305 events for 254)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from examples.music_home import training_profile
from examples.music_home_events import DEFAULT_START, generate_events, generate_reference
from monitor.research import evaluate
from monitor.storage.store import SqlStore
from monitor.targets import Target
from streaming.codec import encode_events, event_dicts
from streaming.messages import RawMessage
from streaming.processor import StreamProcessor, StreamSettings
from streaming.sql_store import SqlStreamStore
from tests.streaming.clock import Clock
from tests.streaming.workers import STREAM, promote_to_streaming


@pytest.fixture
def store(results_url: str) -> Iterator[SqlStore]:
    with SqlStore.open(results_url) as store:
        yield store


@pytest.fixture
def profile() -> Any:
    reference = generate_reference(start=DEFAULT_START, seed=5, events_per_hour=400)
    return training_profile(reference)


@pytest.fixture
def targets(store: SqlStore, profile: Any) -> list[Target]:
    return promote_to_streaming(store, profile)


def test_a_window_closed_by_another_worker_is_not_counted_twice(
    store: SqlStore, targets: list[Target], profile: Any,
) -> None:
    """Worker A owns partition 0, worker B partition 1; both went idle, so their marks
    follow the wall clock and an hour of history closes as soon as it has partials. A
    stores half of the hour, B closes it (deleting A's partial row), A gets the rest of
    the hour: its stored partial must add only the rest (a correction), not half again."""
    events = generate_events(start=DEFAULT_START, days=1, seed=5, events_per_hour=400)
    hour = events[events["ts"] < DEFAULT_START + pd.Timedelta(hours=1)]
    rows = list(event_dicts(hour))
    half = len(rows) // 2
    clock = Clock()

    def worker() -> StreamProcessor:
        return StreamProcessor(SqlStreamStore(store.database), STREAM, "shared", 2, targets,
                               StreamSettings(idle_timeout_s=5),
                               clock=lambda: clock.monotonic, wall_clock=lambda: clock.wall)

    a, b = worker(), worker()
    a.assign([0])
    b.assign([1])
    clock.later(6)
    a.tick()
    b.tick()  # both partitions idle: their marks are at the wall clock
    a.handle([RawMessage(0, 0, encode_events(rows[:half]))])
    clock.later(1.1)
    assert b.tick()  # B closes the hour with A's half
    a.handle([RawMessage(0, 1, encode_events(rows[half:]))])
    for _ in range(2):
        clock.later(6)
        a.tick()
        b.tick()
    for target in targets:
        expected = evaluate(target.metric, hour, reference=profile).drop(columns="stage")
        got = store.read_values(metric=target.metric.name, stage="streaming", limit=None)
        pd.testing.assert_frame_equal(got.drop(columns="stage").reset_index(drop=True),
                                      expected, check_exact=True, check_dtype=False,
                                      obj=f"streaming values of {target.metric.name}")
