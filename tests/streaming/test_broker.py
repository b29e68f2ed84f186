"""The embedded broker: it serves Kafka clients, and says clearly when it cannot start.

These also pin down what the Faust worker relies on from Tansu (consumer groups under
aiokafka) and the ListOffsets quirk it must work around.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from streaming.broker import (
    BrokerError,
    EmbeddedBroker,
    create_topics,
    kafka_bootstrap,
    list_topics,
    wait_until_reachable,
)
from tests.streaming.helpers import read_topic

embedded_only = pytest.mark.usefixtures("require_embedded")


@pytest.fixture
def require_embedded(embedded_broker: EmbeddedBroker | None) -> None:
    if embedded_broker is None:
        pytest.skip("MONITOR_KAFKA_BOOTSTRAP points the tests at another cluster")


@embedded_only
def test_the_broker_is_on_a_loopback_port(embedded_broker: EmbeddedBroker) -> None:
    assert embedded_broker.running()
    assert re.fullmatch(r"127\.0\.0\.1:\d+", embedded_broker.bootstrap)
    assert embedded_broker.bootstrap == f"127.0.0.1:{embedded_broker.port}"


def test_a_produced_message_is_consumed_back(bootstrap: str, topic: str) -> None:
    assert create_topics(bootstrap, {topic: 4}) == {topic: 4}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        [described] = admin.describe_topics([topic])
    finally:
        admin.close()
    assert len(described["partitions"]) == 4

    producer = KafkaProducer(bootstrap_servers=bootstrap)
    sent = producer.send(topic, json.dumps({"ts": 1, "n": 7}).encode(), partition=2).get(10)
    producer.close()
    [message] = read_topic(bootstrap, topic, events=1)
    assert (message.partition, message.offset, message.events) == (2, sent.offset,
                                                                    [{"ts": 1, "n": 7}])


def test_creating_a_topic_again_keeps_it(bootstrap: str, topic: str) -> None:
    create_topics(bootstrap, {topic: 4})
    assert create_topics(bootstrap, {topic: 4}) == {topic: 4}
    assert create_topics(bootstrap, {topic: 2}) == {topic: 4}  # exists: not changed
    assert topic in list_topics(bootstrap)
    with pytest.raises(ValueError, match="at least one partition"):
        create_topics(bootstrap, {topic: 0})


def test_aiokafka_consumes_with_a_group(bootstrap: str, topic: str) -> None:
    """What Faust does: a consumer group under aiokafka, with its offsets committed."""
    from aiokafka import AIOKafkaConsumer

    create_topics(bootstrap, {topic: 4})
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for n in range(40):
        producer.send(topic, json.dumps({"ts": n}).encode(), key=str(n).encode())
    producer.close()

    async def consume() -> tuple[list[int], int]:
        # JoinGroup answers after half the session timeout on Tansu: keep it short.
        member = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=topic,
                                  auto_offset_reset="earliest", enable_auto_commit=False,
                                  session_timeout_ms=6000, heartbeat_interval_ms=1000)
        await member.start()
        try:
            seen: list[int] = []
            deadline = time.monotonic() + 15
            while len(seen) < 40 and time.monotonic() < deadline:
                batches = await member.getmany(timeout_ms=200)
                seen += [json.loads(r.value)["ts"] for rs in batches.values() for r in rs]
            await member.commit()
            return seen, len(member.assignment())
        finally:
            await member.stop()

    seen, assigned = asyncio.run(consume())
    assert sorted(seen) == list(range(40))
    assert assigned == 4
    # Read the commits back without joining: a member joining right after another left
    # waits about twice the session timeout on Tansu.
    reader = KafkaConsumer(bootstrap_servers=bootstrap, group_id=topic,
                           enable_auto_commit=False)
    try:
        committed = [reader.committed(TopicPartition(topic, p)) for p in range(4)]
    finally:
        reader.close()
    assert sum(offset or 0 for offset in committed) == 40


@embedded_only
def test_end_offsets_are_wrong_but_the_fetch_highwater_is_right(bootstrap: str,
                                                                topic: str) -> None:
    """Tansu's ListOffsets(latest) is the last record batch's base offset + 1."""
    create_topics(bootstrap, {topic: 1})
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=100)
    for _ in range(5):  # one record batch of five
        producer.send(topic, b'{"ts": 1}', partition=0)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        records = 0
        deadline = time.monotonic() + 10
        while records < 5 and time.monotonic() < deadline:
            records += sum(len(rs) for rs in consumer.poll(timeout_ms=100).values())
        assert records == 5
        assert consumer.highwater(partition) == 5
        assert consumer.end_offsets([partition])[partition] == 1  # should be 5
    finally:
        consumer.close()


@embedded_only
def test_a_taken_port_is_refused(embedded_broker: EmbeddedBroker) -> None:
    # Tansu itself would start there too (SO_REUSEPORT) and share the connections.
    with pytest.raises(BrokerError, match=f"port {embedded_broker.port} .* is in use"):
        EmbeddedBroker(embedded_broker.port).start()


def test_a_broker_that_dies_at_start_shows_its_output(tmp_path: Path) -> None:
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\necho 'tansu broker 0.6.0'\necho 'bad storage engine' >&2\n"
                    "exit 3\n")
    fake.chmod(0o755)
    broker = EmbeddedBroker(binary=str(fake))
    with pytest.raises(BrokerError) as raised:
        broker.start()
    message = str(raised.value)
    assert "exited with code 3" in message
    assert "bad storage engine" in message
    assert not broker.running()


def test_a_broker_that_never_answers_times_out(tmp_path: Path) -> None:
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\necho 'still thinking'\nexec sleep 30\n")
    fake.chmod(0o755)
    broker = EmbeddedBroker(binary=str(fake), startup_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(BrokerError, match=r"(?s)within 0.5 s.*still thinking"):
        broker.start()
    assert time.monotonic() - started < 5  # the sleeping process was killed, not awaited
    assert not broker.running()


def test_nothing_listening_is_a_clear_error() -> None:
    from streaming.broker import free_port

    port = free_port()
    with pytest.raises(BrokerError, match=f"no Kafka broker answered at 127.0.0.1:{port}"):
        wait_until_reachable(f"127.0.0.1:{port}", timeout=0.3)
    with pytest.raises(ValueError, match="host:port"):
        wait_until_reachable("localhost", timeout=0.3)


@embedded_only
def test_monitor_broker_runs_until_sigterm(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", "from monitor.cli.main import cli; cli()",
         "broker", "--port", "0", "--topic", "events:2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "MONITOR_KAFKA_BOOTSTRAP": ""},
    )
    try:
        assert process.stdout is not None
        address = None
        deadline = time.monotonic() + 30
        while address is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            found = re.search(r"listening at (127\.0\.0\.1:\d+)", line)
            address = found.group(1) if found else None
        assert address is not None, process.stderr.read() if process.stderr else ""
        assert create_topics(address, {"events": 2}) == {"events": 2}  # made at start
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert "broker stopped" in stderr
    with pytest.raises(BrokerError):
        wait_until_reachable(address, timeout=0.3)  # and Tansu went with it


def test_kafka_bootstrap_prefers_the_configured_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_KAFKA_BOOTSTRAP", "kafka-1:9092,kafka-2:9092")
    with kafka_bootstrap() as address:
        assert address == "kafka-1:9092,kafka-2:9092"
    monkeypatch.setenv("MONITOR_KAFKA_BOOTSTRAP", " ")
    with kafka_bootstrap() as address:
        assert re.fullmatch(r"127\.0\.0\.1:\d+", address)
        assert list_topics(address) == set()  # a broker of its own, just started
    with pytest.raises(BrokerError):
        wait_until_reachable(address, timeout=0.3)  # and stopped
