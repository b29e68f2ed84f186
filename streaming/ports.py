"""The ports of the stream processor: where the partitions' states are kept, and where the
windows go when they close.

:class:`~streaming.processor.StreamProcessor` talks only to these ``Protocol``s;
:class:`streaming.sql_store.SqlStreamStore` implements both over the results database
(see :mod:`streaming.state_store` for how, and why the database). Each method is one
transaction, which is what makes the stage exactly once: a partition's partials are
stored with its checkpoint, and a window's values with the removal of its partials and
its alert evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import NamedTuple, Protocol

from monitor.alerts.ports import EvaluationStore
from monitor.partials import Partial, PartialKey
from monitor.spec import MetricSpec
from monitor.storage.records import DeadLetter, WindowResult
from streaming.partition import Checkpoint, PartitionState

# Called in the transaction that stores a metric's final windows, with the alert store of
# that transaction (e.g. to evaluate the metric's alert rules on them).
AfterFinal = Callable[[EvaluationStore, MetricSpec, int, list[WindowResult]], None]


class CheckpointConflict(RuntimeError):
    """Another worker stored this partition since we read it."""


class Cutoff(NamedTuple):
    """A metric version whose windows ending by ``until`` are to be closed."""

    metric: MetricSpec
    version: int
    until: datetime


class StoredPartition(NamedTuple):
    """What a partition's next owner resumes from: ``corrections`` says which partials
    are corrections (see :mod:`streaming.partition`)."""

    checkpoint: Checkpoint
    partials: dict[PartialKey, Partial]
    corrections: frozenset[PartialKey] = frozenset()


class Marks(NamedTuple):
    """What decides which windows may close: every stored partition's checkpoint, and per
    (metric, version) the earliest end of a window that still has partials."""

    checkpoints: dict[int, Checkpoint]
    earliest_open_ends: dict[tuple[str, int], datetime]


class PartitionStore(Protocol):
    def load_partitions(self, topic: str, partitions: Iterable[int],
                        targets: Mapping[str, tuple[MetricSpec, int]]
                        ) -> dict[int, StoredPartition]:
        """The stored checkpoint and partials (of the metric versions in ``targets``) of
        each partition, read in one transaction."""
        ...

    def store_partitions(self, states: Sequence[PartitionState], versions: Mapping[str, int],
                         *, count_metric: str, stage: str,
                         counts: Mapping[tuple[datetime, datetime, str], int],
                         samples: Sequence[DeadLetter]) -> None:
        """In one transaction: each state's checkpoint and dirty partials, ``counts`` per
        (window start, window end, segment) added to the values of ``count_metric``
        (field ``count``), and ``samples`` stored as dead letters.

        :class:`CheckpointConflict`, with nothing stored, if another worker stored one of
        the partitions since its state was loaded or last stored, or closed a window the
        state holds stored partials of: the caller reloads and applies its batch again.
        """
        ...


class WindowSink(Protocol):
    def marks(self, topic: str) -> Marks:
        """A look that locks nothing (most looks close nothing)."""
        ...

    def close_windows(self, topic: str, due: Callable[[Marks], Mapping[str, Cutoff]],
                      stage: str, after_final: AfterFinal | None = None
                      ) -> dict[str, list[WindowResult]]:
        """Close windows in one transaction: the marks read and locked (no partition is
        stored meanwhile), ``due`` asked which metric versions close which windows, their
        windows ending by the cutoff merged over every partition's partials (and the
        state stored before, for a correction of a closed window) and stored as ``stage``
        values, ``after_final`` called for each metric, then the same for the partials
        that are corrections (see :mod:`streaming.partition`), merged into those values,
        and all of those partials removed. Returns the windows stored per metric (their
        last values); metrics with none are left out."""
        ...


class StreamStore(PartitionStore, WindowSink, Protocol):
    """Both ports, as a processor is given them (the SQL store implements both)."""
