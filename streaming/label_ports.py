"""The port of the streaming label join: where predictions and labels wait for each other.

:class:`~streaming.label_processor.LabelJoinProcessor` talks only to :class:`HeldStore`;
:class:`streaming.label_store.SqlHeldStore` implements it over the results database.
Each method is one transaction, which is what keeps the join exactly once: the rows a
micro-batch holds are stored with the offsets (checkpoints) of the partitions they came
from, and a window closed or revised is valued from the rows held in that same
transaction.

Valuing is pure and stays on the processor's side: the store reads a window's held rows
(:class:`HeldWindow`) inside its transaction and calls back a :data:`Valuer`, which joins
and computes; the store writes what it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple, Protocol

from monitor.spec import MetricSpec
from monitor.storage.records import DeadLetter, WindowResult
from streaming.partition import Checkpoint, PartitionState
from streaming.ports import AfterFinal


class HeldPrediction(NamedTuple):
    """A prediction as held: where it came from (partition, offset, its place among the
    message's events), its join id as text, its exact time and window, and its fields."""

    partition: int
    offset: int
    event: int
    prediction_id: str | None
    time_ns: int
    window_start_ns: int
    window_end_ns: int
    payload: str  # the validated fields but the time, as canonical JSON


class HeldLabel(NamedTuple):
    partition: int
    offset: int
    event: int
    label_id: str
    time_ns: int
    payload: str


@dataclass
class MetricHeld:
    """What a micro-batch holds for one metric version."""

    metric: MetricSpec
    version: int
    predictions: list[HeldPrediction] = field(default_factory=list)
    labels: list[HeldLabel] = field(default_factory=list)


class HeldWindow(NamedTuple):
    """A window's held predictions and the held labels whose id one of them has, as
    (time in ns, payload) pairs: all a :data:`Valuer` needs to value the window."""

    window_start_ns: int
    predictions: list[tuple[int, str]]
    labels: list[tuple[int, str]]


# Per counting metric, dead letters per (window start, window end, segment).
DeadLetterCounts = Mapping[str, Mapping[tuple[datetime, datetime, str], int]]

class Valued(NamedTuple):
    """What valuing a window gives: its results (every segment), and the dead letters of
    the held predictions a per-event function failed on, counted in ``count_metric`` over
    the hour ``counted_in``. A window is valued again whenever it is revised, and gives
    the same letters under the same keys: the store keeps each once and counts it then."""

    results: list[WindowResult]
    failed: Sequence[DeadLetter] = ()
    count_metric: str = ""
    counted_in: tuple[datetime, datetime] | None = None


# The window's stored results (and failed events), from its held rows.
Valuer = Callable[[MetricSpec, HeldWindow], Valued]


class Forgotten(NamedTuple):
    """What a store did not hold for a metric version because nothing can count it any
    more: predictions of windows already forgotten (ending by ``purged_through``), and
    labels that could have joined a forgotten prediction (see
    :mod:`streaming.label_store`)."""

    metric: MetricSpec
    version: int
    purged_through: datetime
    predictions: list[HeldPrediction]
    labels: list[HeldLabel]


class Refused(NamedTuple):
    """Dead letters to store: counts per counting metric, and samples."""

    counts: DeadLetterCounts
    samples: list[DeadLetter]


# The dead letters of the rows a store found forgotten (a store finds them under its
# locks; the processor says what the letters are).
Refuser = Callable[[Sequence[Forgotten]], Refused]


class Progress(NamedTuple):
    """How far a metric version's windows are closed and purged (None: none yet)."""

    closed_through: datetime | None
    purged_through: datetime | None


class JoinMarks(NamedTuple):
    """What decides which windows close and which are purged: the stored checkpoints of
    each source (the predictions' and the labels'), per (metric, version) its progress,
    and the earliest end of a held window it has not closed yet."""

    checkpoints: dict[str, dict[int, Checkpoint]]
    progress: dict[tuple[str, int], Progress]
    earliest_open_ends: dict[tuple[str, int], datetime]


class JoinCutoff(NamedTuple):
    """A metric version's windows to close (ending by ``close_until``) and to forget
    (ending by ``purge_until``, with the labels stamped before ``labels_before_ns``)."""

    metric: MetricSpec
    version: int
    close_until: datetime
    purge_until: datetime | None
    labels_before_ns: int | None


class HeldStore(Protocol):
    def load_checkpoints(self, source: str, partitions: Iterable[int]) -> dict[int, Checkpoint]:
        """The stored checkpoint of each partition of ``source``, in one transaction."""
        ...

    def store_held(self, states: Sequence[PartitionState], held: Sequence[MetricHeld],
                   value: Valuer, *, stage: str, counts: DeadLetterCounts,
                   samples: Sequence[DeadLetter], refuse: Refuser,
                   after_final: AfterFinal | None = None) -> dict[str, int]:
        """In one transaction: each state's checkpoint (optimistic check, as
        :func:`streaming.state_store.store_partitions`), the rows ``held`` but those that
        can no longer be counted (read after the checkpoints, which a close locks: a
        prediction of a forgotten window, a label that could have joined a forgotten
        prediction), which are stored as the dead letters ``refuse`` makes of them; the
        they touch that are closed and not purged valued again with ``value`` and their
        results upserted as ``stage`` values, ``counts`` added to the values of their
        counting metrics (field ``count``) and ``samples`` stored as dead letters;
        ``after_final`` called with each metric's revised windows (a revision can make a
        window mature for its alert rules, see :mod:`monitor.label_maturity`).
        Returns per metric the number of windows revised.

        :class:`~streaming.ports.CheckpointConflict`, with nothing stored, if another
        worker stored one of the partitions since its state was loaded or last stored.
        """
        ...

    def marks(self, sources: Sequence[str], targets: Mapping[str, tuple[MetricSpec, int]]
              ) -> JoinMarks:
        """A look that locks nothing (most looks close nothing)."""
        ...

    def close(self, sources: Sequence[str], targets: Mapping[str, tuple[MetricSpec, int]],
              due: Callable[[JoinMarks], Mapping[str, JoinCutoff]], value: Valuer,
              stage: str, after_final: AfterFinal | None = None
              ) -> dict[str, list[WindowResult]]:
        """In one transaction, with every checkpoint of ``sources`` locked: ``due`` asked
        which windows close and which are purged; the held windows ending by each cutoff
        and not closed yet valued and stored as ``stage`` values; the held rows of the
        purged windows deleted; the progress stored; ``after_final`` called per metric
        with the windows closed and those purged (their last values: no label can change
        them any more, so alert rules judge them now if they have not yet). The purge
        keeps the id and time of the predictions it forgets for as long as a label that
        could have joined one of them can still arrive and be held. Returns the windows
        closed per metric."""
        ...
