"""A real worker's /metrics and /readyz against what was produced: the events absorbed
per partition, the dead letters by reason, and each partition's event-time lag (the wall
clock minus the watermark its events give), on the embedded broker and Postgres."""

from __future__ import annotations

import socket
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kafka import KafkaProducer

from examples.music_home_events import DEFAULT_START, generate_events
from monitor.storage.store import SqlStore
from monitor.storage.stream_status import read_stream_status
from streaming.partition import OUTLIERS
from tests.streaming.helpers import Message, read_topic
from tests.streaming.probes import by_label, get, get_json, probe_port, samples
from tests.streaming.workers import (
    PARTITIONS,
    STREAM,
    Worker,
    example_event_dicts,
    example_profile,
    new_topic,
    promote_to_streaming,
    send,
    wait_for,
)

IDLE_TIMEOUT_S = 50.0  # no partition goes idle (and moves its watermark) during the test
READY_LAG_S = 60.0
MALFORMED = 3


def valid_events(count: int, first: pd.Timestamp, last: pd.Timestamp) -> pd.DataFrame:
    """``count`` valid homepage events with distinct times spread from ``first`` to
    ``last``."""
    events = generate_events(start=DEFAULT_START, days=1, seed=5, events_per_hour=600,
                             incidents=False)
    clean, _ = STREAM.schema.validate(events)
    chosen = clean.head(count).reset_index(drop=True)
    assert len(chosen) == count
    chosen[STREAM.time] = pd.date_range(first, last, periods=count)
    return chosen


def event_ns(value: Any) -> int:
    stamp = (pd.Timestamp(value, unit="ms", tz="UTC") if isinstance(value, int | float)
             else pd.Timestamp(value))
    return int(stamp.tz_convert("UTC").value if stamp.tzinfo else stamp.value)


def expected_watermarks(messages: list[Message]) -> dict[int, float]:
    """Per partition, the event watermark its valid events give: the (OUTLIERS + 1)-th
    highest event time (Unix seconds)."""
    times: dict[int, list[int]] = {}
    for message in messages:
        for event in message.events:
            times.setdefault(message.partition, []).append(event_ns(event[STREAM.time]))
    return {partition: sorted(found, reverse=True)[OUTLIERS] / 1e9
            for partition, found in times.items()}


def events_per_partition(messages: list[Message]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for message in messages:
        counts[message.partition] = counts.get(message.partition, 0) + len(message.events)
    return counts


def absorbed(port: int) -> float:
    _, body = get(port, "/metrics")
    return sum(by_label(samples(body.decode()), "monitor_events_absorbed_total",
                        "partition").values())


def test_metrics_and_readiness_follow_what_was_produced(
    tmp_path: Path, store: SqlStore, bootstrap: str, postgres_url: str,
) -> None:
    run_id = uuid.uuid4().hex[:8]
    topic = f"home-{run_id}"
    new_topic(bootstrap, topic)
    promote_to_streaming(store, example_profile(seed=5))
    now = pd.Timestamp.now(tz="UTC")
    old = valid_events(400, now - pd.Timedelta("10min"), now - pd.Timedelta("5min"))
    send(bootstrap, topic, example_event_dicts(old))
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for _ in range(MALFORMED):
        producer.send(topic, b"{not json", partition=0).get(30)
    producer.close()

    worker = Worker(tmp_path / "worker.log", database_url=postgres_url, bootstrap=bootstrap,
                    group=f"g-{run_id}", topic=topic, idle_timeout=IDLE_TIMEOUT_S,
                    extra=["--health-port", "0", "--ready-lag", str(READY_LAG_S)]).start()
    try:
        wait_for(lambda: probe_port(worker.log_path) is not None, 60, "the probes' port",
                 [worker])
        port = probe_port(worker.log_path)
        assert port is not None
        assert get_json(port, "/healthz") == (200, {"alive": True, "reason": None})
        wait_for(lambda: absorbed(port) >= len(old), 90, "the old events absorbed", [worker])

        # 5 to 10 minutes behind: every partition lags more than --ready-lag
        messages = read_topic(bootstrap, topic, events=len(old) + MALFORMED)
        good = [m for m in messages if m.value != b"{not json"]
        before = time.time()
        status, body = get(port, "/metrics")
        ready_status, readiness = get_json(port, "/readyz")
        after = time.time()
        assert status == 200
        found = samples(body.decode())
        assert by_label(found, "monitor_events_absorbed_total", "partition") == {
            str(p): float(n) for p, n in events_per_partition(good).items()}
        assert by_label(found, "monitor_dead_letters_total", "reason") == {
            "malformed_json": float(MALFORMED)}
        watermarks = expected_watermarks(good)
        assert len(watermarks) == PARTITIONS
        lags = by_label(found, "monitor_partition_lag_seconds", "partition")
        assert set(lags) == {str(p) for p in watermarks}
        for partition, watermark in watermarks.items():
            assert before - watermark - 1e-3 <= lags[str(partition)] <= after - watermark + 1e-3
            assert found[("monitor_partition_watermark_timestamp_seconds",
                          (("partition", str(partition)), ("topic", topic)))] == \
                pytest.approx(watermark, abs=1e-6)
        assert ready_status == 503 and not readiness["ready"]
        assert "behind by more than 60 s" in readiness["reason"]
        assert {p["partition"] for p in readiness["partitions"]} == set(range(PARTITIONS))

        # fresh events on every partition: caught up, ready
        fresh_at = pd.Timestamp.now(tz="UTC")
        fresh = valid_events(80, fresh_at - pd.Timedelta("20s"), fresh_at - pd.Timedelta("1s"))
        send(bootstrap, topic, example_event_dicts(fresh))
        wait_for(lambda: absorbed(port) >= len(old) + len(fresh), 60,
                 "the fresh events absorbed", [worker])
        good = [m for m in read_topic(bootstrap, topic, events=len(old) + len(fresh)
                                      + MALFORMED) if m.value != b"{not json"]
        assert min(events_per_partition(good).values()) > len(old) // PARTITIONS // 4
        watermarks = expected_watermarks(good)
        assert all(fresh_at.timestamp() - 21 <= w for w in watermarks.values()), \
            "every partition got at least 3 fresh events"
        before = time.time()
        ready_status, readiness = get_json(port, "/readyz")
        after = time.time()
        assert (ready_status, readiness["ready"], readiness["reason"]) == (200, True, None)
        for entry in readiness["partitions"]:
            watermark = watermarks[entry["partition"]]
            assert before - watermark - 1e-3 <= entry["lag_s"] <= after - watermark + 1e-3
        _, body = get(port, "/metrics")
        found = samples(body.decode())
        assert found[("monitor_ready", ())] == 1.0
        assert by_label(found, "monitor_events_absorbed_total", "partition") == {
            str(p): float(n) for p, n in events_per_partition(good).items()}
        assert found[("monitor_processor_starts_total", (("topic", topic),))] == 1.0
        assert found[("monitor_store_seconds_count",
                      (("operation", "store"), ("topic", topic)))] >= 1
        assert worker.process is not None
        with store.database.connect() as conn:  # what `monitor stream status` shows
            stored = read_stream_status(conn, datetime.now(UTC), [topic]).partitions
        assert {(p.partition, p.owner) for p in stored} == {
            (p, f"{socket.gethostname()}/{worker.process.pid}") for p in range(PARTITIONS)}
    finally:
        code = worker.stop()
    assert code == 0, worker.tail()
