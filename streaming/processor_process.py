"""A worker's :class:`~streaming.processor.StreamProcessor`, run in a process of its own.

Why a process: Faust spends about 90 µs of Python on the event loop per message, and the
processor (decoding, the engine, building the rows to store) about 30 µs per event more.
Both hold the GIL, so in one process they add up: single-event messages went at 0.72 to
0.91 of a bare agent's rate. Time the agent spends *awaiting* is hidden instead: a bare
agent that awaits 35 µs per event per micro-batch runs as fast as one that does not
(measured side by side, see the closing note of issue 4), because Faust keeps fetching
meanwhile. So the agent ships each micro-batch here over a pipe and awaits, and the
processing runs on the other core. A plain stream's micro-batch comes with its head
decoded already (:mod:`streaming.pre_decode`) and the bytes of the rest, which the child
decodes (:mod:`streaming.split_decode`), and its messages' positions; the child asks for
all the bytes on the rare paths that need them (:mod:`streaming.raw_on_demand`):
the parent keeps the messages of the micro-batch in the child until it is stored.

One request at a time, answered in order: the worker's lock already serialises its
micro-batches, ticks and rebalances. A step that fails in the child comes back as
:class:`StepFailed`, saying whether it looks like an outage, so the worker's retry loop
treats it as before. The child dies with the worker (``PR_SET_PDEATHSIG`` on Linux, and
end of file on its pipe elsewhere): a killed worker leaves no process writing behind.

The child is forked from the worker when that is safe (no other Python thread, event
loop or socket yet: see :mod:`streaming.fork_start`), so the libraries both import
(about 200 MB) are in memory once, shared copy on write; otherwise it is spawned and
imports them again.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import itertools
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import traceback
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from monitor.spec import MetricSpec, StreamSpec
from monitor.storage.database import Database
from monitor.storage.outages import call_through_outages, describe_error, is_outage
from monitor.targets import Target
from streaming.figures import Figures, PartitionMarks, Tally
from streaming.fork_start import fork_refusal
from streaming.label_processor import PREDICTIONS, JoinPrepared, LabelJoinProcessor
from streaming.label_store import SqlHeldStore
from streaming.lifecycle_poll import CatalogPlan
from streaming.malloc_tuning import fix_mmap_threshold
from streaming.messages import RawMessage, Rejected
from streaming.observed_store import ObservedStore
from streaming.processor import AfterFinal, StreamProcessor, StreamSettings
from streaming.raw_on_demand import NEED_RAW, Columns, RawOnDemand, columns_of, messages_of
from streaming.split_decode import HeadDecoded, decode_tail
from streaming.sql_store import SqlStreamStore

if TYPE_CHECKING:
    from multiprocessing.context import ForkContext, SpawnContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessorSpec:
    """What the child needs to build the processor (pickled to it when it is spawned).
    The child loads the app itself, as the worker did (a forked child finds it imported):
    metric definitions hold user code, which need not pickle."""

    database_url: str
    app_target: str  # module:attribute of the Monitor
    stream: StreamSpec  # with the worker's topic
    partitions: int
    # A plain stream's metrics, whatever their stage: the processor follows the catalog
    # (streaming.plan). A label join's: those in the streaming stage as the worker started.
    metrics: tuple[str, ...]
    settings: StreamSettings
    after_final: AfterFinal | None  # a module-level function (pickled by name)
    log_level: int
    # A label join (streaming.label_processor): the label stream, with the worker's topic,
    # and its partitions; ``stream`` is then the prediction stream.
    labels: StreamSpec | None = None
    label_partitions: int = 0

    @property
    def topic(self) -> str:
        assert self.stream.topic is not None
        return self.stream.topic

    def app_metrics(self) -> list[MetricSpec]:
        """The app's definitions of the metrics (reference unbound), imported here."""
        from monitor.app_loading import load_app

        app = load_app(self.app_target)
        return [app.get(name) for name in self.metrics]

    def targets(self, database: Database) -> list[Target]:
        """The metrics with their stored versions and references, as the worker found."""
        from monitor.app_loading import load_app
        from monitor.storage.store import SqlStore
        from monitor.targets import batch_targets

        store = SqlStore(database)
        found = {t.metric.name: t for t in batch_targets(load_app(self.app_target), store,
                                                         names=self.metrics,
                                                         stages=("streaming",))}
        if missing := [name for name in self.metrics if name not in found]:
            raise RuntimeError(f"{', '.join(missing)} left the streaming stage as the worker "
                               "started; start it again")
        return [found[name] for name in self.metrics]


