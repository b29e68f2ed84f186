"""The Faust worker of the streaming stage: one agent per stream topic, one processor each.

Faust runs the consumer group (several workers share the partitions), the micro-batches
(``take_events``) and the timer; :class:`streaming.processor.StreamProcessor` does the
rest. An agent acknowledges a micro-batch only after its states, offsets and dead-letter
counts are committed to the database (and its dead letters delivered to their topic), so
Kafka's committed offsets never run ahead of what is stored; what comes again after a
crash is skipped by offset. A database outage is retried with backoff, holding the
batch, instead of dropping it.

Database work (storing a micro-batch, closing windows, loading a partition's state) runs
on one thread of its own, so while it waits on Postgres the event loop keeps fetching the
next messages; a lock keeps the agent, the timer and rebalances from touching the
processor at once. Every database step is retried (see :class:`_Retry`), which is why the
worker's connection pool can skip pre-ping.

No Faust tables: the per-partition states live in the database (see
:mod:`streaming.state_store` for why), so Faust's ``exactly_once`` (Kafka transactions,
which the embedded broker cannot do) is not needed for exactly-once values.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import faust
from kafka import KafkaConsumer
from sqlalchemy import exc as sa_exc

from monitor.batch.runner import Target
from monitor.spec import StreamSpec
from monitor.storage.database import Database, DatabaseUnavailableError
from streaming.broker import create_topics, list_topics
from streaming.messages import RawMessage, Rejected
from streaming.processor import AfterFinal, StreamProcessor, StreamSettings

log = logging.getLogger(__name__)

DEAD_LETTER_SUFFIX = ".dead-letters"


@dataclass(frozen=True)
class WorkerSettings:
    bootstrap: str
    group: str
    topics: dict[str, str] = field(default_factory=dict)  # stream name -> topic, overriding
    partitions: int = 4  # of topics the worker has to create
    take_messages: int = 4_000  # a micro-batch holds at most this many messages...
    take_within_s: float = 0.25  # ...or what arrived within this time
    tick_interval_s: float = 0.1  # how often idle partitions advance and windows close
    # (a tick looks for closed windows when this worker's marks moved, else once a second)
    session_timeout_s: float = 10.0
    retry_backoff_s: float = 0.5  # first wait after a failed database write; doubles to 30 s
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


def build_app(settings: WorkerSettings, database: Database, targets: Sequence[Target], *,
              after_final: AfterFinal | None = None,
              on_processor: Callable[[StreamProcessor], None] | None = None) -> faust.App:
    """A Faust app with an agent per stream that has metrics in ``targets``."""
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
        processor = StreamProcessor(database, stream, stream.topic, counts[stream.topic],
                                    stream_targets, settings.stream, after_final=after_final)
        if on_processor is not None:
            on_processor(processor)
        _wire(app, settings, processor)
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
    )


def _wire(app: faust.App, settings: WorkerSettings, processor: StreamProcessor) -> None:
    topic_name = processor.topic
    source = app.topic(topic_name, value_serializer="raw", key_serializer="raw")
    dead_letters = app.topic(dead_letter_topic(topic_name), value_serializer="raw",
                             key_serializer="raw")
    database_thread = ThreadPoolExecutor(1, thread_name_prefix=f"monitor-db-{topic_name}")
    retry = _Retry(settings.retry_backoff_s, lambda: bool(app.should_stop), database_thread)
    busy = asyncio.Lock()  # one of: a micro-batch, a tick, a rebalance, the final store

    async def consume(stream: Any) -> None:
        async for batch in stream.take_events(settings.take_messages,
                                              within=settings.take_within_s):
            messages = [RawMessage(e.message.partition, e.message.offset, e.message.value,
                                   e.message.key) for e in batch]
            async with busy:
                if len(messages) >= settings.take_messages:
                    processor.note_backlog()
                unloaded = sorted({m.partition for m in messages} - set(processor.owned))
                if unloaded:  # messages before the assignment callback: load them first
                    await retry.until_done(lambda u=unloaded: processor.assign(u),  # type: ignore[misc]
                                           f"loading the stored state of {topic_name} "
                                           f"{unloaded}")
                prepared = processor.prepare(messages)
                if prepared.rejected:
                    await _send_dead_letters(dead_letters, topic_name, prepared.rejected)
                processor.absorb(prepared)
                await retry.until_done(lambda p=prepared: processor.store_or_reload(p),  # type: ignore[misc]
                                       f"storing a micro-batch of {topic_name}")

    consume.__name__ = f"stream_{processor.stream.name}"
    app.agent(source, name=f"monitor.stream.{processor.stream.name}")(consume)

    async def tick() -> None:
        try:
            async with busy:
                closed = await asyncio.get_running_loop().run_in_executor(database_thread,
                                                                          processor.tick)
            for done in closed:
                log.info("%s: stored %d final windows of %s", topic_name, len(done.windows),
                         done.metric)
        except Exception as err:  # the next tick tries again; the data is held, not lost
            log.warning("%s: closing windows failed (%s); trying again", topic_name,
                        describe(err))

    tick.__name__ = f"tick_{processor.stream.name}"
    app.timer(settings.tick_interval_s, name=f"monitor.tick.{processor.stream.name}")(tick)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def revoked(sender: Any, revoked: set[Any], **_: Any) -> None:
        mine = [tp.partition for tp in revoked if tp.topic == topic_name]
        if mine:
            async with busy:
                await retry.until_done(processor.store,
                                       f"storing {topic_name} before a rebalance")
                processor.revoke(mine)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def assigned(sender: Any, assigned: set[Any], **_: Any) -> None:
        mine = sorted(tp.partition for tp in assigned if tp.topic == topic_name)
        async with busy:
            gone = [p for p in processor.owned if p not in mine]
            processor.revoke(gone)
            new = [p for p in mine if p not in processor.owned]
            if new:
                await retry.until_done(lambda: processor.assign(new),
                                       f"loading the stored state of {topic_name} {new}")
        log.info("%s: this worker owns partitions %s", topic_name, mine)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def stopped(sender: Any, **_: Any) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with busy:
                try:
                    await loop.run_in_executor(database_thread, processor.store)
                except Exception:  # once more: a pooled connection may have gone stale
                    await loop.run_in_executor(database_thread, processor.store)
        except Exception as err:  # nothing is lost: the messages were not acknowledged
            log.warning("%s: final store failed (%s); the next worker replays", topic_name,
                        describe(err))
        finally:
            database_thread.shutdown(wait=False)


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

    async def until_done(self, step: Callable[[], object], what: str) -> None:
        delay = self.backoff_s
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(self.executor, step)
                return
            except Exception as err:
                if self.stopping():
                    raise StoppedBeforeStored(f"{what}: stopping before it was stored; it "
                                              "will be replayed") from err
                if _looks_like_an_outage(err):
                    log.warning("%s failed (%s); retrying in %.1f s", what, describe(err),
                                delay)
                else:  # retried all the same: giving up would drop the batch
                    log.error("%s failed (%s): this does not look like an outage but like "
                              "a database that does not match this version (run `monitor "
                              "db upgrade`) or a bug; nothing is acknowledged or lost, "
                              "retrying in %.1f s", what, describe(err), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)


def _looks_like_an_outage(err: BaseException) -> bool:
    """A lost or refused connection, a timeout, a deadlock: what waiting can cure."""
    return isinstance(err, (sa_exc.OperationalError, sa_exc.InterfaceError,
                            DatabaseUnavailableError, ConnectionError, TimeoutError))


class StoppedBeforeStored(RuntimeError):
    """The worker stopped while a micro-batch could not be stored."""


def describe(err: BaseException, limit: int = 300) -> str:
    """One short line: a driver error's message without the SQL and its parameters."""
    origin = getattr(err, "orig", None) or err
    first = (str(origin).strip().splitlines() or [""])[0]
    text = f"{type(err).__name__}: {first}"
    return text if len(text) <= limit else text[: limit - 1] + "…"
