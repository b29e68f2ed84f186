"""Real workers on the real broker into real Postgres: stage parity with one and with two
workers sharing 4 partitions, SIGKILL crashes during a replay, and hostile input."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from examples.music_home_events import DEFAULT_START, generate_events
from monitor.storage.store import SqlStore
from monitor.targets import Target
from streaming.codec import encode_event as encode
from streaming.processor_process import PROCESS_NAME
from streaming.worker import EXIT_PROCESSOR_GONE, dead_letter_topic
from tests.streaming.helpers import read_topic
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
def events() -> pd.DataFrame:
    return generate_events(start=START, days=1, seed=11, events_per_hour=300)


@pytest.fixture(scope="module")
def profile() -> Any:
    return example_profile(seed=11)


@pytest.fixture
def targets(store: SqlStore, profile: Any) -> list[Target]:
    return promote_to_streaming(store, profile)


@pytest.fixture
def run_id() -> str:
    return uuid.uuid4().hex[:8]


def valid_count(events: pd.DataFrame) -> int:
    return len(STREAM.schema.validate(events)[0])


def workers(tmp_path: Path, count: int, *, postgres_url: str, bootstrap: str, run_id: str,
            **options: Any) -> list[Worker]:
    return [Worker(tmp_path / f"worker-{i}.log", database_url=postgres_url,
                   bootstrap=bootstrap, group=f"g-{run_id}", topic=f"home-{run_id}",
                   **options)
            for i in range(count)]


@pytest.mark.parametrize("count", [1, 2])
def test_streaming_values_equal_research_for_every_example_metric(
    count: int, tmp_path: Path, store: SqlStore, targets: list[Target], events: pd.DataFrame,
    profile: Any, bootstrap: str, postgres_url: str, run_id: str,
) -> None:
    topic = f"home-{run_id}"
    new_topic(bootstrap, topic)
    expected = expected_values(targets, events, profile)
    pool = workers(tmp_path, count, postgres_url=postgres_url, bootstrap=bootstrap,
                   run_id=run_id)
    for worker in pool:
        worker.start()
    try:
        if count == 2:  # both share the partitions before the events arrive
            wait_for(lambda: all(w.owned_partitions() and len(w.owned_partitions()[-1]) == 2
                                 for w in pool), 60, "two workers with 2 partitions each",
                     pool)
        send(bootstrap, topic, example_event_dicts(events))
        wait_for(settled(store, topic, valid_count(events), expected), 90,
                 "every window stored", pool)
        assert all(w.alive for w in pool)
    finally:
        codes = [w.stop() for w in pool]
    assert_same_values(store, expected)
    if count == 2:
        final = [set(w.owned_partitions()[-1]) for w in pool]
        assert final[0] | final[1] == {0, 1, 2, 3} and not final[0] & final[1]
    assert codes == [0] * count, [w.tail() for w in pool]


def test_workers_killed_during_a_replay_lose_and_double_nothing(
    tmp_path: Path, store: SqlStore, targets: list[Target], profile: Any, bootstrap: str,
    postgres_url: str, run_id: str,
) -> None:
    """SIGKILL at three random moments while events stream in; each time a new worker
    takes over from the stored offsets."""
    events = generate_events(start=START, days=1, seed=12, events_per_hour=2_000)
    topic = f"home-{run_id}"
    new_topic(bootstrap, topic)
    expected = expected_values(targets, events, profile)
    rows = example_event_dicts(events)
    total = len(rows)

    def replay() -> None:  # about 15 s of traffic, in small messages
        for start in range(0, total, 2_000):
            send(bootstrap, topic, rows[start:start + 2_000], batch=5)
            time.sleep(0.6)

    producer = threading.Thread(target=replay, daemon=True)
    [worker] = workers(tmp_path, 1, postgres_url=postgres_url, bootstrap=bootstrap,
                       run_id=run_id)
    rng = random.Random(run_id)
    thresholds = sorted(rng.uniform(0.1, 0.8) * total for _ in range(3))
    worker.start()
    producer.start()
    kills = 0
    try:
        for threshold in thresholds:
            def absorbed_up_to(t: float = threshold) -> bool:
                return absorbed_events(store, topic) >= t

            wait_for(absorbed_up_to, 120, f"{threshold:.0f} events absorbed", [worker])
            worker.kill()
            kills += 1
            worker.start()
        producer.join(120)
        wait_for(settled(store, topic, valid_count(events), expected), 120,
                 "every window stored", [worker])
    finally:
        worker.stop()
    assert kills == 3
    assert absorbed_events(store, topic) == valid_count(events)
    assert_same_values(store, expected)


def test_a_worker_whose_processor_dies_stops_and_the_next_one_loses_nothing(
    tmp_path: Path, store: SqlStore, targets: list[Target], events: pd.DataFrame,
    profile: Any, bootstrap: str, postgres_url: str, run_id: str,
) -> None:
    """The processor runs in a child process of the worker; if that dies (OOM killer,
    a bug), the worker must not go on without it: it exits with code 3 and says so, and
    a new worker resumes from the stored offsets."""
    topic = f"home-{run_id}"
    new_topic(bootstrap, topic)
    expected = expected_values(targets, events, profile)
    rows = example_event_dicts(events)
    third = len(rows) // 3
    [worker] = workers(tmp_path, 1, postgres_url=postgres_url, bootstrap=bootstrap,
                       run_id=run_id)
    worker.start()
    try:
        send(bootstrap, topic, rows[:third])
        wait_for(lambda: absorbed_events(store, topic) > 0, 90, "the first events absorbed",
                 [worker])
        assert worker.process is not None
        child = processor_pid(worker.process.pid)
        os.kill(child, signal.SIGINT)  # Ctrl-C reaches the group: the worker handles it
        # The processor lives on: it absorbs events sent after the signal.
        send(bootstrap, topic, rows[third:2 * third])
        sent_so_far = valid_count(events.iloc[:2 * third])
        wait_for(lambda: absorbed_events(store, topic) >= sent_so_far, 90,
                 "the events sent after the Ctrl-C absorbed", [worker])
        assert running(child) and worker.alive, worker.tail()
        os.kill(child, signal.SIGKILL)
        send(bootstrap, topic, rows[2 * third:])
        wait_for(lambda: not worker.alive, 60, "the worker to stop", [worker])
        assert worker.process.returncode == EXIT_PROCESSOR_GONE, worker.tail()
        assert "start the worker again" in worker.tail(), worker.tail()
        worker.start()
        wait_for(settled(store, topic, valid_count(events), expected), 90,
                 "every window stored", [worker])
    finally:
        worker.stop()
    assert_same_values(store, expected)


def running(pid: int) -> bool:
    """Alive, not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return not any(line.startswith("State:") and "Z" in line for line in status)
    except FileNotFoundError:
        return False