class StepFailed(RuntimeError):
    """A step failed in the processor's process; ``outage`` if waiting may cure it."""

    def __init__(self, description: str, outage: bool) -> None:
        super().__init__(description)
        self.outage = outage


class ProcessorGone(RuntimeError):
    """The processor's process ended: the worker cannot go on (nothing is acknowledged
    that was not stored, so whoever owns the partitions next resumes)."""


# The processors this process started and has not closed (whose pipes a fork copies).
_started: weakref.WeakSet[ProcessorProcess] = weakref.WeakSet()


class ProcessorProcess:
    """The parent's handle: blocking calls (run them off the event loop). Every reply
    carries the child's :class:`~streaming.figures.Figures`, handed to ``on_figures``."""

    _conn: Connection  # this process's end of the pipe to the child

    def __init__(self, spec: ProcessorSpec,
                 on_figures: Callable[[Figures], None] | None = None) -> None:
        # Forked when that is safe, to share the imported libraries' pages with this
        # process; spawned otherwise (see streaming.fork_start).
        open_pipes = [p._conn for p in _started if not p._conn.closed]
        refusal = fork_refusal(pipe.fileno() for pipe in open_pipes)
        self.start_method = "spawn" if refusal else "fork"
        if refusal:
            log.warning("the processor of %s is spawned, not forked, so it imports the "
                        "libraries again (about 200 MB more): %s", spec.topic, refusal)
        context: ForkContext | SpawnContext = (
            multiprocessing.get_context("spawn") if refusal
            else multiprocessing.get_context("fork"))
        self._conn, child = context.Pipe()
        # A forked child holds copies of this process's ends of every processor's pipe
        # (its own too): it closes them, so a pipe ends when the worker closes it.
        inherited = [self._conn, *open_pipes] if self.start_method == "fork" else []
        self._process = context.Process(target=serve, args=(child, spec, inherited),
                                        daemon=True, name=f"monitor-processor-{spec.topic}")
        if self.start_method == "fork":
            gc.freeze()  # see streaming.fork_start; kept frozen in both processes
        self._process.start()
        child.close()
        _started.add(self)
        self._lock = threading.Lock()
        # This process decodes micro-batches too (streaming.pre_decode): their frames'
        # strings are in Arrow's pool, which keeps freed memory as malloc does
        self._trim = _memory_giver()
        self.topic = spec.topic
        self.on_figures = on_figures
        self._batches = itertools.count()
        # The micro-batch in the child whose messages it may ask for, with its number:
        # kept until it is stored (the agent holds them until then anyway).
        self._in_child: tuple[int, Sequence[RawMessage]] | None = None

    # -- the processor's steps, as the worker uses them --------------------------------

    def owned(self) -> set[int]:
        return set(self._call("owned"))

    def assign(self, partitions: Sequence[int]) -> None:
        self._call("assign", list(partitions))

    def revoke(self, partitions: Sequence[int]) -> None:
        self._call("revoke", list(partitions))

    def prepare(self, messages: Sequence[RawMessage], backlog: bool) -> list[Rejected]:
        """Decide a micro-batch (kept in the child until :meth:`commit`); its rejects."""
        self._in_child = None  # the child has them all
        rejected: list[Rejected] = self._call("prepare", columns_of(messages), backlog)
        return rejected

    def prepare_decoded(self, messages: Sequence[RawMessage], head: HeadDecoded,
                        backlog: bool) -> tuple[list[Rejected], bool]:
        """:meth:`prepare` with the ``head`` of ``messages`` decoded already (see
        streaming.pre_decode): the child decodes the rest (streaming.split_decode). Its
        rejects, and whether the processor wants the unknown-fields mark now (for the next
        micro-batch's decoding). The child gets the messages' positions and the bytes of
        the rest; it asks for all of them if it needs them (see :meth:`answer_raw`), until
        the micro-batch is stored."""
        batch = next(self._batches)
        self._in_child = (batch, messages)
        positions = ([m.partition for m in messages], [m.offset for m in messages])
        tail = messages[head.messages:]
        tail_bytes = ([m.value for m in tail], [m.key for m in tail])
        answer: tuple[list[Rejected], bool] = self._call("prepare_decoded", batch, positions,
                                                         head, tail_bytes, backlog)
        return answer

    def answer_raw(self, batch: int) -> Columns | None:
        """The child's ask for micro-batch ``batch``'s messages: them, if they are still
        here (None otherwise; the child's step then fails)."""
        if self._in_child is None or self._in_child[0] != batch:
            return None
        return columns_of(self._in_child[1])

    def commit(self) -> list[Rejected]:
        """Absorb the prepared micro-batch (once) and store it; call again after a failure.
        The messages the database refused to store, set aside as dead letters."""
        refused: list[Rejected] = self._call("commit")
        self._in_child = None  # stored: the child will not ask for them
        self._trim()
        return refused

    def store(self) -> None:
        self._call("store")

    def tick(self) -> list[tuple[str, int]]:
        """Per metric with windows closed: (metric, windows)."""
        closed: list[tuple[str, int]] = self._call("tick")
        return closed

    def close(self, timeout: float = 2.0) -> None:
        """End the process: asked to, or killed if a step still holds it after
        ``timeout`` seconds (a stopping worker must not wait on a stuck database)."""
        if self._lock.acquire(timeout=timeout):
            try:
                self._conn.send(("close", ()))
                if self._conn.poll(timeout):
                    self._conn.recv()
            except (EOFError, OSError):
                pass
            finally:
                self._lock.release()
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout)
        self._conn.close()
        _started.discard(self)

    def call(self, step: str, *args: Any) -> Any:
        """A step by name (a label join's steps take the side first, see JoinSide)."""
        return self._call(step, *args)

    def _call(self, step: str, *args: Any) -> Any:
        with self._lock:
            try:
                self._conn.send((step, args))
                reply = self._conn.recv()
                while reply[0] == NEED_RAW:  # the step needs a micro-batch's messages
                    self._conn.send(self.answer_raw(reply[1]))
                    reply = self._conn.recv()
                ok, value, figures = reply
            except (EOFError, OSError) as err:
                raise ProcessorGone(f"the processor of {self.topic} ended (exit code "
                                    f"{self._process.exitcode})") from err
            if self.on_figures is not None:
                self.on_figures(figures)
        if not ok:
            description, outage = value
            raise StepFailed(description, outage)
        return value


