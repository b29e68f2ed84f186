"""The processor's store ports, timed and counted for the worker's ``/metrics``.

Counted where the database confirms it: events absorbed and dead letters when their
transaction commits (a checkpoint conflict or an outage counts nothing, and the retry
that stores them counts them once), windows when their closing transaction commits. So
``/metrics`` agrees with what ``monitor stream status`` reads back from the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from monitor.spec import MetricSpec
from monitor.storage.records import DeadLetter, WindowResult
from streaming.figures import Tally
from streaming.partition import PartitionState
from streaming.ports import AfterFinal, Cutoff, Marks, StoredPartition, StreamStore

T = TypeVar("T")
REASON_SEGMENT = "reason="  # the dead-letter count's segment of one reason (the other: "*")


class ObservedStore:
    """A :class:`~streaming.ports.StreamStore` that reports to a :class:`Tally`."""

    def __init__(self, store: StreamStore, tally: Tally,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.store = store
        self.tally = tally
        self.clock = clock

    def __repr__(self) -> str:
        return f"ObservedStore({self.store!r})"

    def load_partitions(self, topic: str, partitions: Iterable[int],
                        targets: Mapping[str, tuple[MetricSpec, int]]
                        ) -> dict[int, StoredPartition]:
        return self._timed("load", lambda: self.store.load_partitions(topic, partitions,
                                                                      targets))

    def store_partitions(self, states: Sequence[PartitionState], versions: Mapping[str, int],
                         *, count_metric: str, stage: str,
                         counts: Mapping[tuple[datetime, datetime, str], int],
                         samples: Sequence[DeadLetter]) -> None:
        # What each state absorbed since it was loaded or last stored (its checkpoint is
        # updated by the caller after this returns).
        absorbed = [(s.partition, s.events - s.checkpoint.events) for s in states]
        self._timed("store", lambda: self.store.store_partitions(
            states, versions, count_metric=count_metric, stage=stage, counts=counts,
            samples=samples))
        for partition, events in absorbed:
            self.tally.absorbed(partition, events)
        for (_, _, segment), count in counts.items():
            if segment.startswith(REASON_SEGMENT):
                self.tally.dead_letter(segment[len(REASON_SEGMENT):], count)

    def marks(self, topic: str) -> Marks:
        return self._timed("marks", lambda: self.store.marks(topic))

    def close_windows(self, topic: str, due: Callable[[Marks], Mapping[str, Cutoff]],
                      stage: str, after_final: AfterFinal | None = None
                      ) -> dict[str, list[WindowResult]]:
        closed = self._timed("close", lambda: self.store.close_windows(topic, due, stage,
                                                                       after_final))
        for metric, results in closed.items():  # a result per segment of each window
            self.tally.windows_closed(metric, len({r.window_start for r in results}))
        return closed

    def _timed(self, operation: str, call: Callable[[], T]) -> T:
        """``call``'s result; its duration reported whether it succeeded or failed (a slow
        failure is what an operator looks for)."""
        start = self.clock()
        try:
            return call()
        finally:
            self.tally.store_took(operation, self.clock() - start)


if TYPE_CHECKING:  # mypy checks that ObservedStore implements the ports
    def _implements_ports(store: ObservedStore) -> StreamStore:
        return store
