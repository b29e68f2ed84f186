"""The Faust worker of the streaming stage: one agent per stream topic, one processor each.

Faust runs the consumer group (several workers share the partitions) and the timer, and
fetches ahead of the agent (bounded in bytes as well as messages, see
:mod:`streaming.prefetch`); the agent gathers micro-batches (bounded in messages, bytes
and time, see :mod:`streaming.micro_batches`); :class:`streaming.processor.StreamProcessor`
does the rest. A message is acknowledged
only after its states, offset and dead-letter counts are committed to the database (and
its dead letters delivered to their topic), whatever happens — a crash, an exception, a
stop during an outage (see :class:`_StreamAgent`) — so Kafka's committed offsets never
run ahead of what is stored; what comes again is skipped by offset. A database outage is
retried with backoff, holding the batch, instead of dropping it; a stop ends the retries
and is over within :data:`STOP_WITHIN_S`.

The processor runs in a process of its own (:mod:`streaming.processor_process`): the
agent ships each micro-batch there, its head decoded on a thread of this process and
the rest's bytes to be decoded there (:mod:`streaming.split_decode`; the head's bytes stay
here unless the processor asks for them: :mod:`streaming.raw_on_demand`),
and awaits, so Faust keeps fetching on this process's core while the other computes
and stores. A lock keeps the
agent, the timer and rebalances from overlapping; while micro-batches keep coming, the
agent ticks after storing one instead of the timer. Every step that touches the
database is retried (see :mod:`streaming.retry`), which is why the processor's connection
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
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import faust
from kafka import KafkaConsumer

from monitor.spec import MetricSpec, StreamSpec
from monitor.storage.outages import Backoff
from monitor.targets import Target
from streaming.broker import create_topics, list_topics
from streaming.figures import Figures
from streaming.health_timer import watch
from streaming.label_processor import LABELS, PREDICTIONS, join_sources
from streaming.malloc_tuning import fix_mmap_threshold
from streaming.memory_bounds import PREFETCH_BYTES, TAKE_BYTES
from streaming.messages import RawMessage, Rejected
from streaming.micro_batches import Gathering
from streaming.pre_decode import Decoding, PreDecoded
from streaming.prefetch import ByteBoundApp
from streaming.processor import AfterFinal, StreamSettings
from streaming.processor_process import (
    JoinSide,
    ProcessorGone,
    ProcessorProcess,
    ProcessorSpec,
    describe,
    looks_like_an_outage,
)
from streaming.retry import MAX_BACKOFF_S, StoppedBeforeStored, StoreRetry
from streaming.split_decode import HeadDecoded
from streaming.worker_metrics import WorkerHealth

log = logging.getLogger(__name__)
T = TypeVar("T")

DEAD_LETTER_SUFFIX = ".dead-letters"
EXIT_PROCESSOR_GONE = 3  # the worker's exit code when its processor's process died
# A stopping worker lets the micro-batch in hand be stored for at most STOP_DRAIN_S, and
# is gone within STOP_WITHIN_S of SIGTERM or Ctrl-C, whatever the database does.
STOP_DRAIN_S = 10.0
STOP_WITHIN_S = 15.0


@dataclass(frozen=True)
class WorkerSettings:
    bootstrap: str
    group: str
    topics: dict[str, str] = field(default_factory=dict)  # stream name -> topic, overriding
    partitions: int = 4  # of topics the worker has to create
    take_messages: int = 4_000  # a micro-batch holds at most this many messages,
    # and at most this many bytes of message values (at least one message): 4,000
    # messages of 500 events are 280 MB, which both processes held at once
    take_bytes: int = TAKE_BYTES
    # and goes to the processor once its first message waited this long. 0.25 s made the
    # close delay's p99 0.70 to 1.03 s, 0.1 s 0.48 s, with single-event messages at the
    # same 0.85x the bare agent (bench/stream.py, two runs each on a quiet machine)
    take_within_s: float = 0.1
    # Faust fetches ahead of the agent at most this many bytes of values per stream (and
    # at most stream_buffer_maxsize messages, see faust_app)
    prefetch_bytes: int = PREFETCH_BYTES
    tick_interval_s: float = 0.1  # how often idle partitions advance and windows close
    # (a tick looks for closed windows when this worker's marks moved, else once a second)
    session_timeout_s: float = 10.0
    retry_backoff_s: float = 0.5  # first wait after a failed database write; doubles to 5 s
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
              metrics: Sequence[MetricSpec], joined: Sequence[Target] = (), *,
              after_final: AfterFinal | None = None,
              health: WorkerHealth | None = None) -> faust.App:
    """A Faust app with an agent per stream of ``metrics`` (of the Monitor at
    ``app_target``, whatever their stage: the processors follow the catalog, see
    :mod:`streaming.plan`), and for the metrics ``joined`` to labels an agent per topic of
    each (prediction stream, label stream) pair, both feeding one
    :class:`~streaming.label_processor.LabelJoinProcessor`; each processor runs in a
    process of its own (see :mod:`streaming.processor_process`), started now, with a
    connection pool of its own."""
    streams: dict[str, tuple[StreamSpec, list[MetricSpec]]] = {}
    joins: dict[tuple[str, str], tuple[StreamSpec, StreamSpec, list[Target]]] = {}
    for metric in metrics:
        stream = _with_topic(settings, metric.stream)
        streams.setdefault(stream.name, (stream, []))[1].append(metric)
    for target in joined:
        stream = _with_topic(settings, target.metric.stream)
        assert target.metric.labels is not None
        labels = _with_topic(settings, target.metric.labels.stream)
        joins.setdefault((stream.name, labels.name), (stream, labels, []))[2].append(target)
    topics = sorted({s.topic for s, _ in streams.values() if s.topic is not None}
                    | {s.topic for p, lab, _ in joins.values() for s in (p, lab)
                       if s.topic is not None})
    counts = ensure_topics(settings.bootstrap,
                           topics + [dead_letter_topic(t) for t in topics], settings.partitions)
    level = logging.getLevelName(settings.log_level.upper())
    # Before the processors fork, so that they inherit it (streaming.malloc_tuning)
    fix_mmap_threshold()
    # The processors' processes first, before the Faust app exists: they are forked when
    # this process has no thread, loop or socket yet (see streaming.fork_start).
    plain: list[tuple[StreamSpec, ProcessorProcess]] = []
    for stream, stream_metrics in streams.values():
        assert stream.topic is not None
        spec = ProcessorSpec(database_url, app_target, stream, counts[stream.topic],
                             tuple(m.name for m in stream_metrics), settings.stream,
                             after_final, level)
        plain.append((stream, ProcessorProcess(spec, _figures_sink(health, stream.topic))))
    joint: list[tuple[StreamSpec, StreamSpec, ProcessorProcess]] = []
    for predictions, labels, join_targets in joins.values():
        assert predictions.topic is not None and labels.topic is not None
        spec = ProcessorSpec(database_url, app_target, predictions, counts[predictions.topic],
                             tuple(t.metric.name for t in join_targets), settings.stream,
                             after_final, level, labels, counts[labels.topic])
        # figures under the join's own source name: the prediction topic may also have
        # a plain processor, whose partitions would otherwise overwrite these
        join_source = join_sources(predictions.topic, labels.topic)[0]
        joint.append((predictions, labels,
                      ProcessorProcess(spec, _figures_sink(health, join_source))))
    app = faust_app(settings)
    if health is not None:  # the probes and figures of /healthz, /readyz and /metrics
        watch(app, health)
    for stream, process in plain:
        assert stream.topic is not None
        decoding = Decoding(stream.schema, settings.stream.max_message_bytes,
                            settings.stream.max_future_s,
                            ThreadPoolExecutor(1, f"monitor-decode-{stream.topic}"))
        _wire(app, settings, f"stream.{stream.name}", stream.topic, process, decoding=decoding)
    for predictions, labels, process in joint:
        sides = [PREDICTIONS, LABELS]
        busy = asyncio.Lock()  # one micro-batch of either topic at a time in the process
        for side, stream in ((PREDICTIONS, predictions), (LABELS, labels)):
            assert stream.topic is not None
            _wire(app, settings, f"join.{predictions.name}.{labels.name}.{side}",
                  stream.topic, JoinSide(process, side, sides), busy)
    return app


def _figures_sink(health: WorkerHealth | None, topic: str
                  ) -> Callable[[Figures], None] | None:
    return None if health is None else health.processor_sink(topic)


def streamable(metric: MetricSpec, settings: WorkerSettings) -> bool:
    """Whether a worker reads ``metric``'s stream: it is not joined to labels and its
    stream has a topic (declared, or given with ``--topic``)."""
    return metric.labels is None and (metric.stream.topic is not None
                                      or metric.stream.name in settings.topics)


def _with_topic(settings: WorkerSettings, stream: StreamSpec) -> StreamSpec:
    if stream.name in settings.topics:
        stream = dataclasses.replace(stream, topic=settings.topics[stream.name])
    if stream.topic is None:
        raise ValueError(f"stream {stream.name!r} declares no topic; give it one with "
                         f"mon.stream({stream.name!r}, topic=...) to stream its metrics")
    return stream


def faust_app(settings: WorkerSettings) -> faust.App:
    """The Faust app of a worker, with no agents: a consumer group on ``settings.bootstrap``
    that works on a single broker (Tansu included) and starts from the earliest offset."""
    app = ByteBoundApp(
        settings.group,
        broker=f"kafka://{settings.bootstrap}",
        store="memory://",
        topic_replication_factor=1,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        # No standby replicas: there are no Faust tables to keep standbys of, and with the
        # default (1) Faust's sticky assignor caps a member at ceil(partitions / members)
        # and keeps what members hold, so a third worker on 4 partitions got none (2 + 2 +
        # 0) until another left. With 0 and no tables Faust uses aiokafka's round-robin
        # assignor: every member gets a share at each rebalance (faust-streaming #93,
        # #401, #402). Stickiness bought nothing: a rebalance reloads every partition.
        table_standby_replicas=0,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=max(settings.session_timeout_s / 6, 0.5),
        # Not waiting for every fetched message to be acknowledged: a message that was not
        # stored never is (see _StreamAgent), and the stop is bounded by the agent.
        stream_wait_empty=False,
        web_enabled=False,
        datadir=tempfile.mkdtemp(prefix="monitor-faust-"),
        producer_max_request_size=2 * settings.stream.max_message_bytes,
        # Messages fetched ahead of the agent (Faust's default is 4,096). A worker holds
        # these plus the micro-batch in hand: with 70 KB messages of 500 events, 1,024
        # instead of 4,096 took the worker from 1,050 to 710 MB and cost nothing on
        # single-event messages (bench/stream.py; the bare agent gets the same setting).
        stream_buffer_maxsize=1024,
        # and at most this many bytes of them (streaming.prefetch)
    )
    app.buffer_bytes = settings.prefetch_bytes
    return app


def _wire(app: faust.App, settings: WorkerSettings, name: str, topic_name: str,
          processor: ProcessorProcess | JoinSide, busy: asyncio.Lock | None = None, *,
          decoding: Decoding | None = None) -> None:
    source = app.topic(topic_name, value_serializer="raw", key_serializer="raw")
    dead_letters = app.topic(dead_letter_topic(topic_name), value_serializer="raw",
                             key_serializer="raw")
    agent = _StreamAgent(settings, topic_name, processor, dead_letters,
                         lambda: bool(app.should_stop), busy, decoding)

    async def consume(stream: Any) -> None:
        await agent.consume(stream)

    consume.__name__ = name.replace(".", "_")
    app.agent(source, name=f"monitor.{name}")(consume)

    async def tick() -> None:
        await agent.timer_tick()

    tick.__name__ = f"tick_{name.replace('.', '_')}"
    app.timer(settings.tick_interval_s, name=f"monitor.tick.{name}")(tick)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def revoked(sender: Any, revoked: set[Any], **_: Any) -> None:
        await agent.revoked(sorted(tp.partition for tp in revoked if tp.topic == topic_name))

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def assigned(sender: Any, assigned: set[Any], **_: Any) -> None:
        await agent.assigned(sorted(tp.partition for tp in assigned if tp.topic == topic_name))

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def stopped(sender: Any, **_: Any) -> None:
        await agent.stopped()


@dataclass
class _Batch:
    """A micro-batch taken from the gathering, until it is stored and acknowledged."""

    events: list[Any]  # Faust events, in the order they came
    backlog: bool  # full when taken: the consumer is behind
    pre: PreDecoded | None  # its messages being decoded here (None: the processor does)
    # the events' messages, made once (for the decoding, the processor, and its asks)
    messages: list[RawMessage]

    def drop(self, partitions: set[int]) -> None:
        """Forget the events of revoked ``partitions``; a decoding of the whole batch is
        dropped with them (the processor decodes what is left)."""
        kept = [e for e in self.events if e.message.partition not in partitions]
        if len(kept) < len(self.events):
            self.events, self.pre = kept, None
            self.messages = _raw_messages(kept)


class _StreamAgent:
    """One stream's agent, timer and rebalance callbacks around its processor's process.

    **Acknowledgements follow the database.** Faust commits acknowledged offsets to
    Kafka, and a new worker starts from there. Left to itself, Faust acknowledges a
    message when the agent moves on or leaves the loop — on an exception or when the
    worker stops too. So the agent reads the stream with acknowledgements off
    (``noack``) and acknowledges a micro-batch's messages itself once they are stored: a
    message that was not stored is never acknowledged, whatever happens (a stop during an
    outage lost a whole outage's messages before this).

    **Decoding overlaps storing.** A micro-batch taken from the gathering starts decoding
    at once on a thread of this process (its head: :mod:`streaming.pre_decode`, plain
    streams; the processor decodes the rest as it stores it) and
    goes to the processor in a task of its own; each such task waits for the one before
    it, so micro-batches are stored and acknowledged in the order they were taken, and
    none is stored after one that was not (``held``). The agent goes on gathering while
    micro-batch N is stored, and waits for N once N+1 is taken (so at most two are in
    hand: N in the processor, N+1 decoding or decoded). A rebalance drops the revoked
    partitions' messages from the micro-batches in hand as from the gathering.

    **Stopping is bounded.** When the worker stops, retries end at once; the micro-batch
    in hand gets until :data:`STOP_DRAIN_S` to be stored, then the processor's process is
    killed. Either way nothing unstored was acknowledged, so the worker is gone within
    :data:`STOP_WITHIN_S` of SIGTERM or Ctrl-C and the next one replays from the stored
    offsets. Cancelling the agent (as Faust does when it stops) does not cancel a store
    in progress: the agent only waits for it (``asyncio.wait``), so the store ends with
    its acknowledgement or without one, and never halfway with the lock released.
    """

    def __init__(self, settings: WorkerSettings, topic: str,
                 processor: ProcessorProcess | JoinSide, dead_letters: Any,
                 app_stopping: Callable[[], bool], busy: asyncio.Lock | None = None,
                 decoding: Decoding | None = None) -> None:
        self.settings = settings
        self.topic = topic
        self.dead_letters = dead_letters
        self.app_stopping = app_stopping
        # Calls to the processor's process block, so they run on a thread of their own.
        self.caller = ThreadPoolExecutor(1, thread_name_prefix=f"monitor-processor-{self.topic}")
        self.stop = asyncio.Event()  # set when the worker starts to stop
        self.retry = StoreRetry(settings.retry_backoff_s, self.stop, self.caller)
        # one of: a micro-batch, a tick, a rebalance, the stop (shared by the agents of
        # both topics of a label join: they share its processor's process)
        self.busy = busy or asyncio.Lock()
        self.processor = processor
        self.decoding = decoding  # None: the processor decodes (a label join's sides)
        self.mark_unknown = True  # decode with the unknown-fields mark (until told not to)
        self.last_tick = 0.0  # loop time of the last tick
        self.gathering: Gathering[Any] = Gathering(settings.take_messages,
                                                   settings.take_bytes, settings.take_within_s)
        self.manual: Any = None  # the stream, acknowledged by hand (set by consume)
        self.held = False  # a micro-batch could not be stored: store nothing after it
        self.in_hand: list[_Batch] = []  # taken, not yet stored (or given up), in order
        self.last_store: asyncio.Task[None] | None = None  # of the last micro-batch taken
        self.tick_backoff = Backoff(settings.retry_backoff_s, MAX_BACKOFF_S)
        self.tick_delays = self.tick_backoff.delays()
        self.tick_after = 0.0  # loop time before which a failed tick is not tried again

    # -- the agent -------------------------------------------------------------------

    async def consume(self, stream: Any) -> None:
        """Gather the stream's messages into micro-batches (:mod:`streaming.micro_batches`)
        and store each when it is due; the timer stores one that waited long enough with
        no message after it. Acknowledgements are manual (``noack``): a message is
        acknowledged only once it is stored."""
        self.manual = stream.noack()
        async for event in self.manual.events():
            if self.stopping or self.held:
                await self._hold()  # the worker is stopping: leave these for the next one
            message = event.message
            now = self._loop_time()
            self.gathering.add(event, message.partition, len(message.value or b""), now)
            if self.gathering.due(now, self._waiting()):
                before = self.last_store
                self._take()
                if before is not None:  # N+1 is decoding: wait until N is stored
                    await _finished(before)
                    _raise_failure(before)
            if self.held:
                await self._hold()

    def _waiting(self) -> bool:
        """Whether more messages of the stream wait in Faust's buffer (the agent is
        behind)."""
        queue = getattr(getattr(self.manual, "channel", None), "_queue", None)
        return queue is not None and not queue.empty()

    def _take(self, tick: bool = False) -> asyncio.Task[None]:
        """Take the micro-batch gathered so far, start decoding it, and store it once the
        micro-batch before it is stored (a task; ``tick``: tick after it whenever)."""
        backlog = self.gathering.full
        events = self.gathering.take()
        messages = _raw_messages(events)
        pre = None
        if self.decoding is not None and events:
            pre = self.decoding.pre_decode(messages, self.mark_unknown)
        batch = _Batch(events, backlog, pre, messages)
        self.in_hand.append(batch)
        task = asyncio.ensure_future(self._store_in_turn(self.last_store, batch, tick))
        self.last_store = task
        return task

    async def _store_in_turn(self, before: asyncio.Task[None] | None, batch: _Batch,
                             tick: bool) -> None:
        try:
            if before is not None:
                await _finished(before)
                if before.cancelled() or before.exception() is not None:
                    self.held = True  # not stored: nor may anything after it be
            async with self.busy:
                await self._store_batch(batch)
                # Busy with one micro-batch after another, the agent ticks itself: the
                # timer skips ticks while it works (and would warn that it overlaps).
                if not self.held and (tick or self._loop_time() - self.last_tick
                                      >= self.settings.tick_interval_s):
                    await self._tick()
        finally:
            self.in_hand.remove(batch)

    async def _store_batch(self, batch: _Batch) -> None:
        """Store a micro-batch and acknowledge its messages (``busy`` held by the caller).
        A micro-batch that could not be stored is never acknowledged and nothing after it
        is stored: the worker holds until it is stopped."""
        if self.held or self.stopping or not batch.events:
            return
        try:
            await self._store(batch.messages, batch)
        except StoppedBeforeStored as err:
            log.warning("%s", err)
            self.held = True
        except ProcessorGone as err:
            await self._processor_gone(err)
        except BaseException:
            self.held = True
            raise
        else:
            for event in batch.events:
                await self.manual.ack(event)

    async def _store(self, messages: Sequence[RawMessage], batch: _Batch) -> None:
        prepare = functools.partial(self.processor.prepare, messages, batch.backlog)
        if batch.pre is not None:
            assert isinstance(self.processor, ProcessorProcess)
            try:
                head = await asyncio.wrap_future(batch.pre.future)
            except Exception as err:  # the processor decodes it instead
                log.error("%s: decoding a micro-batch failed (%s); the processor decodes "
                          "it", self.topic, describe(err))
            else:
                prepare = functools.partial(self._prepare_decoded, messages, head,
                                            batch.backlog)
                del head
        rejected: list[Rejected] = await self.retry.until_done(
            prepare, f"preparing a micro-batch of {self.topic}")
        # The decoded frame is in the processor now: let go of it here, so that the
        # memory given back after the commit (ProcessorProcess.commit) includes it
        batch.pre = None
        del prepare
        if rejected:
            await _send_dead_letters(self.dead_letters, self.topic, rejected)
        refused: list[Rejected] = await self.retry.until_done(
            self.processor.commit, f"storing a micro-batch of {self.topic}")
        if refused:  # stored as dead letters already; to the topic too (at most once)
            await _send_dead_letters(self.dead_letters, self.topic, refused)

    def _prepare_decoded(self, messages: Sequence[RawMessage], head: HeadDecoded,
                         backlog: bool) -> list[Rejected]:
        """On the caller thread: prepare, noting whether the next decoding marks."""
        assert isinstance(self.processor, ProcessorProcess)
        rejected, self.mark_unknown = self.processor.prepare_decoded(messages, head, backlog)
        return rejected

    async def _hold(self) -> NoReturn:
        """Wait, holding the micro-batch unacknowledged, until the worker cancels the
        agent as it stops."""
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    # -- the clock -------------------------------------------------------------------

    async def timer_tick(self) -> None:
        if self.busy.locked() or self.stopping or self.in_hand:  # a micro-batch (which
            return  # ticks when it is done), a rebalance, or the stop
        if self.gathering.due(self._loop_time(), self._waiting()):  # none came after it
            task = self._take(tick=True)
            await _finished(task)
            _raise_failure(task)
            return
        async with self.busy:
            if not self.held:
                await self._tick()

    async def _tick(self) -> None:
        """Advance idle partitions and close due windows (``busy`` held by the caller).
        After a failure (an outage) ticks back off as stores do, so an outage is not
        logged ten times a second."""
        now = self._loop_time()
        self.last_tick = now
        if now < self.tick_after or self.stopping:
            return
        try:
            closed = await self._call(self.processor.tick)
        except ProcessorGone as err:
            await self._processor_gone(err)
        except Exception as err:  # the next tick tries again; the data is held, not lost
            delay = next(self.tick_delays)
            self.tick_after = now + delay
            level = logging.WARNING if looks_like_an_outage(err) else logging.ERROR
            log.log(level, "%s: closing windows failed (%s); trying again in %.1f s",
                    self.topic, describe(err), delay)
            return
        self.tick_delays = self.tick_backoff.delays()
        self.tick_after = 0.0
        for metric, windows in closed:
            log.info("%s: stored %d final windows of %s", self.topic, windows, metric)

    # -- rebalances ------------------------------------------------------------------

    async def revoked(self, partitions: list[int]) -> None:
        if not partitions or self.stopping:
            return
        async with self.busy:
            # Gathered but not yet sent: the next owner reads them from the stored offsets
            # (not acknowledged, so Kafka's committed offsets do not pass them either).
            self.gathering.drop(set(partitions))
            for batch in self.in_hand:  # taken but not yet sent (stored in turn after this)
                batch.drop(set(partitions))
            try:
                await self.retry.until_done(self.processor.store,
                                            f"storing {self.topic} before a rebalance")
                await self._call(lambda: self.processor.revoke(partitions))
            except StoppedBeforeStored as err:
                log.warning("%s", err)
            except ProcessorGone as err:
                await self._processor_gone(err)

    async def assigned(self, partitions: list[int]) -> None:
        if self.stopping:
            return
        async with self.busy:
            try:
                owned = await self._call(self.processor.owned)
                gone = [p for p in owned if p not in partitions]
                new = [p for p in partitions if p not in owned]
                await self._call(lambda: self.processor.revoke(gone))
                if new:
                    await self.retry.until_done(
                        lambda: self.processor.assign(new),
                        f"loading the stored state of {self.topic} {new}")
            except StoppedBeforeStored as err:
                log.warning("%s", err)
                return
            except ProcessorGone as err:
                await self._processor_gone(err)
        log.info("%s: this worker owns partitions %s", self.topic, partitions)

    # -- the end ---------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self.stop.is_set()

    async def stopped(self) -> None:
        """The worker stops: let the micro-batch in hand be stored (for at most
        STOP_DRAIN_S), store what is absorbed, and end the processor's process."""
        self.stop.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_DRAIN_S
        acquired = False
        try:
            await asyncio.wait_for(self.busy.acquire(), STOP_DRAIN_S)
            acquired = True
            await asyncio.wait_for(self._call(self.processor.store),
                                   max(deadline - loop.time(), 0.1))
        except TimeoutError:
            log.warning("%s: what this worker holds was not stored within %.0f s of the "
                        "stop; stopping without it (it was not acknowledged: the next "
                        "worker replays it from the stored offsets)", self.topic,
                        STOP_DRAIN_S)
        except Exception as err:  # nothing is lost: the messages were not acknowledged
            log.warning("%s: final store failed (%s); the next worker replays from the "
                        "stored offsets", self.topic, describe(err))
        # Not on self.caller: a step stuck there (a database that does not answer) must
        # not hold up the end; close() kills the process if it does not end at once.
        await loop.run_in_executor(None, self.processor.close)
        self.caller.shutdown(wait=False)
        if self.decoding is not None:
            self.decoding.executor.shutdown(wait=False, cancel_futures=True)
        if acquired:  # the other agent of a label join, which shares the lock, stops next
            self.busy.release()

    async def _processor_gone(self, err: ProcessorGone) -> NoReturn:
        """The processor's process died: the worker exits at once. Not through Faust's
        shutdown, which would wait for the micro-batch in hand to be acknowledged, and it
        must not be: it was not stored. Nothing unstored was acknowledged, so whoever
        owns the partitions next resumes from the stored offsets. (While the worker
        stops, the process is ended on purpose: then the agent just waits to be
        cancelled.)"""
        if self.stopping:
            await self._hold()
        log.critical("%s: this worker stops; start the worker again: it resumes from the "
                     "stored offsets, nothing is lost", err)
        logging.shutdown()
        os._exit(EXIT_PROCESSOR_GONE)

    async def _call(self, step: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.caller, step)

    @staticmethod
    def _loop_time() -> float:
        return asyncio.get_running_loop().time()


def _raw_messages(events: Sequence[Any]) -> list[RawMessage]:
    return [RawMessage(e.message.partition, e.message.offset, e.message.value, e.message.key)
            for e in events]


async def _finished(task: asyncio.Future[Any]) -> None:
    """Wait until ``task`` is done, without cancelling it if the waiter is cancelled and
    without raising what it raised (its waiters in turn look at it)."""
    await asyncio.wait([task])


def _raise_failure(task: asyncio.Future[Any]) -> None:
    """Raise what a finished store raised (an unexpected error ends the agent, as it did
    when the agent stored in its own loop; the stores after it hold, see ``held``)."""
    if not task.cancelled() and (error := task.exception()) is not None:
        raise error


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
