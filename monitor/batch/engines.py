"""Which engine computes a batch run's slices of each stream: this process (``local``)
or Spark, on which master.

A stream may name its own (``mon.stream(..., engine="spark", master=...)``); the command
line's ``--engine`` and ``--master`` override it for every stream of the run; with
neither, a stream is computed in this process. Both engines give the runner a source per
stream, and the runner stores what either computes the same way. Spark is started only
when a run first needs it, so a run with nothing to do (or the scheduler's process until
its first fire) starts no JVM. A process holds one Spark session: streams that name
different masters are run by different processes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from monitor.batch.slice_states import StateSource
from monitor.batch.sources import EventSource, SourceError, source_for
from monitor.batch.spark_session import DEFAULT_MASTER
from monitor.spec import BATCH_ENGINES, StreamSpec

ENGINES = BATCH_ENGINES


class EngineConflictError(SourceError):
    """Streams of one run ask for two Spark masters; the message says what to do."""


@dataclass
class BatchEngine:
    """The sources of a run: ``engine`` and ``master`` (None: each stream's own, else
    ``local`` and ``local[*]``)."""

    engine: str | None = None
    master: str | None = None
    _spark: Any = field(default=None, init=False, repr=False)
    _spark_master: str | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.engine is not None and self.engine not in ENGINES:
            raise ValueError(f"unknown batch engine {self.engine!r}: use one of "
                             f"{', '.join(ENGINES)}")

    def choice(self, stream: StreamSpec) -> tuple[str, str]:
        """The engine and master that compute ``stream``."""
        return (self.engine or stream.engine or "local",
                self.master or stream.master or DEFAULT_MASTER)

    def sources(self, database: sa.Engine | None
                ) -> Callable[[StreamSpec], EventSource | StateSource]:
        """A stream's source: its table, query or files in this process, or on Spark its
        Postgres table or query (else its files)."""

        def source(stream: StreamSpec) -> EventSource | StateSource:
            engine, master = self.choice(stream)
            if engine == "local":
                return source_for(stream, database)
            spark = self.session(master, stream)
            on_postgres = database is not None and database.dialect.name == "postgresql"
            if (stream.table or stream.query) and database is not None and (
                    on_postgres or not stream.files):
                from monitor.batch.spark_tables import SparkTableSource

                return SparkTableSource(spark, stream, database)
            from monitor.batch.spark_engine import SparkFileSource

            return SparkFileSource(spark, stream)
        return source

    def session(self, master: str = DEFAULT_MASTER, stream: StreamSpec | None = None) -> Any:
        with self._lock:
            if self._spark is None:
                from monitor.batch.spark_session import spark_session

                self._spark = spark_session(master)
                self._spark_master = master
            elif master != self._spark_master:
                who = f"stream {stream.name!r}" if stream is not None else "this run"
                raise EngineConflictError(
                    f"{who} is to be computed on Spark master {master!r}, but this process "
                    f"already runs Spark on {self._spark_master!r} (one session per "
                    "process): run its metrics apart (--metric), or name one master for "
                    "the run (--master)")
            return self._spark

    def stop(self) -> None:
        """Stop Spark, if this engine started it."""
        with self._lock:
            if self._spark is not None:
                self._spark.stop()
                self._spark = None
                self._spark_master = None


__all__ = ["ENGINES", "BatchEngine", "EngineConflictError"]