def processor_pid(worker_pid: int) -> int:
    """The worker's child process that runs the processor (not multiprocessing's resource
    tracker, which a spawned processor brings): named PROCESS_NAME, forked or spawned."""
    with open(f"/proc/{worker_pid}/task/{worker_pid}/children") as children:
        for pid in children.read().split():
            with open(f"/proc/{pid}/comm", "rb") as comm:
                if comm.read().strip() == PROCESS_NAME:
                    return int(pid)
    raise AssertionError(f"worker {worker_pid} has no processor process")


def hostile_messages(valid: list[dict[str, Any]], rng: random.Random
                     ) -> list[tuple[str, bytes]]:
    """At least 10,000 bad messages, each with the dead-letter reason it must get."""
    base = json.loads(encode(valid[0]))  # JSON types only: json.dumps takes it as it is
    bad: list[tuple[str, bytes]] = []

    def event(**changes: Any) -> dict[str, Any]:
        return {**base, **changes}

    def without(name: str) -> dict[str, Any]:
        return {k: v for k, v in base.items() if k != name}

    for i in range(1_000):
        text = encode(event(user_id=i)).decode()
        bad.append(("malformed_json", text[: rng.randint(1, len(text) - 1)].encode()))
        bad.append(("not_an_event", rng.choice([b"42", b'"hello"', b"null", b"[1, 2]",
                                                b'[{"ts": 1}, 7]', b"true"])))
        bad.append(("missing field 'ts'", encode(without("ts"))))
        bad.append(("field 'country' is null", encode(without("country"))))
        bad.append(("field 'latency_ms' is not a number",
                    encode(event(latency_ms=rng.choice(["fast", "1,5", [], {}])))))
        bad.append(("field 'latency_ms' is NaN",
                    json.dumps(event(latency_ms=float("nan"))).encode()))
        bad.append(("field 'latency_ms' is not finite",
                    json.dumps(event(latency_ms=rng.choice([1e999, -1e999]))).encode()))
        bad.append(("unparseable timestamp in ts",
                    encode(event(ts=rng.choice(["yesterday", "2026-13-45", ""])))))
        bad.append(("timestamp in ts is in the future",
                    encode(event(ts="2100-01-01T00:00:00Z"))))
        bad.append(("malformed_json", b"\xff\xfe" + bytes(rng.randrange(256) for _ in range(40))))
    for depth in (10_000, 30_000):
        bad.append(("malformed_json", b"[" * depth + b"]" * depth))
    for _ in range(20):
        bad.append(("oversized", b'{"ts": "' + b"x" * 70_000 + b'"}'))
        bad.append(("empty", b""))
    bad.append(("field 'latency_ms' is not a number",
                encode(event(latency_ms="x", **{f"k{i}": i for i in range(3_000)}))))
    return bad


