"""The Faust worker of the streaming stage: one agent per stream topic, one processor each.

Faust runs the consumer group (several workers share the partitions), the micro-batches
(``take_events``) and the timer; :class:`streaming.processor.StreamProcessor` does the
rest. An agent acknowledges a micro-batch only after its states, offsets and dead-letter
counts are committed to the database (and its dead letters delivered to their topic), so
Kafka's committed offsets never run ahead of what is stored; what comes again after a
crash is skipped by offset. A database outage is retried with backoff, holding the
batch, instead of dropping it.

The processor runs in a process of its own (:mod:`streaming.processor_process`): the
agent ships a micro-batch's raw messages there and awaits, so Faust keeps fetching on
this process's core while the other decodes, computes and stores. A lock keeps the
agent, the timer and rebalances from overlapping; while micro-batches keep coming, the
agent ticks after storing one instead of the timer. Every step that touches the
database is retried (see :class:`_Retry`), which is why the processor's connection
pool can skip pre-ping. If the processor's process dies, the worker stops: nothing it
had not stored was acknowledged, so whoever owns the partitions next resumes.

No Faust tables: the per-partition states live in the database (see
:mod:`streaming.state_store` for why), so Faust's ``exactly_once`` (Kafka transactions,
which the embedded broker cannot do) is not needed for exactly-once values.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import faust
from kafka import KafkaConsumer

from monitor.batch.runner import Target
from monitor.spec import StreamSpec
from streaming.broker import create_topics, list_topics
from streaming.messages import RawMessage, Rejected
from streaming.processor import AfterFinal, StreamSettings
from streaming.processor_process import (
    ProcessorGone,
    ProcessorProcess,
    ProcessorSpec,
    StepFailed,
    describe,
    looks_like_an_outage,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

DEAD_LETTER_SUFFIX = ".dead-letters"
EXIT_PROCESSOR_GONE = 3  # the worker's exit code when its processor's process died


@dataclass(frozen=True)
class WorkerSettings:
    bootstrap: str
    group: str
    topics: dict[str, str] = field(default_factory=dict)  # stream name -> topic, overriding
    partitions: int = 4  # of topics the worker has to create
    take_messages: int = 4_000  # a micro-batch holds at most this many messages...
    take_within_s: float = 0.25  # ...or what arrived within this time
    # and goes to the processor in parts of at most this many bytes of messages (at least
    # one message each): 4,000 messages of 500 events are 280 MB, 2M events to decode at
    # once (the processor's process peaked at 1.7 GB; 280 MB with parts of 8 MB)
    take_bytes: int = 8 * 1024 * 1024
    tick_interval_s: float = 0.1  # how often idle partitions advance and windows close
    # (a tick looks for closed windows when this worker's marks moved, else once a second)
    session_timeout_s: float = 10.0
    retry_backoff_s: float = 0.5  # first wait after a failed database write; doubles to 30 s
    log_level: str = "info"  # of the processors' processes (Faust's own is the worker's)
    stream: StreamSettings = field(default_factory=StreamSettings)


def dead_letter_topic(topic: str) -> str:
    return topic + DEAD_LETTER_SUFFIX


def ensure_topics(bootstrap: str, topics: Sequence[str], partitions: int) -> dict[str, int]:
    """Create missing topics; every topic's partition count."""
    existing = list_topics(bootstrap)
    missing = {t: partitions for t in topics if t not in existing}
    if missing:
        create_topics(bootstrap, missing)
        log.info("created topics %s with %d partitions", ", ".join(missing), partitions)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        counts = {}
        for topic in topics:
            found = consumer.partitions_for_topic(topic)
            if not found:
                raise RuntimeError(f"topic {topic} has no partitions on {bootstrap}")
            counts[topic] = len(found)
        return counts
    finally:
        consumer.close()


def build_app(settings: WorkerSettings, database_url: str, app_target: str,
              targets: Sequence[Target], *, after_final: AfterFinal | None = None
              ) -> faust.App:
    """A Faust app with an agent per stream that has metrics in ``targets`` (of the
    Monitor at ``app_target``); each agent's processor runs in a process of its own (see
    :mod:`streaming.processor_process`), started now, with a connection pool of its own."""
    streams: dict[str, tuple[StreamSpec, list[Target]]] = {}
    for target in targets:
        stream = target.metric.stream
        if stream.name in settings.topics:
            stream = dataclasses.replace(stream, topic=settings.topics[stream.name])
        if stream.topic is None:
            raise ValueError(f"stream {stream.name!r} declares no topic; give it one with "
                             f"mon.stream({stream.name!r}, topic=...) to stream its metrics")
        streams.setdefault(stream.name, (stream, []))[1].append(target)
    topics = [s.topic for s, _ in streams.values() if s.topic is not None]
    counts = ensure_topics(settings.bootstrap,
                           topics + [dead_letter_topic(t) for t in topics], settings.partitions)
    app = faust_app(settings)
    for stream, stream_targets in streams.values():
        assert stream.topic is not None
        spec = ProcessorSpec(database_url, app_target, stream, counts[stream.topic],
                             tuple(t.metric.name for t in stream_targets), settings.stream,
                             after_final, logging.getLevelName(settings.log_level.upper()))
        _wire(app, settings, stream.name, spec)
    return app


