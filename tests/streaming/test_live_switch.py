"""Stage changes reaching a running stream processor (streaming.plan), without Kafka: a
promotion starts at its boundary, a demotion stops at its boundary and lets the version
go once its windows are closed, a new version takes over without mixing states, and a
processor reads the catalog before it absorbs an event past its horizon.

The catalog is a fake here (what the plan says, when); the states and values are stored
in Postgres as a worker stores them. ``test_live_switch_e2e`` does the same with a real
worker, catalog and broker.
"""

from __future__ import annotations

import pandas as pd
import pytest

from monitor.spec import MetricSpec
from monitor.storage.store import SqlStore
from streaming.codec import encode_events, event_dicts
from streaming.messages import RawMessage
from streaming.plan import Interval, PlannedVersion
from streaming.processor import StreamProcessor, StreamSettings
from streaming.sql_store import SqlStreamStore
from tests.streaming.clock import Clock
from tests.streaming.switch_app import (
    bound,
    boundary,
    events,
    mon,
    profile,
    research,
    stored,
)

STREAM = mon.streams["clicks"]
TOPIC = "switch-clicks"
PARTITIONS = 3
LEAD_S = 10.0
SETTINGS = StreamSettings(idle_timeout_s=2, max_future_s=LEAD_S, switch_lead_s=LEAD_S,
                          lifecycle_poll_s=1.0)
SECOND = pd.Timedelta(seconds=1)


class FakeCatalog:
    """The plan as the catalog would give it; counts the reads."""

    def __init__(self) -> None:
        self.planned: list[PlannedVersion] = []
        self.changes = 0
        self.seen = -1
        self.reads = 0

    def change(self, *planned: PlannedVersion) -> None:
        self.planned = list(planned)
        self.changes += 1

    def read(self, force: bool = False) -> list[PlannedVersion] | None:
        self.reads += 1
        if self.seen == self.changes and not force:
            return None
        self.seen = self.changes
        return list(self.planned)


class Feed:
    """A processor fed the events of each second as the wall clock reaches it."""

    def __init__(self, store: SqlStore, catalog: FakeCatalog, frame: pd.DataFrame,
                 start: pd.Timestamp, settings: StreamSettings = SETTINGS) -> None:
        self.clock = Clock(start)
        self.frame = frame
        self.offsets = [0] * PARTITIONS
        self.stage = StreamProcessor(
            SqlStreamStore(store.database), STREAM, TOPIC, PARTITIONS, [], settings,
            clock=lambda: self.clock.monotonic, wall_clock=lambda: self.clock.wall,
            plan_source=catalog)
        self.stage.follow()
        self.stage.assign(range(PARTITIONS))

    def run_until(self, until: pd.Timestamp) -> None:
        while self.clock.wall < until:
            now = self.clock.wall
            second = self.frame[(self.frame.ts >= now) & (self.frame.ts < now + SECOND)]
            self.stage.handle(self._messages(second))
            self.clock.later(1)
            self.stage.tick()

    def drain(self) -> None:
        """No more events: every partition goes idle and every window closes."""
        for _ in range(int(SETTINGS.idle_timeout_s) * 2 + 2):
            self.clock.later(1)
            self.stage.tick()

    def _messages(self, frame: pd.DataFrame) -> list[RawMessage]:
        messages = []
        for partition in range(PARTITIONS):
            mine = frame[frame.user_id.map(lambda u: int(u[1:]) % PARTITIONS) == partition]
            if len(mine):
                messages.append(RawMessage(partition, self.offsets[partition],
                                           encode_events(list(event_dicts(mine)))))
                self.offsets[partition] += 1
        return messages


def planned(metric: MetricSpec, version: int, *spans: Interval) -> PlannedVersion:
    return PlannedVersion(metric.name, version, spans, metric, metric.lateness_ns)


def partial_rows(store: SqlStore, name: str) -> int:
    with store.database.connect() as conn:
        return int(conn.exec_driver_sql(
            "SELECT COUNT(*) FROM stream_partials WHERE metric = %(m)s", {"m": name}).scalar_one())


@pytest.fixture
def start() -> pd.Timestamp:
    return boundary(pd.Timestamp("2026-06-01T12:00:00Z"))


def test_a_promotion_counts_exactly_the_windows_from_its_boundary(
    store: SqlStore, start: pd.Timestamp
) -> None:
    """The timer never reads the catalog here (its interval is longer than the run): the
    guard alone reads it before the first event past the horizon, so the windows from the
    boundary on are counted in full and none before it."""
    frame = events(start, 60, per_second=40, seed=1)
    catalog = FakeCatalog()
    settings = StreamSettings(idle_timeout_s=2, max_future_s=LEAD_S, switch_lead_s=LEAD_S,
                              lifecycle_poll_s=3600)
    feed = Feed(store, catalog, frame, start, settings)
    feed.run_until(start + 13 * SECOND)
    latency = bound("latency")
    effective = boundary(feed.clock.wall + pd.Timedelta(seconds=LEAD_S))  # as promote does
    catalog.change(planned(latency, 1, (effective.value, None)))
    reads = catalog.reads
    feed.run_until(start + 60 * SECOND)
    feed.drain()
    assert catalog.reads > reads  # read by the guard, not the timer
    values = stored(store, "latency", 1)
    assert values.window_start.min() == effective
    pd.testing.assert_frame_equal(values, research(latency, frame, since=effective),
                                  check_exact=True, check_dtype=False)
    assert partial_rows(store, "latency") == 0