def test_hostile_input_is_dead_lettered_and_changes_no_value(
    tmp_path: Path, store: SqlStore, targets: list[Target], events: pd.DataFrame,
    profile: Any, bootstrap: str, postgres_url: str, run_id: str,
) -> None:
    valid_events = events[events["ts"] < START + pd.Timedelta(hours=6)]
    topic = f"home-{run_id}"
    new_topic(bootstrap, topic)
    expected = expected_values(targets, valid_events, profile)
    valid = example_event_dicts(valid_events)
    rng = random.Random(7)
    bad = hostile_messages(valid, rng)
    assert len(bad) >= 10_000
    # Late events: for the first hour, sent after everything else (0 s lateness).
    late = [("late", encode({**event, "ts": valid[0]["ts"]})) for event in valid[-50:]]
    [worker] = workers(tmp_path, 1, postgres_url=postgres_url, bootstrap=bootstrap,
                       run_id=run_id, extra=["--max-message-bytes", "65536"])
    worker.start()
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, max_request_size=4 * 2**20,
                             linger_ms=5)
    try:
        good_messages = [encode(e) for e in valid]
        mixed: list[tuple[str | None, bytes]] = [(None, m) for m in good_messages]
        for reason, value in bad:
            mixed.insert(rng.randrange(len(mixed) + 1), (reason, value))
        keys = [str(rng.randrange(1000)).encode() for _ in mixed]
        for key, (_, value) in zip(keys, mixed, strict=True):
            producer.send(topic, value=value, key=key)
        producer.flush()
        for number, (_, value) in enumerate(late):
            producer.send(topic, value=value, key=str(number).encode())
        producer.flush()
        wait_for(settled(store, topic, valid_count(valid_events), expected), 120,
                 "every window stored", [worker])
        letters = read_topic(bootstrap, dead_letter_topic(topic),
                             events=len(bad) + len(late), timeout=60)
        assert worker.alive, worker.tail()
    finally:
        producer.close()
        code = worker.stop()
    assert code == 0, worker.tail()
    got = Counter(json.loads(m.value)["reason"] for m in letters)
    want = Counter(reason for reason, _ in bad + late)
    assert got == want
    assert_same_values(store, expected)
    counted = store.read_values(metric="home.dead_letters", stage="streaming", limit=None)
    by_segment = counted.groupby("segment")["value"].sum()
    assert by_segment["*"] == len(bad) + len(late)
    assert by_segment["reason=late"] == len(late)
