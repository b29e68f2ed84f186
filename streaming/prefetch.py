"""How a worker's Faust app fetches: buffers bounded in bytes too, and short fetch waits.

Faust buffers what it fetches ahead of an agent in a queue per stream, bounded by
``stream_buffer_maxsize`` messages: it stops fetching a partition when the queue is at
80% of that and resumes at 40%. Counting messages only, the bound is a memory bound only
for small messages: 1,024 messages of 500 events are 70 MB, and of 1 MB each a gigabyte.
:class:`ByteBoundQueue` counts the bytes of the values it holds as well and reports its
size as the larger of its messages and its bytes in the same units (a queue holding
``max_bytes`` is as full as one holding ``maxsize`` messages), so Faust's own flow control
(pause at 80%, resume at 40%, block when full) applies to whichever bound comes first.
A message larger than the whole bound still goes through, alone.

Faust asks the broker to hold a fetch up to 1.5 s for data to arrive (aiokafka's
``fetch_max_wait_ms``, fixed in Faust's driver). Kafka answers as soon as data comes;
the embedded broker (Tansu) holds the fetch for the whole wait: a message sent to a
worker that had caught up waited 0.6 s on average before Faust saw it (0.016 s with
100 ms), which was most of the time from a window's end to its stored values. So the
worker's consumer waits :data:`FETCH_MAX_WAIT_MS` at most: on Kafka it changes nothing
but an idle worker's fetch rate (ten a second).
"""

from __future__ import annotations

import math
from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TransportT
from mode.utils.queues import ThrowableQueue

from streaming.memory_bounds import PREFETCH_BYTES


class ByteBoundQueue(ThrowableQueue):
    """Faust's stream buffer, full at ``maxsize`` items or ``max_bytes`` of values."""

    def __init__(self, *args: Any, max_bytes: int, **kwargs: Any) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, not {max_bytes}")
        self.max_bytes = max_bytes
        self.held_bytes = 0
        super().__init__(*args, **kwargs)

    def qsize(self) -> int:
        items = len(self._queue)  # type: ignore[attr-defined]
        if self.maxsize <= 0:
            return items
        return max(items, math.ceil(self.held_bytes * self.maxsize / self.max_bytes))

    def _put(self, item: Any) -> None:
        self.held_bytes += _value_bytes(item)
        super()._put(item)

    def _get(self) -> Any:
        item = super()._get()
        self.held_bytes -= _value_bytes(item)
        return item

    def clear(self) -> None:
        super().clear()
        self.held_bytes = 0


def _value_bytes(item: Any) -> int:
    """The bytes of a buffered event's message value (0 for anything else)."""
    value = getattr(getattr(item, "message", None), "value", None)
    return len(value) if isinstance(value, bytes | bytearray | memoryview) else 0


FETCH_MAX_WAIT_MS = 100


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: faust_aiokafka.Transport
                                ) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # read by the consumer when it starts (it builds its fetcher then)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class ByteBoundApp(faust.App):
    """A Faust app (on Kafka) whose stream buffers are :class:`ByteBoundQueue` of
    ``buffer_bytes`` (set it before the app starts) and whose consumer's fetches wait
    :data:`FETCH_MAX_WAIT_MS` at most."""

    buffer_bytes: int = PREFETCH_BYTES

    def FlowControlQueue(self, maxsize: int | None = None, *,
                         clear_on_resume: bool = False) -> ThrowableQueue:
        return ByteBoundQueue(maxsize=maxsize or 0, flow_control=self.flow_control,
                              clear_on_resume=clear_on_resume, max_bytes=self.buffer_bytes)

    def _new_transport(self) -> TransportT:
        return _Transport(self.conf.broker_consumer, self)
