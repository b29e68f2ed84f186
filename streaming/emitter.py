"""``Emitter``: send a model service's events to Kafka in batches, without slowing it down.

    emitter = Emitter("127.0.0.1:9092", "home_events", key_field="user_id")
    emitter.emit({"ts": "2026-05-01T12:00:00Z", "user_id": 42, "latency_ms": 87.5})
    ...
    emitter.close()          # flushes; also done by ``with Emitter(...)``, and at exit

``emit`` encodes the event to JSON in the caller's thread and appends it to a bounded
in-memory buffer; a background thread packs buffered events into messages — a JSON array
per message, or the object alone when a message holds one event (streaming.codec) — of
at most ``max_batch_events`` events and ``max_batch_bytes`` bytes, sent once full or once
their first event has waited ``linger_ms``, through a kafka-python ``KafkaProducer``.

``close`` waits for the broker's acknowledgements (by default up to
``delivery_timeout_ms``); at interpreter exit an emitter not closed is closed with at most
``exit_timeout_s`` (default 5 s) to finish, so a service never hangs on its way out.

**When the buffer is full**, ``emit`` waits at most ``block_ms`` (default 0: not at all)
for room, then drops the event: it never blocks the caller longer than that, and a
dropped event is reported as failed with reason ``buffer full``. The buffer fills only
when the broker is slower than the service or unreachable.

**Nothing is dropped silently.** Every emitted event ends up counted exactly once as
sent (acknowledged by the broker, ``acks=all``) or failed, with a reason:

- ``not encodable``: not a JSON object (NaN without ``allow_nan``, a set, ...), refused
  at ``emit``;
- ``too large``: alone bigger than ``max_batch_bytes``, refused at ``emit``;
- ``buffer full``: dropped at ``emit``, see above;
- ``broker unreachable``: no connection within ``delivery_timeout_ms`` of being emitted;
- ``delivery failed``: the producer gave up on its message (after retrying for up to
  ``delivery_timeout_ms``), e.g. the broker went away;
- ``closed``: still undelivered when ``close`` ran out of time.

``stats()`` has the counters; ``failed`` keeps the last ``keep_failed`` failures (each
with the event and the reason), and ``on_failure`` — called from the emitter's thread,
or from the calling thread for events refused at ``emit`` — receives every one, e.g. to
spill them to disk. Keep the callback quick: it delays sending.

**Partitioning.** With ``key_field``, all events with the same key go to the same
partition, the one Kafka's default partitioner gives the key (murmur2 of the key text:
a string as is, anything else as its JSON, so ``42`` -> ``b"42"``); each message then
holds events of one partition and carries no key. Events without the field, or without
``key_field``, go where the producer puts unkeyed messages.

Thread-safe: any number of threads may ``emit`` at once. The events of one key, emitted
by one thread, arrive in the order emitted: they fill messages to one partition in
order, and the producer's idempotence (kafka-python's default) keeps messages in order
across retries.

**Throughput.** ``emit`` itself takes a few microseconds (the JSON encoding). What the
background thread sends is bounded by kafka-python, which computes record checksums in
pure Python unless the ``crc32c`` package is installed: about 25,000 events/s of 330
bytes without it, about 90,000 with it (on the embedded broker, one core).
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
import time
import weakref
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streaming.codec import EncodeError, encode_event, join_encoded, joined_size

NOT_ENCODABLE = "not encodable"
TOO_LARGE = "too large"
BUFFER_FULL = "buffer full"
BROKER_UNREACHABLE = "broker unreachable"
DELIVERY_FAILED = "delivery failed"
CLOSED = "closed"

_KEY_CACHE_SIZE = 100_000  # keys whose partition we remember (murmur2 is pure Python)
_CONNECT_ATTEMPT_S = 2.0

log = logging.getLogger(__name__)


class Failure:
    """An event that was not sent, and why; ``event`` is the event as emitted."""

    __slots__ = ("_event", "_payload", "detail", "reason")

    def __init__(self, reason: str, detail: str, *, payload: bytes | None = None,
                 event: Any = None) -> None:
        self.reason = reason
        self.detail = detail
        self._payload = payload
        self._event = event

    @property
    def event(self) -> Any:
        if self._event is None and self._payload is not None:
            self._event = json.loads(self._payload)
        return self._event

    def __repr__(self) -> str:
        return f"Failure({self.reason!r}, {self.detail!r})"


@dataclass(frozen=True)
class EmitterStats:
    emitted: int  # calls to emit()
    sent: int  # events the broker acknowledged
    failed: int  # events reported as failed, whatever the reason
    dropped: int  # of the failed: refused at emit because the buffer was full
    pending: int  # emitted, neither sent nor failed yet
    messages: int  # messages the broker acknowledged
    bytes: int  # their total value size
    failures: dict[str, int] = field(default_factory=dict)  # failed events per reason


@dataclass
class _Batch:
    partition: int | None
    first_seq: int
    first_time: float  # when its first event was emitted (monotonic)
    payloads: list[bytes] = field(default_factory=list)
    size: int = 0  # of the payloads together, without brackets and commas


class Emitter:
    """Batches events into Kafka messages; see the module docstring for the guarantees."""

    def __init__(self, bootstrap: str, topic: str, *, key_field: str | None = None,
                 max_batch_events: int = 500, max_batch_bytes: int = 900_000,
                 linger_ms: float = 50, max_buffer_events: int = 100_000,
                 max_buffer_bytes: int = 64 * 2**20, block_ms: float = 0,
                 delivery_timeout_ms: int = 30_000, keep_failed: int = 10_000,
                 on_failure: Callable[[Sequence[Failure]], None] | None = None,
                 producer_config: Mapping[str, Any] | None = None,
                 exit_timeout_s: float | None = 5.0, allow_nan: bool = False) -> None:
        _positive(max_batch_events=max_batch_events, max_batch_bytes=max_batch_bytes,
                  max_buffer_events=max_buffer_events, max_buffer_bytes=max_buffer_bytes,
                  delivery_timeout_ms=delivery_timeout_ms)
        _not_negative(linger_ms=linger_ms, block_ms=block_ms, keep_failed=keep_failed)
        if not topic:
            raise ValueError("topic must be a topic name, not empty")
        if not bootstrap:
            raise ValueError("bootstrap must be host:port[,host:port...], not empty")
        self.bootstrap = bootstrap
        self.allow_nan = allow_nan  # send NaN and infinity as JSON's tokens (codec)
        self.topic = topic
        self.key_field = key_field
        self.max_batch_events = max_batch_events
        self.max_batch_bytes = max_batch_bytes
        self.linger_s = linger_ms / 1000
        self.max_buffer_events = max_buffer_events
        self.max_buffer_bytes = max_buffer_bytes
        self.block_s = block_ms / 1000
        self.delivery_timeout_s = delivery_timeout_ms / 1000
        self.on_failure = on_failure
        self.failed: deque[Failure] = deque(maxlen=keep_failed)
        self._producer_config = self._config(producer_config or {})

        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # the sender: work to do
        self._room = threading.Condition(self._lock)  # blocked emitters: buffer has room
        self._done = threading.Condition(self._lock)  # flush/close: events resolved
        # (seq, payload, key, emitted at)
        self._queue: deque[tuple[int, bytes, bytes | None, float]] = deque()
        self._queued_bytes = 0
        self._seq = 0  # the last sequence number handed out
        self._sender_min_seq: int | None = None  # oldest unsent event the sender holds
        self._inflight: dict[int, _Batch] = {}
        # The sender thread's own: taken from the queue, and batches being filled.
        self._in_hand: list[tuple[int, bytes, bytes | None, float]] = []
        self._batches: dict[int | None, _Batch] = {}
        self._batch_ids = 0
        self._flush_upto = 0
        self._closing = False
        self._connected = False
        self._problem = f"Kafka at {bootstrap}: not connected yet"
        self._close_deadline = float("inf")
        self._sender_waiting = False
        self._emitted = self._sent = self._failed = self._dropped = self._messages = self._bytes = 0
        self._failures: Counter[str] = Counter()

        self._thread = threading.Thread(target=self._run, name=f"emitter-{topic}", daemon=True)
        self._thread.start()
        self._atexit: Callable[[], None] | None = None
        if exit_timeout_s is not None:
            # A weak reference, so an emitter nobody uses any more can still be collected.
            reference = weakref.ref(self)
            self._atexit = lambda: _close_if_alive(reference, exit_timeout_s)
            atexit.register(self._atexit)

    # -- the caller's side ---------------------------------------------------------------

    def emit(self, event: Mapping[str, Any]) -> bool:
        """Queue one event for sending; False if it was refused (and reported as failed)."""
        try:
            payload = encode_event(event, allow_nan=self.allow_nan)
        except EncodeError as err:
            self._refuse(Failure(NOT_ENCODABLE, str(err), event=event))
            return False
        if len(payload) > self.max_batch_bytes:
            self._refuse(Failure(TOO_LARGE, f"{len(payload)} bytes, over max_batch_bytes="
                                            f"{self.max_batch_bytes}", payload=payload))
            return False
        key = self._key(event)
        with self._lock:
            if self._closing:
                refused = Failure(CLOSED, "emit after close", payload=payload)
            elif self._has_room(len(payload)) or self._wait_for_room(len(payload)):
                self._emitted += 1
                self._seq += 1
                self._queue.append((self._seq, payload, key, time.monotonic()))
                self._queued_bytes += len(payload)
                queued = len(self._queue)
                if self._sender_waiting and (queued == 1 or queued >= self.max_batch_events
                                             or self._queued_bytes >= self.max_batch_bytes):
                    self._wake.notify()
                return True
            else:
                refused = Failure(BUFFER_FULL, f"{len(self._queue)} events and "
                                               f"{self._queued_bytes} bytes buffered",
                                  payload=payload)
        self._refuse(refused, dropped=refused.reason == BUFFER_FULL)
        return False

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything emitted so far and wait until each is sent or failed.

        True if all were resolved within ``timeout`` seconds (None: no limit; events
        resolve within ``delivery_timeout_ms`` one way or the other).
        """
        with self._lock:
            target = self._seq
            self._flush_upto = max(self._flush_upto, target)
            self._wake.notify()
            return self._done.wait_for(lambda: self._resolved_through(target), timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Flush, then stop; True if every event was resolved (sent or failed).

        After ``timeout`` seconds (None: ``delivery_timeout_ms`` and 5 s more) what is
        still undelivered is reported as failed: ``closed``, or ``broker unreachable``
        if the emitter never connected.
        """
        if timeout is None:
            timeout = self.delivery_timeout_s + 5
        with self._lock:
            if not self._closing:
                self._closing = True
                self._close_deadline = time.monotonic() + timeout
                self._wake.notify()
                self._room.notify_all()
        if self._atexit is not None:
            atexit.unregister(self._atexit)
        self._thread.join(timeout)
        with self._lock:
            stuck_connecting = self._thread.is_alive() and not self._connected
            held = self._take_everything() if stuck_connecting else []
        if stuck_connecting:  # in a connection attempt that outlasts the timeout
            self._resolve_failed(held, BROKER_UNREACHABLE, self._problem)
        else:
            self._thread.join(5)  # connected: the producer's flush keeps to the deadline
        with self._lock:
            return self._resolved_through(self._seq)

    def stats(self) -> EmitterStats:
        with self._lock:
            return EmitterStats(
                emitted=self._emitted, sent=self._sent, failed=self._failed,
                dropped=self._dropped, pending=self._emitted - self._sent - self._failed,
                messages=self._messages, bytes=self._bytes, failures=dict(self._failures))

    def __enter__(self) -> Emitter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers for the caller's side ---------------------------------------------------

    def _key(self, event: Mapping[str, Any]) -> bytes | None:
        if self.key_field is None:
            return None
        value = event.get(self.key_field)
        if value is None:
            return None
        if isinstance(value, str):
            return value.encode("utf-8")
        return json.dumps(value, separators=(",", ":"), default=str).encode("utf-8")

    def _has_room(self, size: int) -> bool:
        return (len(self._queue) < self.max_buffer_events
                and self._queued_bytes + size <= self.max_buffer_bytes)

    def _wait_for_room(self, size: int) -> bool:
        if self.block_s <= 0:
            return False
        return self._room.wait_for(lambda: self._closing or self._has_room(size),
                                   self.block_s) and not self._closing

    def _refuse(self, failure: Failure, *, dropped: bool = False) -> None:
        with self._lock:
            self._emitted += 1
            self._dropped += dropped
            self._count_failures(failure.reason, 1)
            self.failed.append(failure)
        self._notify_failures([failure])

    # -- accounting (under the lock) ------------------------------------------------------

    def _resolved_through(self, target: int) -> bool:
        """Whether every queued event up to sequence number ``target`` is sent or failed."""
        if self._queue and self._queue[0][0] <= target:
            return False
        if self._sender_min_seq is not None and self._sender_min_seq <= target:
            return False
        return all(batch.first_seq > target for batch in self._inflight.values())

    def _count_failures(self, reason: str, count: int) -> None:
        self._failed += count
        self._failures[reason] += count

    def _notify_failures(self, failures: list[Failure]) -> None:
        if self.on_failure is None or not failures:
            return
        try:
            self.on_failure(failures)
        except Exception:
            log.exception("the emitter's on_failure callback raised")

    # -- the sender thread ---------------------------------------------------------------

    def _config(self, extra: Mapping[str, Any]) -> dict[str, Any]:
        millis = int(self.delivery_timeout_s * 1000)
        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap.split(","),
            "client_id": "monitor-emitter",
            "acks": "all",
            "linger_ms": 0,  # we linger ourselves; the producer still packs what is waiting
            "max_request_size": max(1_048_576, self.max_batch_bytes + 65_536),
            "batch_size": max(16_384, self.max_batch_bytes + 65_536),
            "delivery_timeout_ms": millis,
            "request_timeout_ms": min(30_000, max(millis // 2, 500)),
            "max_block_ms": millis,
            # short attempts, so that events expire close to delivery_timeout_ms when down
            "bootstrap_timeout_ms": int(1000 * min(max(self.delivery_timeout_s / 4, 0.25),
                                                   _CONNECT_ATTEMPT_S)),
        }
        config.update(extra)
        return config

    def _run(self) -> None:
        try:
            producer = self._connect()
            if producer is not None:
                self._send_loop(producer)
        except Exception:  # a bug of ours: say so, and fail what is left rather than hang
            log.exception("the emitter's sender thread failed")
            self._fail_everything(DELIVERY_FAILED, "the emitter's sender thread failed")

    def _connect(self) -> Any:
        """A connected producer, or None when closing gave up (the queue is then failed)."""
        from kafka import KafkaProducer

        attempts, problem = 0, f"Kafka at {self.bootstrap}: not connected yet"
        while True:
            now = time.monotonic()
            with self._lock:
                expired = self._expire(now - self.delivery_timeout_s)
                giving_up = self._closing and (not self._queue or now >= self._close_deadline)
                if giving_up:
                    expired += self._take_queue()
            self._resolve_failed(expired, BROKER_UNREACHABLE, problem)
            if giving_up:
                return None
            attempts += 1
            try:
                producer = KafkaProducer(**self._producer_config)
                producer.partitions_for(self.topic)  # the topic exists (or was created)
                with self._lock:
                    nothing_to_send = self._closing and not self._queue
                    self._connected = not nothing_to_send
                if nothing_to_send:  # closed while we connected (or close() gave up on us)
                    self._close_producer(producer)
                    return None
                if attempts > 1:
                    log.warning("emitter reached Kafka at %s", self.bootstrap)
                return producer
            except Exception as err:
                problem = self._problem = f"Kafka at {self.bootstrap}: {describe(err)}"
                if attempts == 1:
                    log.warning("emitter cannot reach %s; retrying", problem)
            with self._lock:  # until the oldest event expires, at most half a second
                now = time.monotonic()
                wait = min(0.5, self._close_deadline - now)
                if self._queue:
                    wait = min(wait, self._queue[0][3] + self.delivery_timeout_s - now)
                self._wake.wait(max(wait, 0.01))

    def _send_loop(self, producer: Any) -> None:
        from kafka.partitioner.default import murmur2

        partitions = sorted(producer.partitions_for(self.topic) or [])
        key_partitions: dict[bytes, int] = {}
        batches = self._batches
        next_refresh = time.monotonic() + 1.0
        while True:
            with self._lock:
                self._wait_for_work(batches)
                items = self._in_hand = self._take_queue()
                self._room.notify_all()
                flush_upto, closing = self._flush_upto, self._closing
                if items and self._sender_min_seq is None:
                    self._sender_min_seq = items[0][0]  # batches being filled hold older ones
            ready: list[_Batch] = []
            for seq, payload, key, emitted_at in items:
                if key is None or not partitions:
                    partition = None
                else:
                    partition = key_partitions.get(key)
                    if partition is None:
                        if len(key_partitions) >= _KEY_CACHE_SIZE:
                            key_partitions.clear()
                        # what Kafka's default partitioner gives a keyed message
                        partition = partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]
                        key_partitions[key] = partition
                batch = batches.get(partition)
                if batch is not None and not self._fits(batch, payload):
                    ready.append(batches.pop(partition))
                    batch = None
                if batch is None:
                    batch = batches[partition] = _Batch(partition, seq, emitted_at)
                batch.payloads.append(payload)
                batch.size += len(payload)
                if len(batch.payloads) >= self.max_batch_events:
                    ready.append(batches.pop(partition))
            now = time.monotonic()
            for partition, batch in list(batches.items()):
                if (closing or batch.first_seq <= flush_upto
                        or now - batch.first_time >= self.linger_s):
                    ready.append(batches.pop(partition))
            with self._lock:
                self._in_hand = []
                sending = []
                for batch in ready:
                    self._batch_ids += 1
                    self._inflight[self._batch_ids] = batch
                    sending.append(self._batch_ids)
                self._sender_min_seq = min((b.first_seq for b in batches.values()), default=None)
            for batch_id, batch in zip(sending, ready, strict=True):
                self._send(producer, batch_id, batch)
            if closing and not batches:
                with self._lock:
                    if not self._queue:
                        break
            if self.key_field is not None and time.monotonic() >= next_refresh:
                next_refresh = time.monotonic() + 1.0
                latest = producer.partitions_for(self.topic)  # cached metadata: cheap
                if latest and len(latest) != len(partitions):
                    partitions = sorted(latest)
                    key_partitions.clear()
        self._finish(producer)

    def _wait_for_work(self, batches: dict[int | None, _Batch]) -> None:
        """Under the lock: sleep until a batch is due, a flush or close asks, or the
        queue holds a full batch."""
        while True:
            if self._closing or (self._sender_min_seq is not None
                                 and self._sender_min_seq <= self._flush_upto):
                return
            if self._queue and (self._queue[0][0] <= self._flush_upto
                                or len(self._queue) >= self.max_batch_events
                                or self._queued_bytes >= self.max_batch_bytes):
                return
            firsts = [batch.first_time for batch in batches.values()]
            if self._queue:
                firsts.append(self._queue[0][3])
            timeout = None
            if firsts:
                timeout = min(firsts) + self.linger_s - time.monotonic()
                if timeout <= 0:
                    return
            self._sender_waiting = True
            try:
                self._wake.wait(timeout)
            finally:
                self._sender_waiting = False

    def _fits(self, batch: _Batch, payload: bytes) -> bool:
        count = len(batch.payloads) + 1
        return joined_size(count, batch.size + len(payload)) <= self.max_batch_bytes

    def _send(self, producer: Any, batch_id: int, batch: _Batch) -> None:
        value = join_encoded(batch.payloads)
        try:
            future = producer.send(self.topic, value=value, partition=batch.partition)
        except Exception as err:
            self._on_error(batch_id, err)
            return
        future.add_callback(lambda _metadata: self._on_sent(batch_id, len(value)))
        future.add_errback(lambda err: self._on_error(batch_id, err))

    def _on_sent(self, batch_id: int, size: int) -> None:
        with self._lock:
            batch = self._inflight.pop(batch_id, None)
            if batch is None:
                return
            self._sent += len(batch.payloads)
            self._messages += 1
            self._bytes += size
            self._done.notify_all()

    def _on_error(self, batch_id: int, err: BaseException) -> None:
        with self._lock:
            batch = self._inflight.pop(batch_id, None)
        if batch is not None:
            self._resolve_failed(batch.payloads, DELIVERY_FAILED, describe(err))

    def _finish(self, producer: Any) -> None:
        remaining = max(self._close_deadline - time.monotonic(), 0.0)
        try:
            producer.flush(timeout=remaining)
        except Exception as err:
            log.warning("emitter: not everything was delivered before close: %s", err)
        self._close_producer(producer)
        self._fail_everything(CLOSED, "not acknowledged when close() ran out of time")

    def _close_producer(self, producer: Any) -> None:
        """Close the producer, letting its requests in flight finish until close()'s
        deadline. Not at once: that cancels them, and an idempotent producer (kafka-python's
        default) asks the broker for its producer id as soon as it connects, so an emitter
        closed before that answer came (one that sent nothing, an empty replay) logged
        ``ERROR Fatal Error handling request InitProducerIdRequest: ... Cancelled``."""
        try:
            producer.close(timeout=max(self._close_deadline - time.monotonic(), 0.0))
        except Exception as err:
            log.warning("emitter: closing the producer: %s", err)

    def _fail_everything(self, reason: str, detail: str) -> None:
        with self._lock:
            payloads = self._take_everything()
        self._resolve_failed(payloads, reason, detail)

    def _take_everything(self) -> list[bytes]:
        """Under the lock: every unresolved event, wherever it is."""
        held = [*self._in_hand, *self._take_queue()]
        payloads = [payload for _, payload, _, _ in held]
        for batch in [*self._batches.values(), *self._inflight.values()]:
            payloads.extend(batch.payloads)
        self._in_hand, self._batches = [], {}
        self._inflight.clear()
        self._sender_min_seq = None
        return payloads

    # -- queue and failures (the sender's side) -------------------------------------------

    def _take_queue(self) -> list[Any]:
        """Under the lock: everything queued, leaving the queue empty."""
        items = list(self._queue)
        self._queue.clear()
        self._queued_bytes = 0
        return items

    def _expire(self, emitted_before: float) -> list[Any]:
        """Under the lock: take the queued events emitted before the given time."""
        expired = []
        while self._queue and self._queue[0][3] < emitted_before:
            item = self._queue.popleft()
            self._queued_bytes -= len(item[1])
            expired.append(item)
        if expired:
            self._room.notify_all()
        return expired

    def _resolve_failed(self, items: list[Any], reason: str, detail: str) -> None:
        """Report events (queue items or payloads) as failed."""
        if not items:
            return
        failures = [Failure(reason, detail, payload=item if isinstance(item, bytes) else item[1])
                    for item in items]
        with self._lock:
            self._count_failures(reason, len(failures))
            self.failed.extend(failures)
            self._done.notify_all()
        self._notify_failures(failures)


def describe(err: BaseException) -> str:
    """An exception as one line; kafka-python's messages already start with their type."""
    text = str(err)
    name = type(err).__name__
    return text if text.startswith(name) else f"{name}: {text}" if text else name


def _close_if_alive(reference: weakref.ref[Emitter], timeout: float) -> None:
    emitter = reference()
    if emitter is not None:
        emitter.close(timeout)


def _positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be positive, not {value!r}")


def _not_negative(**values: float) -> None:
    for name, value in values.items():
        if not value >= 0:
            raise ValueError(f"{name} must be zero or more, not {value!r}")
