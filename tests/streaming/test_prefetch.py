"""The worker's Faust app: stream buffers bounded in bytes as well as messages, and fetches
that do not wait the embedded broker's whole long-poll."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from faust.transport.consumer import ThreadDelegateConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Transport
from mode.utils.queues import FlowControlEvent

from streaming.prefetch import FETCH_MAX_WAIT_MS, ByteBoundQueue
from streaming.worker import WorkerSettings, faust_app


def event(size: int) -> SimpleNamespace:
    return SimpleNamespace(message=SimpleNamespace(value=b"x" * size))


def queue(maxsize: int, max_bytes: int) -> ByteBoundQueue:
    flow = FlowControlEvent()
    flow.resume()  # as Faust's is while it consumes
    return ByteBoundQueue(maxsize=maxsize, flow_control=flow, max_bytes=max_bytes)


def test_full_at_its_bytes_before_its_messages() -> None:
    async def run() -> None:
        q = queue(maxsize=100, max_bytes=1000)
        for _ in range(3):
            q.put_nowait(event(300))
        assert not q.full() and q.qsize() == 90  # 900 of 1,000 bytes: 90% of 100 messages
        q.put_nowait(event(100))
        assert q.full()
        q.get_nowait()
        assert not q.full() and q.held_bytes == 700

    asyncio.run(run())


def test_full_at_its_messages_when_they_are_small() -> None:
    async def run() -> None:
        q = queue(maxsize=4, max_bytes=1_000_000)
        for _ in range(4):
            q.put_nowait(event(10))
        assert q.full() and q.qsize() == 4

    asyncio.run(run())


def test_a_message_larger_than_the_bound_goes_through_and_fills_the_queue() -> None:
    async def run() -> None:
        q = queue(maxsize=100, max_bytes=1000)
        q.put_nowait(event(10))
        await asyncio.wait_for(q.put(event(5000)), 1)  # not full yet: it goes in
        assert q.full() and q.qsize() == 501  # 5,010 bytes: five times full
        waiting = asyncio.ensure_future(q.put(event(10)))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        q.get_nowait()
        q.get_nowait()
        await asyncio.wait_for(waiting, 1)
        assert q.qsize() == 1 and q.held_bytes == 10

    asyncio.run(run())


def test_pressure_is_felt_at_80_percent_of_the_bytes() -> None:
    """Faust stops fetching a partition when its buffer is under pressure (80% full) and
    resumes it at 40%: both now count bytes too."""
    async def run() -> None:
        q = queue(maxsize=100, max_bytes=1000)
        high: list[str] = []
        dropped: list[str] = []
        for _ in range(8):
            q.put_nowait_enhanced(event(100), on_pressure_high=lambda: high.append("high"),
                                  on_pressure_drop=lambda: dropped.append("drop"))
        assert high == []
        q.put_nowait_enhanced(event(100), on_pressure_high=lambda: high.append("high"),
                              on_pressure_drop=lambda: dropped.append("drop"))
        assert high == ["high"]
        for _ in range(5):
            q.get_nowait()
        assert dropped == [] and q.held_bytes == 400
        q.get_nowait()  # Faust looks as it takes one: 400 of 1,000 bytes were held
        assert dropped == ["drop"]

    asyncio.run(run())


def test_cleared_on_a_rebalance_it_holds_no_bytes() -> None:
    async def run() -> None:
        q = queue(maxsize=100, max_bytes=1000)
        q.put_nowait(event(600))
        q.clear()
        assert q.held_bytes == 0 and q.qsize() == 0

    asyncio.run(run())


def test_a_bound_of_no_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        queue(maxsize=10, max_bytes=0)


def test_the_worker_app_uses_both() -> None:
    async def run() -> None:
        app = faust_app(WorkerSettings("127.0.0.1:9", "group", prefetch_bytes=12345))
        buffer = app.FlowControlQueue(maxsize=10)
        assert isinstance(buffer, ByteBoundQueue) and buffer.max_bytes == 12345
        assert isinstance(app.consumer, ThreadDelegateConsumer)
        thread, transport = app.consumer._thread, app.transport
        assert isinstance(thread, AIOKafkaConsumerThread) and isinstance(transport, Transport)
        consumer = thread._create_worker_consumer(transport)
        try:
            assert consumer._fetch_max_wait_ms == FETCH_MAX_WAIT_MS
        finally:
            await consumer.stop()

    asyncio.run(run())
