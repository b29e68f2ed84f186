"""Reading back what the tests sent: every message of a topic, from the beginning."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from streaming.codec import DecodeError, decode


@dataclass(frozen=True)
class Message:
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp: int  # ms, when it was produced

    @property
    def events(self) -> list[dict[str, Any]]:
        return decode(self.value, max_bytes=2**31)


def all_events(messages: list[Message]) -> list[dict[str, Any]]:
    return [event for message in messages for event in message.events]


def read_topic(bootstrap: str, topic: str, *, events: int, timeout: float = 20.0,
               linger: float = 0.5) -> list[Message]:
    """The topic's messages until they carry ``events`` events (or the timeout), then
    ``linger`` seconds more to catch any extra ones.

    Partitions are assigned directly rather than through a consumer group: no JoinGroup
    wait, and no reliance on end offsets (which Tansu gets wrong).
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             group_id=None, fetch_max_bytes=8 * 2**20)
    try:
        deadline = time.monotonic() + timeout
        partitions = None
        while not partitions and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                time.sleep(0.05)
        assert partitions, f"topic {topic} does not exist"
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        messages: list[Message] = []
        seen = 0
        extra_until = None
        while True:
            now = time.monotonic()
            if extra_until is None and (seen >= events or now >= deadline):
                extra_until = now + linger
            if extra_until is not None and now >= extra_until:
                return messages
            for records in consumer.poll(timeout_ms=100).values():
                for record in records:
                    messages.append(Message(record.partition, record.offset, record.key,
                                            record.value, record.timestamp))
                    seen += _event_count(record.value)
    finally:
        consumer.close()


def _event_count(value: bytes) -> int:
    """The events a message carries; 0 for one that does not decode (a dead letter)."""
    try:
        return len(decode(value, max_bytes=2**31))
    except DecodeError:
        return 0