# -- the child ----------------------------------------------------------------------------


def serve(conn: Connection, spec: ProcessorSpec, inherited: Sequence[Connection] = ()
          ) -> None:
    """The child's loop: one step per request, until ``close`` or the parent's end
    (``inherited``: the parent's ends of pipes a fork copied here, closed at once)."""
    # Ctrl-C reaches the whole process group, and a service manager's SIGTERM may too:
    # the worker stops this process itself, after its final store through it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent()
    fix_mmap_threshold()  # inherited when forked; a spawned child sets it here
    for pipe in inherited:
        pipe.close()
    # forced: a forked child has the worker's handlers, if it had any by then
    logging.basicConfig(level=spec.log_level, stream=sys.stderr, force=True,
                        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s")
    database = Database(spec.database_url, pre_ping=False)  # every step is retried
    tally = Tally()
    give_back = _memory_giver()
    steps: _Steps | _JoinSteps
    if spec.labels is None:
        store = ObservedStore(SqlStreamStore(database, owner=worker_name()), tally)
        processor = StreamProcessor(store, spec.stream, spec.topic, spec.partitions, [],
                                    spec.settings, after_final=spec.after_final,
                                    plan_source=CatalogPlan(database, spec.app_metrics()))
        call_through_outages(lambda: processor.follow(force=True),
                             f"reading the streaming stage of {spec.topic}'s metrics")
        steps = _Steps(processor, functools.partial(ask_for_raw, conn))
    else:  # its store is not observed yet: /metrics shows its partitions, not its counts
        targets = call_through_outages(lambda: spec.targets(database),
                                       f"loading the streaming metrics of {spec.topic}")
        steps = _JoinSteps(LabelJoinProcessor(
            SqlHeldStore(database, owner=worker_name()), spec.stream, spec.labels,
            spec.partitions,
            spec.label_partitions, targets, spec.settings, after_final=spec.after_final))
    try:
        while True:
            try:
                step, args = conn.recv()
            except (EOFError, OSError):
                return  # the worker is gone
            if step == "close":
                conn.send((True, None, tally.drain(steps.partitions(), steps.problems())))
                return
            try:
                result = getattr(steps, step)(*args)
            except Exception as err:
                log.debug("step %s failed:\n%s", step, traceback.format_exc())
                reply = (False, (describe(err), looks_like_an_outage(err)))
            else:
                reply = (True, result)
            conn.send((*reply, tally.drain(steps.partitions(), steps.problems())))
            del step, args, reply
            give_back()
    finally:
        database.dispose()


def ask_for_raw(conn: Connection, batch: int) -> Columns | None:
    """In the middle of a step: ask the worker for micro-batch ``batch``'s messages."""
    conn.send((NEED_RAW, batch))
    columns: Columns | None = conn.recv()
    return columns


def _no_worker_to_ask(batch: int) -> Columns | None:
    return None


class _Steps:
    """The processor's steps as requests name them. ``ask_raw``: how a micro-batch that
    came decoded gets its messages when a rare path needs them."""

    def __init__(self, processor: StreamProcessor,
                 ask_raw: Callable[[int], Columns | None] = _no_worker_to_ask) -> None:
        self.processor = processor
        self.ask_raw = ask_raw
        self.pending: Any = None  # a prepared micro-batch, until it is stored
        self.absorbed = False
        # A failed store reloaded the stored state: prepare the micro-batch again first
        self.stale = False

    def owned(self) -> list[int]:
        return sorted(self.processor.owned)

    def partitions(self) -> dict[int, PartitionMarks]:
        """The owned partitions as stored (what /metrics reports, not what is in memory)."""
        return {partition: PartitionMarks(state.checkpoint.offset, state.checkpoint.mark_ns)
                for partition, state in sorted(self.processor.owned.items())}

    def problems(self) -> list[str]:
        """The metric versions in streaming that this worker cannot compute, and why."""
        return sorted(self.processor.unservable.values())

    def assign(self, partitions: list[int]) -> None:
        self.processor.assign(partitions)

    def revoke(self, partitions: list[int]) -> None:
        self.processor.revoke(partitions)

    def prepare(self, columns: Columns, backlog: bool) -> list[Rejected]:
        if backlog:
            self.processor.note_backlog()
        messages = messages_of(columns)
        # A partition whose messages come before its assignment callback is loaded by
        # prepare itself; a failed load fails this step, which the worker retries.
        self.pending = self.processor.prepare(messages)
        self.absorbed = self.stale = False
        return list(self.pending.rejected)

    def prepare_decoded(self, batch: int, positions: tuple[list[int], list[int]],
                        head: HeadDecoded,
                        tail_bytes: tuple[list[bytes | None], list[bytes | None]],
                        backlog: bool) -> tuple[list[Rejected], bool]:
        """``tail_bytes``: the values and keys of the messages after the head's."""
        if backlog:
            self.processor.note_backlog()
        partitions, offsets = positions
        tail = messages_of((partitions[head.messages:], offsets[head.messages:], *tail_bytes))
        decoded = decode_tail(head, tail, self.processor.stream.schema,
                              self.processor.settings.max_message_bytes)
        del tail
        messages = RawOnDemand(batch, partitions, offsets, self.ask_raw)
        self.pending = self.processor.prepare(messages, decoded, head.marked)
        self.absorbed = self.stale = False
        return list(self.pending.rejected), self.processor.wants_unknown_mark

    def commit(self) -> list[Rejected]:
        """Store the prepared micro-batch; the dead letters found as it was absorbed
        (events a per-event function failed on), or the messages the database refused
        (see StreamProcessor.store_isolating)."""
        if self.pending is None:
            return []
        if self.stale:  # (its messages, not a decoding: asked for if they came decoded)
            self.pending = self.processor.prepare(self.pending.messages)
            self.absorbed = self.stale = False
        if not self.absorbed:
            self.processor.absorb(self.pending)
            self.absorbed = True
        try:
            stored = self.processor.store_or_reload(self.pending)
        except Exception as err:
            if looks_like_an_outage(err):
                raise  # retried as it is: what is absorbed waits in memory
            try:
                refused = self.processor.store_isolating(self.pending)
            except Exception:  # reloaded: the next attempt starts from the stored state
                self.absorbed, self.stale = False, True
                raise
        else:
            refused = stored.failed  # stored with the batch; to the topic now
        self.pending = None
        return refused

    def store(self) -> None:
        self.processor.store()

    def tick(self) -> list[tuple[str, int]]:
        return [(done.metric, len(done.windows)) for done in self.processor.tick()]


class _JoinSteps:
    """A label join's steps as requests name them: each side's (its partitions, its
    micro-batches) first names the side; one micro-batch at a time, as for _Steps."""

    def __init__(self, processor: LabelJoinProcessor) -> None:
        self.processor = processor
        self.pending: JoinPrepared | None = None
        self.absorbed = False

    def owned(self, side: str) -> list[int]:
        return sorted(self.processor.sides[side].owned)

    def partitions(self) -> dict[int, PartitionMarks]:
        """The prediction side's owned partitions as stored, whose lag /metrics and /readyz
        report under the join's source name (the label side's are not reported)."""
        owned = self.processor.sides[PREDICTIONS].owned
        return {partition: PartitionMarks(state.checkpoint.offset, state.checkpoint.mark_ns)
                for partition, state in sorted(owned.items())}

    def problems(self) -> list[str]:
        return []  # its metrics were read at start (it does not follow the catalog yet)

    def assign(self, side: str, partitions: list[int]) -> None:
        self.processor.assign(side, partitions)

    def revoke(self, side: str, partitions: list[int]) -> None:
        self.processor.revoke(side, partitions)

    def prepare(self, side: str, columns: Columns, backlog: bool) -> list[Rejected]:
        if backlog:
            self.processor.note_backlog()
        messages = messages_of(columns)
        self.pending = self.processor.prepare(side, messages)
        self.absorbed = False
        return list(self.pending.rejected)

    def commit(self) -> list[Rejected]:
        """Store the prepared micro-batch. An error that waiting cannot cure reloads the
        stored state and prepares the batch again before it is raised (the worker retries;
        unlike a plain stream, a join does not set single messages aside yet)."""
        if self.pending is None:
            return []
        if not self.absorbed:
            self.processor.absorb(self.pending)
            self.absorbed = True
        try:
            self.processor.store_or_reload(self.pending)
        except Exception as err:
            if not looks_like_an_outage(err):
                self.processor.reload()
                self.pending = self.processor.prepare(self.pending.side, self.pending.messages)
                self.absorbed = False
            raise
        self.pending = None
        return []

    def store(self) -> None:
        self.processor.store()

    def tick(self) -> list[tuple[str, int]]:
        return [(done.metric, len(done.windows)) for done in self.processor.tick()]


class JoinSide:
    """One topic's view of a label join's processor process, as a worker's agent uses a
    :class:`ProcessorProcess`: the agents of both topics share the process (and must share
    their lock: one micro-batch is prepared and committed at a time). The process ends
    when both sides have closed."""

    def __init__(self, process: ProcessorProcess, side: str, sides_open: list[str]) -> None:
        self.process = process
        self.side = side
        self.topic = process.topic
        self._sides_open = sides_open  # shared by the sides of the process

    def owned(self) -> set[int]:
        return set(self.process.call("owned", self.side))

    def assign(self, partitions: Sequence[int]) -> None:
        self.process.call("assign", self.side, list(partitions))

    def revoke(self, partitions: Sequence[int]) -> None:
        self.process.call("revoke", self.side, list(partitions))

    def prepare(self, messages: Sequence[RawMessage], backlog: bool) -> list[Rejected]:
        columns = ([m.partition for m in messages], [m.offset for m in messages],
                   [m.value for m in messages], [m.key for m in messages])
        rejected: list[Rejected] = self.process.call("prepare", self.side, columns, backlog)
        return rejected

    def commit(self) -> list[Rejected]:
        return self.process.commit()  # the join's commit names no side

    def store(self) -> None:
        self.process.call("store")

    def tick(self) -> list[tuple[str, int]]:
        closed: list[tuple[str, int]] = self.process.call("tick")
        return closed

    def close(self, timeout: float = 2.0) -> None:
        if self.side in self._sides_open:
            self._sides_open.remove(self.side)
        if not self._sides_open:
            self.process.close(timeout)
def worker_name() -> str:
    """HOST/PID of the worker (this process's parent), as the checkpoints it writes are
    signed: which worker holds a partition, for ``monitor stream status``."""
    return f"{socket.gethostname()}/{os.getppid()}"


def looks_like_an_outage(err: BaseException) -> bool:
    """A lost or refused connection, a timeout, a deadlock: what waiting can cure (a
    :class:`StepFailed` says what the child found)."""
    return is_outage(err)


def describe(err: BaseException) -> str:
    """One short line: a driver error's message without the SQL and its parameters."""
    return str(err) if isinstance(err, StepFailed) else describe_error(err)


def _memory_giver() -> Callable[[], None]:
    """Hand the free memory of the allocators back to the system, called after each step:
    a micro-batch's decoded events and frames are freed when it is done, but glibc's
    malloc and Arrow's pool (pandas' strings are Arrow arrays) keep the pages they were
    in, so the process stayed as large as its largest micro-batch made it."""
    import pyarrow

    pool = pyarrow.default_memory_pool()
    trim = malloc_trimmer()

    def give_back() -> None:
        pool.release_unused()
        trim()

    return give_back


def malloc_trimmer() -> Callable[[], None]:
    """glibc's ``malloc_trim(0)``: free pages inside malloc's arenas go back to the system
    (a no-op where there is no glibc). The worker's side calls it after each micro-batch
    too: the messages it pickled to the processor and the micro-batch it held, freed by
    then, otherwise stay in its arenas (one per thread that allocated: Faust's consumer
    thread, the caller thread, the loop's)."""
    trim: Callable[[int], Any] | None = None
    if sys.platform.startswith("linux"):
        try:
            trim = ctypes.CDLL("libc.so.6").malloc_trim
            trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            trim = None

    def trim_free_pages() -> None:
        if trim is not None:
            trim(0)

    return trim_free_pages


PROCESS_NAME = b"monitor-proc"  # the child's name in ps and /proc/PID/comm (Linux)


def _die_with_parent() -> None:
    """Be killed when the worker dies, even by SIGKILL (Linux; elsewhere the pipe's end of
    file stops the loop at its next request). Named :data:`PROCESS_NAME` too: forked,
    the child's command line is the worker's."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig, pr_set_name = 1, 15
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
        libc.prctl(pr_set_name, ctypes.c_char_p(PROCESS_NAME))
    except OSError:
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)
