"""Which engine computes a batch run's slices: this process (``local``) or Spark.

Both give the runner a source per stream; the runner stores what either computes the
same way. Spark is started only when a run first needs a source, so a run with nothing to
do (or the scheduler's process until its first fire) starts no JVM.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from monitor.batch.slice_states import StateSource
from monitor.batch.sources import EventSource, source_for
from monitor.batch.spark_session import DEFAULT_MASTER
from monitor.spec import StreamSpec

ENGINES = ("local", "spark")


@dataclass
class BatchEngine:
    """The sources of a run for ``engine`` (``local`` or ``spark`` on ``master``)."""

    engine: str = "local"
    master: str = DEFAULT_MASTER
    _spark: Any = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"unknown batch engine {self.engine!r}: use one of "
                             f"{', '.join(ENGINES)}")

    def sources(self, database: sa.Engine | None
                ) -> Callable[[StreamSpec], EventSource | StateSource]:
        """A stream's source: its table, query or files in this process, or its files on
        Spark."""
        if self.engine == "local":
            return lambda stream: source_for(stream, database)

        def on_spark(stream: StreamSpec) -> StateSource:
            from monitor.batch.spark_engine import SparkFileSource

            return SparkFileSource(self.session(), stream)
        return on_spark

    def session(self) -> Any:
        with self._lock:
            if self._spark is None:
                from monitor.batch.spark_session import spark_session

                self._spark = spark_session(self.master)
            return self._spark

    def stop(self) -> None:
        """Stop Spark, if this engine started it."""
        with self._lock:
            if self._spark is not None:
                self._spark.stop()
                self._spark = None


__all__ = ["ENGINES", "BatchEngine"]
