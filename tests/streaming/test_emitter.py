"""The Emitter against the real (embedded) broker, and against no broker at all."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict

import pytest
from kafka.partitioner.default import murmur2

from streaming.broker import create_topics, free_port
from streaming.codec import encode_event
from streaming.emitter import (
    BROKER_UNREACHABLE,
    BUFFER_FULL,
    CLOSED,
    NOT_ENCODABLE,
    TOO_LARGE,
    Emitter,
    Failure,
)
from tests.streaming.helpers import all_events, read_topic
from tests.streaming.producer_threads import producers_closed


def test_10000_events_arrive_exactly_once_in_bounded_batches(bootstrap: str,
                                                             topic: str) -> None:
    create_topics(bootstrap, {topic: 4})
    max_events, max_bytes = 300, 20_000
    # A linger longer than the test: a batch closes only on a bound (or the flush), so
    # how full the batches get does not depend on how fast this machine emits.
    emitter = Emitter(bootstrap, topic, key_field="user_id", max_batch_events=max_events,
                      max_batch_bytes=max_bytes, linger_ms=600_000)

    def emit_share(first: int) -> None:  # four threads at once
        for n in range(first, 10_000, 4):
            assert emitter.emit({"ts": 1_777_636_800_000 + n, "user_id": n % 97, "n": n,
                                 "pad": "x" * (n % 50)})

    threads = [threading.Thread(target=emit_share, args=(first,)) for first in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert emitter.flush(timeout=30)
    stats = emitter.stats()
    emitter.close()
    assert (stats.emitted, stats.sent, stats.failed, stats.pending) == (10_000, 10_000, 0, 0)

    messages = read_topic(bootstrap, topic, events=10_000)
    events = all_events(messages)
    assert len(events) == 10_000
    assert sorted(event["n"] for event in events) == list(range(10_000))
    assert len(messages) == stats.messages
    assert all(len(m.events) <= max_events and len(m.value) <= max_bytes for m in messages)
    assert max(len(m.value) for m in messages) > max_bytes * 0.9  # bytes bound the batches
    assert all(m.key is None for m in messages)
    # A key's events all land where Kafka's default partitioner puts the key
    partitions: dict[int, set[int]] = defaultdict(set)
    for message in messages:
        for event in message.events:
            partitions[event["user_id"]].add(message.partition)
    assert all(found == {(murmur2(str(user).encode()) & 0x7FFFFFFF) % 4}
               for user, found in partitions.items())
    # ...in the order they were emitted, within each emitting thread
    for user in (0, 1, 2, 3):
        ns = [e["n"] for m in messages for e in m.events if e["user_id"] == user]
        for first in range(4):
            share = [n for n in ns if n % 4 == first]
            assert share == sorted(share)


def test_event_count_bounds_the_batches_and_one_event_is_an_object(bootstrap: str,
                                                                   topic: str) -> None:
    create_topics(bootstrap, {topic: 1})
    with Emitter(bootstrap, topic, max_batch_events=7) as emitter:
        for n in range(50):
            emitter.emit({"ts": n})
    messages = read_topic(bootstrap, topic, events=50)
    assert [len(m.events) for m in messages] == [7] * 7 + [1]
    assert messages[-1].value == b'{"ts":49}'  # a lone event is sent as the object itself
    assert [e["ts"] for e in all_events(messages)] == list(range(50))


def test_close_sends_what_is_still_lingering(bootstrap: str, topic: str) -> None:
    """Events wait out their batch's linger (a minute here); close() sends them at once.

    That they were held, not just not sent yet: a full batch of another partition, emitted
    after them, is sent while they wait. The sender takes its whole queue at once, so it
    had them in hand when it sent that batch, and kept them back."""
    partitions = 4
    create_topics(bootstrap, {topic: partitions})
    held_key, full_key = keys_on_two_partitions(partitions)
    emitter = Emitter(bootstrap, topic, key_field="user_id", linger_ms=60_000,
                      max_batch_bytes=1_000)
    for n in range(25):
        emitter.emit({"ts": n, "user_id": held_key})
    # An event as large as a batch may be wakes the sender; a second one does not fit in
    # its batch, which is sent full.
    emitter.emit(event_of_size({"ts": 25, "user_id": full_key}, 1_000))
    emitter.emit(event_of_size({"ts": 26, "user_id": full_key}, 1_000))
    deadline = time.monotonic() + 10
    while emitter.stats().sent < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert emitter.stats().sent == 1
    assert emitter.close(timeout=10)
    assert emitter.stats().sent == 27
    assert len(all_events(read_topic(bootstrap, topic, events=27))) == 27
    assert not emitter.emit({"ts": 27})
    assert emitter.failed[-1].reason == CLOSED


def test_closing_with_nothing_sent_logs_no_error(bootstrap: str, topic: str,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """kafka-python's idempotent producer asks for a producer id as soon as it connects;
    closed at once, it cancelled that request and logged ``ERROR Fatal Error handling
    request InitProducerIdRequest`` (nearly every time; an empty replay did this)."""
    create_topics(bootstrap, {topic: 1})
    caplog.set_level(logging.WARNING)
    with producers_closed():
        for _ in range(5):
            emitter = Emitter(bootstrap, topic)
            assert emitter.flush(timeout=10)
            assert emitter.close(timeout=10)
            assert emitter.stats().emitted == emitter.stats().failed == 0
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []


def test_linger_sends_without_a_flush(bootstrap: str, topic: str) -> None:
    create_topics(bootstrap, {topic: 1})
    emitter = Emitter(bootstrap, topic, linger_ms=20)
    emitter.emit({"ts": 1})
    deadline = time.monotonic() + 5
    while emitter.stats().sent < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert emitter.stats().sent == 1
    emitter.close()


def test_a_down_broker_does_not_block_and_every_event_is_reported() -> None:
    reported: list[Failure] = []
    emitter = Emitter(f"127.0.0.1:{free_port()}", "nowhere", delivery_timeout_ms=1000,
                      on_failure=reported.extend)
    started = time.monotonic()
    slowest = 0.0
    for n in range(500):
        before = time.perf_counter()
        assert emitter.emit({"ts": n, "n": n})
        slowest = max(slowest, time.perf_counter() - before)
    assert slowest < 0.05
    assert emitter.flush(timeout=15)
    assert time.monotonic() - started < 5
    stats = emitter.stats()
    assert (stats.emitted, stats.sent, stats.failed, stats.pending) == (500, 0, 500, 0)
    assert stats.failures == {BROKER_UNREACHABLE: 500}
    assert sorted(f.event["n"] for f in reported) == list(range(500))
    assert len(emitter.failed) == 500
    assert emitter.failed[0].reason == BROKER_UNREACHABLE
    assert "Kafka at 127.0.0.1:" in emitter.failed[0].detail
    closing = time.monotonic()
    emitter.close()
    assert time.monotonic() - closing < 1  # nothing left to wait for


def test_a_full_buffer_drops_rather_than_blocks() -> None:
    emitter = Emitter(f"127.0.0.1:{free_port()}", "nowhere", max_buffer_events=10,
                      delivery_timeout_ms=60_000, keep_failed=5)
    accepted = [emitter.emit({"ts": n}) for n in range(25)]
    assert accepted == [True] * 10 + [False] * 15
    stats = emitter.stats()
    assert (stats.emitted, stats.dropped, stats.failed, stats.pending) == (25, 15, 15, 10)
    assert stats.failures == {BUFFER_FULL: 15}
    assert [f.event["ts"] for f in emitter.failed] == [20, 21, 22, 23, 24]  # the last five
    closing = time.monotonic()
    assert emitter.close(timeout=0.5)  # all resolved, without waiting out a connection attempt
    assert time.monotonic() - closing < 1.5
    assert emitter.stats().failures == {BUFFER_FULL: 15, BROKER_UNREACHABLE: 10}


def test_block_ms_bounds_the_wait_for_room() -> None:
    emitter = Emitter(f"127.0.0.1:{free_port()}", "nowhere", max_buffer_events=1,
                      block_ms=200, delivery_timeout_ms=60_000)
    assert emitter.emit({"ts": 1})
    started = time.monotonic()
    assert not emitter.emit({"ts": 2})
    assert 0.15 < time.monotonic() - started < 2
    emitter.close(timeout=0.5)


def test_events_that_cannot_be_sent_are_refused_at_once() -> None:
    emitter = Emitter(f"127.0.0.1:{free_port()}", "nowhere", max_batch_bytes=100)
    assert not emitter.emit({"ts": 1, "x": float("nan")})
    assert not emitter.emit({"ts": 1, "pad": "x" * 200})
    assert not emitter.emit(["not", "a", "mapping"])  # type: ignore[arg-type]
    reasons = [(f.reason, f.detail) for f in emitter.failed]
    assert reasons[0] == (NOT_ENCODABLE, "field 'x' is nan, which JSON cannot represent")
    assert reasons[1][0] == TOO_LARGE and "over max_batch_bytes=100" in reasons[1][1]
    assert reasons[2][0] == NOT_ENCODABLE
    assert emitter.failed[1].event == {"ts": 1, "pad": "x" * 200}
    assert emitter.stats().failures == {NOT_ENCODABLE: 2, TOO_LARGE: 1}
    emitter.close(timeout=0.5)


@pytest.mark.parametrize(("options", "problem"), [
    ({"max_batch_events": 0}, "max_batch_events must be positive"),
    ({"max_batch_bytes": -1}, "max_batch_bytes must be positive"),
    ({"linger_ms": -5}, "linger_ms must be zero or more"),
    ({"block_ms": float("nan")}, "block_ms must be zero or more"),
])
def test_bad_settings_fail_early(options: dict[str, float], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Emitter("127.0.0.1:9092", "events", **options)  # type: ignore[arg-type]


def keys_on_two_partitions(partitions: int) -> tuple[int, int]:
    """Two user ids whose events go to different partitions (Kafka's default partitioner)."""
    def partition(user: int) -> int:
        return (murmur2(str(user).encode()) & 0x7FFFFFFF) % partitions

    other = next(user for user in range(1, 100) if partition(user) != partition(0))
    return 0, other


def event_of_size(event: dict[str, object], size: int) -> dict[str, object]:
    """``event`` padded to ``size`` bytes of JSON."""
    padded = {**event, "pad": ""}
    padded["pad"] = "x" * (size - len(encode_event(padded)))
    assert len(encode_event(padded)) == size
    return padded
