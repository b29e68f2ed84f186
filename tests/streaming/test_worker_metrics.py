"""A worker's probes and /metrics without services: figures from the processor's process
become counters, the partition gauges and readiness follow the wall clock, and only
committed store calls count."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from streaming.figures import Figures, PartitionMarks, Tally
from streaming.health_server import HealthServer
from streaming.observed_store import ObservedStore
from streaming.ports import CheckpointConflict
from streaming.worker_metrics import Readiness, WorkerHealth, offset_lag
from tests.streaming.probes import by_label, get, get_json, samples

S = 1_000_000_000  # ns


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def exposition(health: WorkerHealth) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client import generate_latest
    return samples(generate_latest(health.registry).decode())


def test_figures_from_the_processor_become_counters() -> None:
    health = WorkerHealth(60.0)
    sink = health.processor_sink("home")
    sink(Figures(absorbed=Counter({0: 5, 1: 2}), dead_letters=Counter({"late": 1}),
                 windows_closed=Counter({"latency": 2}),
                 store_seconds=[("store", 0.02), ("close", 0.3)]))
    sink(Figures(absorbed=Counter({0: 1}), dead_letters=Counter({"late": 2, "empty": 1})))
    found = exposition(health)
    assert by_label(found, "monitor_events_absorbed_total", "partition") == {"0": 6, "1": 2}
    assert by_label(found, "monitor_dead_letters_total", "reason") == {"late": 3, "empty": 1}
    assert by_label(found, "monitor_windows_closed_total", "metric") == {"latency": 2}
    assert by_label(found, "monitor_store_seconds_count", "operation") == {"store": 1,
                                                                          "close": 1}
    assert by_label(found, "monitor_store_seconds_sum", "operation")["close"] == \
        pytest.approx(0.3)
    assert found[("monitor_processor_starts_total", (("topic", "home"),))] == 1


def test_lag_and_watermark_age_follow_the_wall_clock() -> None:
    clock = Clock(1_000.0)
    health = WorkerHealth(60.0, wall_clock=clock)
    sink = health.processor_sink("home")
    sink(Figures(partitions={0: PartitionMarks(41, 900 * S), 1: PartitionMarks(-1, None)}))
    clock.now = 1_030.0
    found = exposition(health)
    assert by_label(found, "monitor_partition_lag_seconds", "partition") == {"0": 130.0}
    assert by_label(found, "monitor_partition_watermark_age_seconds", "partition") == {
        "0": 30.0, "1": 30.0}
    assert by_label(found, "monitor_partition_stored_offset", "partition") == {"0": 41,
                                                                              "1": -1}
    assert found[("monitor_partitions_owned", (("topic", "home"),))] == 2
    sink(Figures(partitions={0: PartitionMarks(45, 900 * S)}))  # moved offset, not mark
    clock.now = 1_040.0
    found = exposition(health)
    assert by_label(found, "monitor_partition_watermark_age_seconds", "partition") == {
        "0": 40.0}  # partition 1 was revoked
    sink(Figures(partitions={0: PartitionMarks(50, 1_035 * S)}))
    found = exposition(health)
    assert by_label(found, "monitor_partition_watermark_age_seconds", "partition") == {
        "0": 0.0}
    assert by_label(found, "monitor_partition_lag_seconds", "partition") == {"0": 5.0}


def test_readiness_needs_partitions_marks_and_a_lag_within_the_bound() -> None:
    clock = Clock(10_000.0)
    health = WorkerHealth(60.0, wall_clock=clock)
    home, search = health.processor_sink("home"), health.processor_sink("search")
    readiness = health.readiness()
    assert (readiness.ready, readiness.reason) == (False, "no partitions assigned")
    health.note_assignment(3)  # assigned, not loaded yet: still not ready
    assert health.readiness().ready is False
    home(Figures(partitions={0: PartitionMarks(3, 9_990 * S), 1: PartitionMarks(-1, None)}))
    readiness = health.readiness()
    assert not readiness.ready and readiness.reason is not None
    assert readiness.reason.startswith("no watermark yet for home[1]")
    home(Figures(partitions={0: PartitionMarks(3, 9_990 * S), 1: PartitionMarks(9, 9_900 * S)}))
    search(Figures(partitions={2: PartitionMarks(9, 9_000 * S)}))
    readiness = health.readiness()
    assert not readiness.ready
    assert readiness.reason == ("search[2], home[1] behind by more than 60 s (the furthest "
                                "1000 s)")
    assert readiness.lags == {("home", 0): 10.0, ("home", 1): 100.0, ("search", 2): 1000.0}
    home(Figures(partitions={0: PartitionMarks(3, 9_990 * S), 1: PartitionMarks(9, 9_941 * S)}))
    search(Figures(partitions={}))
    readiness = health.readiness()
    assert (readiness.ready, readiness.reason) == (True, None)
    assert exposition(health)[("monitor_ready", ())] == 1.0


def test_readiness_fails_while_a_streaming_version_cannot_be_computed() -> None:
    clock = Clock(10_000.0)
    health = WorkerHealth(60.0, wall_clock=clock)
    home = health.processor_sink("home")
    problem = ("metric 'latency' version 3 is in streaming, but this worker's code defines "
               "it otherwise (...): restart the worker with the code of version 3")
    home(Figures(partitions={0: PartitionMarks(3, 9_990 * S)}, problems=[problem]))
    readiness = health.readiness()
    assert (readiness.ready, readiness.reason) == (False, problem)
    home(Figures(partitions={0: PartitionMarks(3, 9_990 * S)}))  # not known: unchanged
    assert not health.readiness().ready
    home(Figures(partitions={0: PartitionMarks(3, 9_990 * S)}, problems=[]))
    assert health.readiness().ready


def test_liveness_fails_when_the_loop_stops_beating() -> None:
    clock = Clock(0.0)
    health = WorkerHealth(60.0, wall_clock=clock, loop_stale_s=30.0)
    clock.now = 29.0
    assert health.liveness() == (True, None)
    clock.now = 31.0
    assert health.liveness() == (False, "the event loop has not run for 31 s")
    health.beat()
    assert health.liveness() == (True, None)


def test_lag_in_messages_only_when_asked_for() -> None:
    assert offset_lag(highwater=10, stored_offset=9) == 0
    assert offset_lag(highwater=10, stored_offset=-1) == 10
    assert offset_lag(highwater=10, stored_offset=3) == 6
    plain = WorkerHealth(60.0)
    plain.processor_sink("home")(Figures(partitions={0: PartitionMarks(3, None)}))
    plain.note_highwaters({("home", 0): 10})
    assert not by_label(exposition(plain), "monitor_partition_lag_messages", "partition")
    asked = WorkerHealth(60.0, offset_lag=True)
    asked.processor_sink("home")(Figures(partitions={0: PartitionMarks(3, None),
                                                     1: PartitionMarks(5, None)}))
    asked.note_highwaters({("home", 0): 10})  # partition 1: none fetched yet
    assert by_label(exposition(asked), "monitor_partition_lag_messages", "partition") == {
        "0": 6.0}


def test_a_bound_that_is_not_positive_is_refused() -> None:
    with pytest.raises(ValueError, match="ready_lag_s must be more than 0"):
        WorkerHealth(0.0)


def test_the_tally_hands_over_what_happened_since_the_last_reply() -> None:
    tally = Tally()
    tally.absorbed(1, 4)
    tally.absorbed(2, 0)
    tally.dead_letter("late", 2)
    tally.store_took("store", 0.5)
    first = tally.drain({1: PartitionMarks(7, 5)})
    assert first.absorbed == {1: 4} and first.dead_letters == {"late": 2}
    assert first.store_seconds == [("store", 0.5)] and first.partitions == {
        1: PartitionMarks(7, 5)}
    assert tally.drain(None).empty


# -- counted when committed -----------------------------------------------------------------


class FakeState:
    def __init__(self, partition: int, stored_events: int, events: int) -> None:
        self.partition = partition
        self.events = events
        self.checkpoint = type("Checkpoint", (), {"events": stored_events})()


class FakeStore:
    def __init__(self) -> None:
        self.fail: Exception | None = None

    def store_partitions(self, states: Any, versions: Any, **_: Any) -> None:
        if self.fail is not None:
            raise self.fail

    def close_windows(self, topic: str, due: Any, stage: str, after_final: Any = None
                      ) -> dict[str, list[Any]]:
        window = type("Result", (), {"window_start": datetime(2026, 1, 1, tzinfo=UTC)})
        other = type("Result", (), {"window_start": datetime(2026, 1, 1, 1, tzinfo=UTC)})
        return {"latency": [window(), window(), other()]}  # two segments of one window


def test_only_what_the_database_committed_counts() -> None:
    tally = Tally()
    times = iter([0.0, 0.25, 1.0, 1.5, 2.0, 2.75])
    fake = FakeStore()
    store = ObservedStore(fake, tally, clock=lambda: next(times))  # type: ignore[arg-type]
    hour = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=UTC))
    counts = {(*hour, "reason=late"): 2, (*hour, "*"): 2}
    states = [FakeState(0, 10, 15), FakeState(1, 0, 0)]
    fake.fail = CheckpointConflict("moved")
    with pytest.raises(CheckpointConflict):
        store.store_partitions(states, {}, count_metric="home.dead_letters",  # type: ignore[arg-type]
                               stage="streaming", counts=counts, samples=[])
    fake.fail = None
    store.store_partitions(states, {}, count_metric="home.dead_letters",  # type: ignore[arg-type]
                           stage="streaming", counts=counts, samples=[])
    store.close_windows("home", lambda marks: {}, "streaming")
    figures = tally.drain(None)
    assert figures.absorbed == {0: 5}
    assert figures.dead_letters == {"late": 2}
    assert figures.windows_closed == {"latency": 2}
    assert figures.store_seconds == [("store", 0.25), ("store", 0.5), ("close", 0.75)]


def test_the_server_answers_the_probes() -> None:
    clock = Clock(5_000.0)
    health = WorkerHealth(60.0, wall_clock=clock)
    with HealthServer(health, "127.0.0.1", 0) as server:
        assert server.port > 0
        status, body = get_json(server.port, "/readyz")
        assert (status, body["ready"], body["reason"]) == (503, False,
                                                          "no partitions assigned")
        health.processor_sink("home")(Figures(partitions={3: PartitionMarks(1, 4_990 * S)}))
        status, body = get_json(server.port, "/readyz")
        assert (status, body) == (200, {"ready": True, "reason": None, "ready_lag_s": 60.0,
                                        "partitions": [{"topic": "home", "partition": 3,
                                                        "lag_s": 10.0}]})
        assert get_json(server.port, "/healthz") == (200, {"alive": True, "reason": None})
        status, text = get(server.port, "/metrics")
        assert status == 200
        assert by_label(samples(text.decode()), "monitor_partition_lag_seconds",
                        "partition") == {"3": 10.0}
        assert get(server.port, "/nothing")[0] == 404


def test_the_worker_refuses_a_ready_lag_an_idle_partition_would_exceed() -> None:
    from click.testing import CliRunner

    from monitor.cli.main import cli

    result = CliRunner().invoke(cli, ["--app", "tests.streaming.stream_app:mon", "stream",
                                      "worker", "--idle-timeout", "30", "--ready-lag", "30",
                                      "--health-port", "0"])
    assert result.exit_code == 2, result.output
    assert "an idle partition lags by about --idle-timeout (30 s)" in result.output


def test_a_standby_worker_is_ready() -> None:
    """More workers than partitions: one the group gave none is ready to take some over
    (a rollout waiting for /readyz does not hang on it), until it gets some to load."""
    health = WorkerHealth(60.0, wall_clock=Clock(10_000.0))
    assert health.readiness().ready is False  # no rebalance yet
    health.note_assignment(0)
    readiness = health.readiness()
    assert (readiness.ready, readiness.reason) == (
        True, "a standby: the group assigned this worker no partitions")
    health.note_assignment(2)
    assert health.readiness() == Readiness(False, "no partitions assigned", {})
