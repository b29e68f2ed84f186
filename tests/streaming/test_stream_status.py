"""``monitor stream status`` against checkpoints real processors stored: two workers'
partitions with their owners, offsets, watermarks and dead letters, read back from the
database alone, as JSON and as text."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

from examples.music_home_events import DEFAULT_START, generate_events
from monitor.cli.main import cli
from monitor.storage.store import SqlStore
from monitor.stream_status import render
from streaming.codec import encode_events, event_dicts
from streaming.messages import RawMessage
from streaming.partition import OUTLIERS
from streaming.processor import StreamProcessor, StreamSettings
from streaming.sql_store import SqlStreamStore
from tests.streaming.clock import Clock
from tests.streaming.workers import STREAM, example_profile, promote_to_streaming

TOPIC = "home-status"
PARTITIONS = 4
OWNERS = {0: "host-a/101", 1: "host-a/101", 2: "host-b/202", 3: "host-b/202"}


@pytest.fixture
def store(results_url: str) -> Iterator[SqlStore]:
    with SqlStore.open(results_url) as store:
        yield store


def events_at(times: pd.DatetimeIndex, seed: int) -> list[dict[str, Any]]:
    events = generate_events(start=DEFAULT_START, days=1, seed=seed, events_per_hour=400,
                             incidents=False)
    clean, _ = STREAM.schema.validate(events)
    chosen = clean.head(len(times)).reset_index(drop=True)
    chosen[STREAM.time] = times
    return list(event_dicts(chosen))


def run_status(url: str, *args: str) -> str:
    result = CliRunner().invoke(cli, ["stream", "status", "--database-url", url, *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_status_shows_every_partition_of_the_group_as_stored(store: SqlStore,
                                                             results_url: str) -> None:
    targets = promote_to_streaming(store, example_profile(seed=3))
    now = pd.Timestamp.now(tz="UTC").floor("s")
    clock = Clock(wall=now)
    expected: dict[int, dict[str, Any]] = {}
    processors = {}
    for owner in sorted(set(OWNERS.values())):
        processors[owner] = StreamProcessor(
            SqlStreamStore(store.database, owner=owner), STREAM, TOPIC, PARTITIONS, targets,
            StreamSettings(idle_timeout_s=600), clock=lambda: clock.monotonic,
            wall_clock=lambda: clock.wall)
        processors[owner].assign([p for p, o in OWNERS.items() if o == owner])
    for partition, owner in OWNERS.items():
        # partition p: 10 + p events, the last one p minutes ago, one message of each
        times = pd.date_range(end=now - pd.Timedelta(minutes=partition), periods=10 + partition,
                              freq="7s")
        events = events_at(times, seed=partition)
        messages = [RawMessage(partition, offset, encode_events([event]))
                    for offset, event in enumerate(events)]
        if partition == 1:  # two bad messages after the events
            messages += [RawMessage(1, len(messages), b"{oops"),
                         RawMessage(1, len(messages) + 1, b"[1, 2]")]
        processors[owner].handle(messages)
        expected[partition] = {
            "owner": owner, "offset": len(messages) - 1, "events": len(events),
            "watermark": sorted(times, reverse=True)[OUTLIERS]}
    asked_at = datetime.now(UTC)

    found = json.loads(run_status(results_url, "--json"))
    answered_at = datetime.now(UTC)
    at = datetime.fromisoformat(found["at"])
    assert asked_at <= at <= answered_at
    partitions = [p for p in found["partitions"] if p["topic"] == TOPIC]
    assert [p["partition"] for p in partitions] == list(range(PARTITIONS))
    for entry in partitions:
        want = expected[entry["partition"]]
        assert (entry["owner"], entry["offset"], entry["events"]) == (
            want["owner"], want["offset"], want["events"])
        assert pd.Timestamp(entry["watermark"]) == want["watermark"]
        assert entry["lag_s"] == pytest.approx((at - want["watermark"]).total_seconds())
        assert 0 <= entry["checkpoint_age_s"] <= (answered_at - asked_at).total_seconds() + 60
    reasons = {(d["stream"], d["reason"]): (d["total"], d["last_24h"])
               for d in found["dead_letters"]}
    assert reasons == {("home", "malformed_json"): (1, 1), ("home", "not_an_event"): (1, 1)}

    text = run_status(results_url, "--topic", TOPIC)
    assert f"topic {TOPIC}: 4 partitions, {sum(e['events'] for e in expected.values())} " \
           "events absorbed" in text
    for partition, want in expected.items():
        row = next(line.split() for line in text.splitlines()
                   if line.split()[:2] == [str(partition), want["owner"]])
        assert row[2] == str(want["offset"])
    assert "home  malformed_json  1  1" in text
    assert json.loads(run_status(results_url, "--json", "--topic", "elsewhere"))[
        "partitions"] == []


def test_an_empty_group_says_so() -> None:
    from monitor.stream_status import StreamStatus
    text = render(StreamStatus(datetime(2026, 1, 1, tzinfo=UTC), [], []))
    assert text.splitlines() == [
        "no stored streaming checkpoints: no worker has stored a partition yet",
        "no dead letters"]