def faust_app(settings: WorkerSettings) -> faust.App:
    """The Faust app of a worker, with no agents: a consumer group on ``settings.bootstrap``
    that works on a single broker (Tansu included) and starts from the earliest offset."""
    return faust.App(
        settings.group,
        broker=f"kafka://{settings.bootstrap}",
        store="memory://",
        topic_replication_factor=1,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=max(settings.session_timeout_s / 6, 0.5),
        stream_wait_empty=True,
        web_enabled=False,
        datadir=tempfile.mkdtemp(prefix="monitor-faust-"),
        producer_max_request_size=2 * settings.stream.max_message_bytes,
        # Messages fetched ahead of the agent (Faust's default is 4,096). A worker holds
        # these plus the micro-batch in hand: with 70 KB messages of 500 events, 1,024
        # instead of 4,096 took the worker from 1,050 to 710 MB and cost nothing on
        # single-event messages (bench/stream.py; the bare agent gets the same setting).
        stream_buffer_maxsize=1024,
    )


def _wire(app: faust.App, settings: WorkerSettings, stream_name: str,
          spec: ProcessorSpec) -> None:
    topic_name = spec.topic
    source = app.topic(topic_name, value_serializer="raw", key_serializer="raw")
    dead_letters = app.topic(dead_letter_topic(topic_name), value_serializer="raw",
                             key_serializer="raw")
    # Calls to the processor's process block, so they run on a thread of their own.
    caller = ThreadPoolExecutor(1, thread_name_prefix=f"monitor-processor-{topic_name}")
    retry = _Retry(settings.retry_backoff_s, lambda: bool(app.should_stop), caller)
    busy = asyncio.Lock()  # one of: a micro-batch, a tick, a rebalance, the final store
    processor = ProcessorProcess(spec)

    last_tick = [0.0]  # loop time of the last tick

    def give_up(err: ProcessorGone) -> NoReturn:
        """The processor's process died: the worker exits at once. Not through Faust's
        shutdown, which would wait for the micro-batch in hand to be acknowledged, and it
        must not be: it was not stored. Nothing unstored was acknowledged, so whoever
        owns the partitions next resumes from the stored offsets."""
        log.critical("%s: this worker stops; start the worker again: it resumes from the "
                     "stored offsets, nothing is lost", err)
        logging.shutdown()
        os._exit(EXIT_PROCESSOR_GONE)

    async def call(step: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(caller, step)

    async def tick_now() -> None:
        """Advance idle partitions and close due windows (``busy`` held by the caller)."""
        last_tick[0] = asyncio.get_running_loop().time()
        try:
            closed = await call(processor.tick)
        except ProcessorGone as err:
            give_up(err)
        except Exception as err:  # the next tick tries again; the data is held, not lost
            log.warning("%s: closing windows failed (%s); trying again", topic_name,
                        describe(err))
            return
        for metric, windows in closed:
            log.info("%s: stored %d final windows of %s", topic_name, windows, metric)

    async def consume(stream: Any) -> None:
        async for batch in stream.take_events(settings.take_messages,
                                              within=settings.take_within_s):
            messages = [RawMessage(e.message.partition, e.message.offset, e.message.value,
                                   e.message.key) for e in batch]
            backlog = len(messages) >= settings.take_messages
            async with busy:
                try:
                    for part in by_size(messages, settings.take_bytes):
                        rejected: list[Rejected] = await retry.until_done(
                            functools.partial(processor.prepare, part, backlog),
                            f"preparing a micro-batch of {topic_name}")
                        if rejected:
                            await _send_dead_letters(dead_letters, topic_name, rejected)
                        await retry.until_done(processor.commit,
                                               f"storing a micro-batch of {topic_name}")
                except ProcessorGone as err:
                    give_up(err)
                # Busy with one micro-batch after another, the agent ticks itself: the
                # timer skips ticks while it works (and would warn that it overlaps).
                if asyncio.get_running_loop().time() - last_tick[0] >= settings.tick_interval_s:
                    await tick_now()

    consume.__name__ = f"stream_{stream_name}"
    app.agent(source, name=f"monitor.stream.{stream_name}")(consume)

    async def tick() -> None:
        if busy.locked():  # a micro-batch (which ticks when it is done) or a rebalance
            return
        async with busy:
            await tick_now()

    tick.__name__ = f"tick_{stream_name}"
    app.timer(settings.tick_interval_s, name=f"monitor.tick.{stream_name}")(tick)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def revoked(sender: Any, revoked: set[Any], **_: Any) -> None:
        mine = [tp.partition for tp in revoked if tp.topic == topic_name]
        if mine:
            async with busy:
                try:
                    await retry.until_done(processor.store,
                                           f"storing {topic_name} before a rebalance")
                    await call(lambda: processor.revoke(mine))
                except ProcessorGone as err:
                    give_up(err)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def assigned(sender: Any, assigned: set[Any], **_: Any) -> None:
        mine = sorted(tp.partition for tp in assigned if tp.topic == topic_name)
        async with busy:
            try:
                owned = await call(lambda: processor.owned())
                gone = [p for p in owned if p not in mine]
                new = [p for p in mine if p not in owned]
                await call(lambda: processor.revoke(gone))
                if new:
                    await retry.until_done(lambda: processor.assign(new),
                                           f"loading the stored state of {topic_name} {new}")
            except ProcessorGone as err:
                give_up(err)
        log.info("%s: this worker owns partitions %s", topic_name, mine)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def stopped(sender: Any, **_: Any) -> None:
        try:
            async with busy:
                try:
                    await call(processor.store)
                except StepFailed:  # once more: a pooled connection may have gone stale
                    await call(processor.store)
        except Exception as err:  # nothing is lost: the messages were not acknowledged
            log.warning("%s: final store failed (%s); the next worker replays", topic_name,
                        describe(err))
        finally:
            await call(processor.close)
            caller.shutdown(wait=False)


def by_size(messages: Sequence[RawMessage], limit: int) -> Iterator[Sequence[RawMessage]]:
    """``messages`` in consecutive parts of at most ``limit`` bytes of values, each of at
    least one message."""
    start = size = 0
    for index, message in enumerate(messages):
        length = len(message.value or b"")
        if index > start and size + length > limit:
            yield messages[start:index]
            start, size = index, 0
        size += length
    if start < len(messages):
        yield messages[start:]


async def _send_dead_letters(topic: Any, source: str, rejected: Sequence[Rejected]) -> None:
    """Deliver the dead letters (waiting for the broker's acknowledgement of each)."""
    pending = []
    for letter in rejected:
        value = json.dumps({
            "reason": letter.reason, "detail": letter.detail, "topic": source,
            "partition": letter.partition, "offset": letter.offset,
            "payload": letter.payload[:_MAX_PAYLOAD].decode("utf-8", "replace"),
            "payload_bytes": len(letter.payload),
        }).encode()
        pending.append(await topic.send(key=letter.key, value=value))
    await asyncio.gather(*pending)


_MAX_PAYLOAD = 64 * 1024  # of the original message kept in its dead letter


class _Retry:
    """Retries a step that writes to the database, waiting longer each time (to 30 s).

    When the worker is stopping it gives up by raising: the step's messages are then not
    acknowledged, and whoever owns the partition next replays them.
    """

    def __init__(self, backoff_s: float, stopping: Callable[[], bool],
                 executor: Executor | None = None) -> None:
        self.backoff_s = backoff_s
        self.stopping = stopping
        self.executor = executor  # where the step runs (None: the event loop's default)

    async def until_done(self, step: Callable[[], T], what: str) -> T:
        delay = self.backoff_s
        loop = asyncio.get_running_loop()
        while True:
            try:
                return await loop.run_in_executor(self.executor, step)
            except ProcessorGone:
                raise  # nothing to wait for: the worker stops, the next one resumes
            except Exception as err:
                if self.stopping():
                    raise StoppedBeforeStored(f"{what}: stopping before it was stored; it "
                                              "will be replayed") from err
                if looks_like_an_outage(err):
                    log.warning("%s failed (%s); retrying in %.1f s", what, describe(err),
                                delay)
                else:  # retried all the same: giving up would drop the batch
                    log.error("%s failed (%s): this does not look like an outage but like "
                              "a database that does not match this version (run `monitor "
                              "db upgrade`) or a bug; nothing is acknowledged or lost, "
                              "retrying in %.1f s", what, describe(err), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)


class StoppedBeforeStored(RuntimeError):
    """The worker stopped while a micro-batch could not be stored."""
