"""A partition's event watermark: one event with a wrong clock cannot make valid events
late, and no watermark passes the wall clock (issue 12, item 3: one event stamped 20 h
ahead dead-lettered a quarter of a replay as late)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from examples.music_home import mon, training_profile
from examples.music_home_events import DEFAULT_START, generate_events, generate_reference
from metrics.drift import ReferenceProfile
from monitor.research import evaluate
from monitor.storage.store import SqlStore
from monitor.targets import Target
from streaming.codec import encode_events, event_dicts
from streaming.messages import RawMessage
from streaming.partition import NO_TIME, highest, running_watermarks
from streaming.processor import StreamProcessor, StreamSettings
from streaming.sql_store import SqlStreamStore
from tests.streaming.clock import Clock
from tests.streaming.own_store import store, targets

__all__ = ["store", "targets"]  # fixtures of tests.streaming.own_store, used here

STREAM = mon.streams["home"]
TOPIC = "home-events"
START = DEFAULT_START

times_ns = st.lists(st.integers(min_value=-(2**62), max_value=2**62), max_size=40)


@given(before=times_ns, times=times_ns, outliers=st.integers(min_value=0, max_value=4))
def test_running_watermarks_are_the_kth_highest_before_each_time(
        before: list[int], times: list[int], outliers: int) -> None:
    k = outliers + 1
    top = highest((), np.array(before, dtype=np.int64), k)
    got = running_watermarks(top, np.array(times, dtype=np.int64), outliers).tolist()
    seen = sorted(before, reverse=True)
    want = []
    for time in times:
        want.append(seen[k - 1] if len(seen) >= k else NO_TIME)
        seen = sorted([*seen, time], reverse=True)
    assert got == want


@given(times=times_ns, count=st.integers(min_value=1, max_value=5))
def test_highest_keeps_the_highest_descending(times: list[int], count: int) -> None:
    half = len(times) // 2
    first = highest((), np.array(times[:half], dtype=np.int64), count)
    both = highest(first, np.array(times[half:], dtype=np.int64), count)
    assert list(both) == sorted(times, reverse=True)[:count]


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    reference = generate_reference(start=START, seed=31, events_per_hour=300)
    return training_profile(reference)


def processor(store: SqlStore, targets: list[Target], clock: Clock, partitions: int = 1
              ) -> StreamProcessor:
    return StreamProcessor(SqlStreamStore(store.database), STREAM, TOPIC, partitions, targets,
                           StreamSettings(idle_timeout_s=5), clock=lambda: clock.monotonic,
                           wall_clock=lambda: clock.wall)


def one_partition(events: pd.DataFrame, per_message: int = 25) -> list[RawMessage]:
    rows = list(event_dicts(events))
    return [RawMessage(0, offset, encode_events(rows[start:start + per_message]))
            for offset, start in enumerate(range(0, len(rows), per_message))]


def test_one_event_far_ahead_of_its_partition_makes_no_event_late(
        store: SqlStore, targets: list[Target], profile: ReferenceProfile) -> None:
    """History replayed through one partition, with one event stamped 20 h ahead of its
    neighbours (still in the past): every event counts, values equal research's."""
    events = generate_events(start=START, days=1, seed=32, events_per_hour=300)
    skewed = len(events) // 4
    events.loc[events.index[skewed], "ts"] = events["ts"].iloc[skewed] + pd.Timedelta(hours=20)
    clock = Clock(pd.Timestamp.now(tz="UTC"))
    stage = processor(store, targets, clock)
    stage.assign([0])
    late = 0
    for message in one_partition(events):
        prepared = stage.handle([message])
        late += sum(r.reason == "late" for r in prepared.rejected)
        clock.later(0.1)
        stage.tick()
    clock.later(6)  # idle: the partition's mark follows the wall clock, every window closes
    stage.tick()
    assert late == 0
    for target in targets:
        expected = evaluate(target.metric, events, reference=profile).drop(columns="stage")
        got = store.read_values(metric=target.metric.name, stage="streaming", limit=None)
        pd.testing.assert_frame_equal(got.drop(columns="stage").reset_index(drop=True),
                                      expected, check_exact=True, check_dtype=False)


def test_no_watermark_passes_the_wall_clock(store: SqlStore, targets: list[Target]) -> None:
    """Live: a few events from devices whose clocks run 10 minutes fast (inside the
    future bound) must not close the window that is still filling: an on-time event
    for it, arriving after them, is not late."""
    hour = START.floor("h") + pd.Timedelta(hours=5)
    clock = Clock(hour + pd.Timedelta(minutes=59))  # 10:59 on the wall
    stage = processor(store, targets, clock)
    stage.assign([0])
    base = next(event_dicts(generate_events(start=START, days=1, seed=33,
                                            events_per_hour=50).head(1)))
    fast = [{**base, "ts": (hour + pd.Timedelta(minutes=69, seconds=s)).isoformat()}
            for s in range(5)]  # 11:09 by their clocks
    on_time = {**base, "ts": (hour + pd.Timedelta(minutes=58)).isoformat()}
    stage.handle([RawMessage(0, 0, encode_events(fast))])
    prepared = stage.handle([RawMessage(0, 1, encode_events([on_time]))])
    assert not prepared.rejected
    assert stage.owned[0].watermark_ns is not None
    assert stage.owned[0].watermark_ns <= clock.wall.value


def test_an_event_further_ahead_than_the_future_bound_is_dead_lettered(
        store: SqlStore, targets: list[Target]) -> None:
    clock = Clock(pd.Timestamp.now(tz="UTC"))
    stage = processor(store, targets, clock)
    base = next(event_dicts(generate_events(start=START, days=1, seed=34,
                                            events_per_hour=50).head(1)))
    bound = StreamSettings().max_future_s
    ahead = {**base, "ts": (clock.wall + pd.Timedelta(seconds=bound + 60)).isoformat()}
    within = {**base, "ts": (clock.wall + pd.Timedelta(seconds=bound - 60)).isoformat()}
    prepared = stage.handle([RawMessage(0, 0, encode_events([ahead, within]))])
    assert [r.reason for r in prepared.rejected] == ["timestamp in ts is in the future"]
    assert bound <= 3600  # minutes, not the day it was


def test_a_lead_lets_the_watermark_run_ahead_of_the_wall_clock(
        store: SqlStore, targets: list[Target]) -> None:
    """A replay compressed in time (the demo's) stamps events ahead of the wall clock on
    purpose: with --watermark-lead its windows close as its event time passes."""
    hour = START.floor("h") + pd.Timedelta(hours=5)
    clock = Clock(hour + pd.Timedelta(minutes=59))
    stage = StreamProcessor(SqlStreamStore(store.database), STREAM, TOPIC, 1, targets,
                            StreamSettings(idle_timeout_s=5, max_future_s=7200,
                                           watermark_lead_s=7200),
                            clock=lambda: clock.monotonic, wall_clock=lambda: clock.wall)
    base = next(event_dicts(generate_events(start=START, days=1, seed=35,
                                            events_per_hour=50).head(1)))
    ahead = [{**base, "ts": (hour + pd.Timedelta(minutes=90, seconds=s)).isoformat()}
             for s in range(5)]
    stage.handle([RawMessage(0, 0, encode_events(ahead))])
    assert stage.owned[0].watermark_ns == (hour + pd.Timedelta(minutes=90, seconds=2)).value
