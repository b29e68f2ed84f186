"""The worker's agent pipelines its micro-batches: N+1 decodes while N is stored.

A fake Faust stream feeds streaming.worker._StreamAgent, and a ledger stands in for the
processor's process: it records what was prepared (decoded here or raw), stored and
acknowledged, and can hold a store or a decoding halfway. Whatever the interleaving, a
message is acknowledged only after it is stored, none is stored twice, each partition's
messages are stored in offset order, and none that was delivered to a partition this
worker kept is lost.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

import streaming.pre_decode
import streaming.worker
from monitor.schema import Schema
from streaming.codec import MAX_MESSAGE_BYTES
from streaming.messages import OFFSET, PARTITION, DecodedPart, RawMessage, Rejected
from streaming.pre_decode import Decoding
from streaming.processor_process import ProcessorProcess
from streaming.split_decode import HeadDecoded, decode_tail
from streaming.worker import WorkerSettings, _StreamAgent

SCHEMA = Schema.parse({"x": "float"})
WAIT_S = 5.0  # at most, for anything the test waits on


@dataclass(frozen=True)
class Message:
    partition: int
    offset: int
    value: bytes
    key: bytes | None = None


@dataclass(frozen=True)
class Event:
    message: Message


def event(partition: int, offset: int) -> Event:
    value = json.dumps([{"ts": 1767225600000 + offset, "x": float(offset)}]).encode()
    return Event(Message(partition, offset, value))


class FakeStream:
    """Faust's stream as the agent uses it: noack(), events(), ack() and its buffer."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.channel = self  # the agent peeks at channel._queue to see what waits
        self._queue = self.queue
        self.acked: list[tuple[int, int]] = []

    def noack(self) -> FakeStream:
        return self

    async def events(self) -> Any:
        while True:
            yield await self.queue.get()

    async def ack(self, item: Event) -> None:
        self.acked.append((item.message.partition, item.message.offset))


class Ledger(ProcessorProcess):
    """The processor's process as a ledger (a subclass, so the agent takes it for one;
    nothing of the real one is started)."""

    def __init__(self) -> None:  # no process: nothing of the parent's __init__
        self.stored: list[tuple[int, int]] = []
        self.prepared_raw = 0
        self.prepared_decoded = 0
        self.pending: list[tuple[int, int]] | None = None
        self.revoked: list[int] = []
        self.final_stores = 0
        self.closed = False
        # before a commit ends (what it returns is ignored: the tests' one-line gates)
        self.commit_gate: Callable[[int], object] = lambda done: None

    def owned(self) -> set[int]:
        return set()

    def assign(self, partitions: Sequence[int]) -> None:
        pass

    def revoke(self, partitions: Sequence[int]) -> None:
        self.revoked += partitions

    def prepare(self, messages: Sequence[RawMessage], backlog: bool) -> list[Rejected]:
        self.prepared_raw += 1
        self.pending = [(m.partition, m.offset) for m in messages]
        return []

    def prepare_decoded(self, messages: Sequence[RawMessage], head: HeadDecoded,
                        backlog: bool) -> tuple[list[Rejected], bool]:
        # the head's decoding and the rest's are of these very messages
        decoded = decode_tail(head, messages[head.messages:], SCHEMA, MAX_MESSAGE_BYTES)
        rows = list(zip(decoded.events[PARTITION], decoded.events[OFFSET], strict=True))
        assert rows == [(m.partition, m.offset) for m in messages]
        self.prepared_decoded += 1
        self.pending = [(m.partition, m.offset) for m in messages]
        return [], False

    def commit(self) -> list[Rejected]:
        assert self.pending is not None, "a commit without a prepare"
        self.commit_gate(len(self.stored))
        for key in self.pending:
            assert key not in self.stored, f"{key} stored twice"
            self.stored.append(key)
        self.pending = None
        return []

    def store(self) -> None:
        self.final_stores += 1

    def tick(self) -> list[tuple[str, int]]:
        return []

    def close(self, timeout: float = 2.0) -> None:
        self.closed = True


