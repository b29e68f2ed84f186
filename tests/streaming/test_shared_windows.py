"""Two workers' processors on one database: a window one worker closes while another
still holds its partition's partial is counted once, whatever comes after (found by the
scale-out test: with partitions idle, history replayed by three workers was counted
twice in a few windows, 305 events for 254).

And the rebalance race, forced: a partition that was idle resumes within one tick of
another worker closing the window its idle mark let close. Whether its worker stores the
resumed events just before the closing tick or just after it, and whether that worker
or one that took the partition over holds them, the window's first value (what the
alert rules judge) is the same — what each partition absorbed before its own mark
passed the window — and the resumed events come in as its correction. Before the fix,
storing just before the close put them in the first value, and just after it in a
correction. The steps are driven one call at a time in each order (prepare and absorb,
then the store; the other worker's tick in between or after), not raced with sleeps.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from examples.music_home import training_profile
from examples.music_home_events import DEFAULT_START, generate_events, generate_reference
from monitor.alerts.ports import EvaluationStore
from monitor.research import evaluate
from monitor.spec import MetricSpec
from monitor.storage.records import WindowResult
from monitor.storage.store import SqlStore
from monitor.targets import Target
from streaming.codec import encode_events, event_dicts
from streaming.messages import RawMessage
from streaming.processor import StreamProcessor, StreamSettings
from streaming.sql_store import SqlStreamStore
from tests.streaming.clock import Clock
from tests.streaming.workers import STREAM, promote_to_streaming

IDLE_S = 5.0
HOUR = DEFAULT_START + pd.Timedelta(hours=1)


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


def worker(store: SqlStore, targets: list[Target], clock: Clock,
           after_final: Any = None) -> StreamProcessor:
    """One worker's processor of a topic of two partitions, on ``clock``."""
    return StreamProcessor(SqlStreamStore(store.database), STREAM, "shared", 2, targets,
                           StreamSettings(idle_timeout_s=IDLE_S), after_final=after_final,
                           clock=lambda: clock.monotonic, wall_clock=lambda: clock.wall)


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
    a, b = worker(store, targets, clock), worker(store, targets, clock)
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
    assert_stored_as_research(store, targets, hour, profile)


def assert_stored_as_research(store: SqlStore, targets: list[Target], events: pd.DataFrame,
                              profile: Any) -> None:
    for target in targets:
        expected = evaluate(target.metric, events, reference=profile).drop(columns="stage")
        got = store.read_values(metric=target.metric.name, stage="streaming", limit=None)
        pd.testing.assert_frame_equal(got.drop(columns="stage").reset_index(drop=True),
                                      expected, check_exact=True, check_dtype=False,
                                      obj=f"streaming values of {target.metric.name}")


class FirstValues:
    """What the alert rules are given for each window the first time it is stored."""

    def __init__(self) -> None:
        self.seen: dict[str, dict[tuple[str, pd.Timestamp], WindowResult]] = {}

    def __call__(self, alerts: EvaluationStore, metric: MetricSpec, version: int,
                 results: list[WindowResult]) -> None:
        first = self.seen.setdefault(metric.name, {})
        for result in results:
            first.setdefault((result.segment, pd.Timestamp(result.window_start)), result)

    def frame(self, metric: str) -> pd.DataFrame:
        rows = [(metric, r.segment, pd.Timestamp(r.window_start), pd.Timestamp(r.window_end),
                 name, value, r.rows)
                for _, r in sorted(self.seen.get(metric, {}).items())
                for name, value in r.values.items()]
        return in_order(pd.DataFrame(rows, columns=["metric", "segment", "window_start",
                                                    "window_end", "field", "value", "count"]))


def in_order(values: pd.DataFrame) -> pd.DataFrame:
    return values.sort_values(["segment", "window_start", "field"]).reset_index(drop=True)


@pytest.mark.parametrize("handed_over", [False, True], ids=["same_owner", "handed_over"])
@pytest.mark.parametrize("order", ["store_then_close", "close_then_store"])
def test_a_resumed_partition_is_a_correction_whatever_the_order(
    store: SqlStore, targets: list[Target], profile: Any, order: str, handed_over: bool,
) -> None:
    """The rebalance race (see the module): A owns partition 1, B partition 0 (C after a
    hand-over); a third of the hour each, then B's partition goes idle and resumes with
    the last third."""
    events = generate_events(start=DEFAULT_START, days=1, seed=5, events_per_hour=400)
    hour = events[events["ts"] < HOUR].reset_index(drop=True)
    third = len(hour) // 3
    on_time_0, on_time_1, resumed_0 = hour[:third], hour[third:2 * third], hour[2 * third:]
    clock = Clock()
    first_values = FirstValues()

    def message(offset: int, part: pd.DataFrame, partition: int) -> list[RawMessage]:
        return [RawMessage(partition, offset, encode_events(list(event_dicts(part))))]

    a = worker(store, targets, clock, first_values)
    b = worker(store, targets, clock, first_values)
    a.assign([1])
    b.assign([0])
    a.handle(message(0, on_time_1, 1))
    b.handle(message(0, on_time_0, 0))
    clock.later(IDLE_S + 1)
    assert not b.tick()  # partition 0's mark passes the hour; 1's is still in it
    assert b.owned[0].checkpoint.mark_ns is not None
    assert b.owned[0].checkpoint.mark_ns > HOUR.value
    if handed_over:  # a rebalance: B stores and lets go, C loads partition 0
        b.store()
        b.revoke([0])
        b = worker(store, targets, clock, first_values)
        b.assign([0])
    # Partition 0 resumes: its micro-batch is decided and absorbed...
    prepared = b.prepare(message(1, resumed_0, 0))
    assert not any(flags.any() for flags in prepared.late[0].values())  # not late
    b.absorb(prepared)
    if order == "store_then_close":
        b.store_or_reload(prepared)
        assert a.tick()  # A's partition goes idle: the hour closes
    else:
        assert a.tick()
        b.store_or_reload(prepared)
    for _ in range(2):  # the correction, whoever closes it
        clock.later(IDLE_S + 1)
        a.tick()
        b.tick()

    on_time = pd.concat([on_time_0, on_time_1])
    for target in targets:
        name = target.metric.name
        expected_first = evaluate(target.metric, on_time, reference=profile)
        pd.testing.assert_frame_equal(
            first_values.frame(name), in_order(expected_first.drop(columns="stage")),
            check_exact=True, check_dtype=False, obj=f"first values of {name}")
    assert_stored_as_research(store, targets, hour, profile)  # with the correction