def test_a_demotion_stops_at_its_boundary_and_the_version_leaves(
    store: SqlStore, start: pd.Timestamp
) -> None:
    frame = events(start, 50, per_second=40, seed=2)
    catalog = FakeCatalog()
    latency = bound("latency")
    catalog.change(planned(latency, 1, (start.value, None)))
    feed = Feed(store, catalog, frame, start)
    feed.run_until(start + 17 * SECOND)
    end = boundary(feed.clock.wall + pd.Timedelta(seconds=LEAD_S))
    catalog.change(planned(latency, 1, (start.value, end.value)))
    feed.run_until(start + 50 * SECOND)
    feed.drain()
    values = stored(store, "latency", 1)
    assert values.window_start.max() < end
    pd.testing.assert_frame_equal(values, research(latency, frame, until=end),
                                  check_exact=True, check_dtype=False)
    assert partial_rows(store, "latency") == 0
    assert feed.stage.targets == {}  # let go once its last window closed
    assert all(not state.engine.metrics for state in feed.stage.owned.values())


def test_a_new_version_takes_over_at_its_boundary_without_mixing_states(
    store: SqlStore, start: pd.Timestamp
) -> None:
    """A refit of latency_psi's reference: version 2 (the same code, another profile)
    takes over from version 1 at its boundary; each version's windows equal research's
    against its own profile, and both are alive (apart) while version 1's last windows
    close."""
    frame = events(start, 50, per_second=40, seed=3)
    profiles = profile(1), profile(2, 1.3)
    first, refit = (bound("latency_psi", fitted) for fitted in profiles)
    assert first.id != refit.id
    catalog = FakeCatalog()
    catalog.change(planned(first, 1, (start.value, None)))
    feed = Feed(store, catalog, frame, start)
    feed.run_until(start + 12 * SECOND)
    takes_over = boundary(feed.clock.wall + pd.Timedelta(seconds=LEAD_S))
    catalog.change(planned(first, 1, (start.value, takes_over.value)),
                   planned(refit, 2, (takes_over.value, None)))
    feed.run_until(takes_over)
    assert set(feed.stage.targets) == {"latency_psi", "latency_psi@v2"}  # alive, apart
    feed.run_until(start + 50 * SECOND)
    feed.drain()
    old, new = stored(store, "latency_psi", 1), stored(store, "latency_psi", 2)
    assert old.window_start.max() < takes_over <= new.window_start.min()
    pd.testing.assert_frame_equal(
        old, research(first, frame, until=takes_over, reference=profiles[0]),
        check_exact=True, check_dtype=False)
    pd.testing.assert_frame_equal(
        new, research(refit, frame, since=takes_over, reference=profiles[1]),
        check_exact=True, check_dtype=False)
    assert partial_rows(store, "latency_psi") == 0
    assert list(feed.stage.targets.values()) == [(refit, 2)]


def test_a_version_this_code_cannot_compute_is_named_and_the_rest_go_on(
    store: SqlStore, start: pd.Timestamp
) -> None:
    frame = events(start, 20, per_second=20, seed=4)
    catalog = FakeCatalog()
    latency = bound("latency")
    problem = "metric 'latency_psi' version 3 ...: restart the worker with the code of version 3"
    catalog.change(planned(latency, 1, (start.value, None)),
                   PlannedVersion("latency_psi", 3, ((start.value, None),), None, 0, problem))
    feed = Feed(store, catalog, frame, start)
    feed.run_until(start + 20 * SECOND)
    feed.drain()
    assert feed.stage.unservable == {("latency_psi", 3): problem}
    pd.testing.assert_frame_equal(stored(store, "latency", 1), research(latency, frame),
                                  check_exact=True, check_dtype=False)


def test_max_future_beyond_the_lead_is_refused(store: SqlStore) -> None:
    with pytest.raises(ValueError, match=r"max_future_s .* may not exceed switch_lead_s"):
        StreamProcessor(SqlStreamStore(store.database), STREAM, TOPIC, PARTITIONS, [],
                        StreamSettings(max_future_s=60, switch_lead_s=30),
                        plan_source=FakeCatalog())


def test_the_worker_refuses_a_max_future_beyond_the_switch_lead() -> None:
    from click.testing import CliRunner

    from monitor.cli.main import cli

    result = CliRunner().invoke(cli, ["--app", "tests.streaming.switch_app:mon", "stream",
                                      "worker", "--max-future", "60"],
                                env={"MONITOR_SWITCH_LEAD": "30s"})
    assert result.exit_code == 2, result.output
    assert "--max-future (60 s)" in result.output
    assert "MONITOR_SWITCH_LEAD (30 s)" in result.output