def agent_of(ledger: Ledger, take_messages: int, decoder: ThreadPoolExecutor
             ) -> _StreamAgent:
    settings = WorkerSettings("unused:9092", "g", take_messages=take_messages,
                              take_within_s=60.0, tick_interval_s=3600.0)
    decoding = Decoding(SCHEMA, settings.stream.max_message_bytes,
                        settings.stream.max_future_s, decoder)
    return _StreamAgent(settings, "t", ledger, dead_letters=None,
                        app_stopping=lambda: False, decoding=decoding)


def check_ledger(ledger: Ledger, stream: FakeStream) -> None:
    """Acknowledged only once stored; each partition stored in offset order."""
    assert set(stream.acked) <= set(ledger.stored)
    assert len(set(ledger.stored)) == len(ledger.stored)
    for partition in {p for p, _ in ledger.stored}:
        offsets = [o for p, o in ledger.stored if p == partition]
        assert offsets == sorted(offsets)


async def until(condition: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.005)


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


def test_thirty_micro_batches_are_stored_once_in_order_each_decoding_while_one_stores(
) -> None:
    batches, size = 30, 4
    decoder = ThreadPoolExecutor(1)
    ledger = Ledger()
    decodings_started: list[int] = []
    started = threading.Condition()
    real_submit = decoder.submit

    def counting_submit(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with started:
            decodings_started.append(len(decodings_started))
            started.notify_all()
        return real_submit(fn, *args, **kwargs)

    decoder.submit = counting_submit  # type: ignore[method-assign]

    def gate(stored: int) -> None:
        # Micro-batch k is being stored: unless it is the last, k+1 must start decoding
        # before this store ends. An agent that decodes after storing would time out.
        k = stored // size
        if k + 1 < batches:
            with started:
                assert started.wait_for(lambda: len(decodings_started) > k + 1, WAIT_S), (
                    f"micro-batch {k + 1} did not decode while {k} was stored")

    ledger.commit_gate = gate

    async def test() -> None:
        stream = FakeStream()
        agent = agent_of(ledger, size, decoder)
        for offset in range(batches * size):
            stream.queue.put_nowait(event(offset % 3, offset))
        consuming = asyncio.ensure_future(agent.consume(stream))
        await until(lambda: len(stream.acked) == batches * size, "all are acknowledged")
        consuming.cancel()
        await agent.stopped()
        expected = [(offset % 3, offset) for offset in range(batches * size)]
        assert ledger.stored == expected  # once each, in the order they came
        assert stream.acked == expected
        assert ledger.prepared_decoded == batches and ledger.prepared_raw == 0
        check_ledger(ledger, stream)

    run(test)


def test_a_partition_revoked_while_its_micro_batch_decodes_is_neither_stored_nor_acknowledged(
        monkeypatch: pytest.MonkeyPatch) -> None:
    decoding_may_end = threading.Event()
    decodings = 0
    real_decode = streaming.pre_decode.decode_part

    def slow_decode(*args: Any, **kwargs: Any) -> DecodedPart:
        nonlocal decodings
        decodings += 1
        if decodings == 2:  # the second micro-batch decodes until the test says
            assert decoding_may_end.wait(WAIT_S)
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(streaming.pre_decode, "decode_part", slow_decode)
    first_store_may_end = threading.Event()
    ledger = Ledger()
    ledger.commit_gate = lambda stored: (stored == 0 and first_store_may_end.wait(WAIT_S)
                                         and None)

    async def test() -> None:
        stream = FakeStream()
        agent = agent_of(ledger, 4, ThreadPoolExecutor(1))
        for offset in range(8):  # two micro-batches over partitions 0 and 1
            stream.queue.put_nowait(event(offset % 2, offset))
        consuming = asyncio.ensure_future(agent.consume(stream))
        await until(lambda: decodings == 2, "the second micro-batch decodes")
        revoking = asyncio.ensure_future(agent.revoked([1]))
        await asyncio.sleep(0.05)
        first_store_may_end.set()  # the first is stored; then the revocation runs
        await asyncio.wait_for(revoking, WAIT_S)
        assert ledger.revoked == [1]
        decoding_may_end.set()
        await until(lambda: len(stream.acked) == 6, "the second micro-batch is stored")
        # partition 1's later messages went to its next owner: neither stored nor acked
        assert ledger.stored == [(0, 0), (1, 1), (0, 2), (1, 3), (0, 4), (0, 6)]
        assert stream.acked == ledger.stored
        assert ledger.prepared_raw == 1  # the rest of the decoding was dropped
        # Partition 1 comes back; Kafka delivers again from its committed offset.
        await agent.assigned([0, 1])
        for offset in (5, 7, 8, 10):
            stream.queue.put_nowait(event(1, offset))
        await until(lambda: len(stream.acked) == 10, "partition 1's messages are stored")
        consuming.cancel()
        await agent.stopped()
        assert [o for p, o in ledger.stored if p == 1] == [1, 3, 5, 7, 8, 10]
        check_ledger(ledger, stream)

    run(test)


def test_a_stop_mid_store_with_the_agent_cancelled_stores_and_acknowledges_that_micro_batch(
) -> None:
    store_may_end = threading.Event()
    ledger = Ledger()
    ledger.commit_gate = lambda stored: (stored == 0 and store_may_end.wait(WAIT_S)
                                         and None)

    async def test() -> None:
        stream = FakeStream()
        agent = agent_of(ledger, 4, ThreadPoolExecutor(1))
        for offset in range(12):
            stream.queue.put_nowait(event(0, offset))
        consuming = asyncio.ensure_future(agent.consume(stream))
        # the first micro-batch stores, the second waits for it: the agent waits too
        await until(lambda: len(agent.in_hand) == 2, "two micro-batches are in hand")
        consuming.cancel()  # as Faust cancels its agents when the worker stops
        await asyncio.sleep(0.01)
        stopping = asyncio.ensure_future(agent.stopped())
        await asyncio.sleep(0.05)
        store_may_end.set()
        await asyncio.wait_for(stopping, WAIT_S)
        assert ledger.stored[:4] == [(0, 0), (0, 1), (0, 2), (0, 3)]
        assert stream.acked == ledger.stored == [(0, 0), (0, 1), (0, 2), (0, 3)]
        assert ledger.final_stores == 1 and ledger.closed
        check_ledger(ledger, stream)

    run(test)


def test_a_stop_whose_store_does_not_end_is_over_in_time_and_acknowledges_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streaming.worker, "STOP_DRAIN_S", 0.3)
    store_may_end = threading.Event()
    ledger = Ledger()
    ledger.commit_gate = lambda stored: (store_may_end.wait(WAIT_S) and None)

    async def test() -> None:
        stream = FakeStream()
        agent = agent_of(ledger, 4, ThreadPoolExecutor(1))
        for offset in range(8):
            stream.queue.put_nowait(event(0, offset))
        consuming = asyncio.ensure_future(agent.consume(stream))
        await until(lambda: len(agent.in_hand) == 2, "two micro-batches are in hand")
        consuming.cancel()
        await asyncio.wait_for(agent.stopped(), 2.0)
        assert stream.acked == [] and ledger.closed
        # (A real processor's process is killed by then: its store fails. This one's
        # ends: what it stored may be acknowledged, nothing more.)
        store_may_end.set()
        await asyncio.sleep(0.1)
        check_ledger(ledger, stream)

    run(test)


def test_an_unexpected_error_ends_the_agent_and_nothing_after_it_is_stored() -> None:
    """Failed stores are retried (streaming.retry); an error outside them (here the
    acknowledgement) ends the agent as it did when it stored in its own loop, and the
    micro-batch already taken after it is not stored."""
    ledger = Ledger()

    class FailingAck(FakeStream):
        async def ack(self, item: Event) -> None:
            raise RuntimeError("the consumer is gone")

    async def test() -> None:
        stream = FailingAck()
        agent = agent_of(ledger, 4, ThreadPoolExecutor(1))
        for offset in range(12):
            stream.queue.put_nowait(event(0, offset))
        with pytest.raises(RuntimeError, match="the consumer is gone"):
            await asyncio.wait_for(agent.consume(stream), WAIT_S)
        await until(lambda: not agent.in_hand, "the micro-batch after it gives up")
        assert ledger.stored == [(0, 0), (0, 1), (0, 2), (0, 3)] and agent.held
        await agent.stopped()

    run(test)
