"""What a worker's processor did, as the worker's ``/metrics`` reports it.

The processor runs in a process of its own (:mod:`streaming.processor_process`), so the
worker's Prometheus registry cannot see its work directly. The child counts here and
every reply it sends over the existing pipe carries :meth:`Tally.drain`: what happened
since the previous reply, plus where its owned partitions stand now.

Why the pipe and not prometheus_client's multiprocess mode: the child answers every step
anyway, so a few hundred bytes more per reply cost nothing and need no shared directory
(``PROMETHEUS_MULTIPROC_DIR``, set before either process imports the library, cleaned of
dead processes' files at each start), and the per-partition gauges stay in the worker,
which computes lag against the wall clock when it is scraped, so a stuck processor shows
a lag that grows instead of the last value it wrote. Pure: no Prometheus here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PartitionMarks:
    """A partition as stored (durable), not as held in memory."""

    offset: int  # the highest stored offset, -1 before any
    mark_ns: int | None  # its watermark: how far it lets windows close (None before any)


@dataclass
class Figures:
    """Since the previous reply: counts to add; and the owned partitions now."""

    absorbed: Counter[int] = field(default_factory=Counter)  # events stored, per partition
    dead_letters: Counter[str] = field(default_factory=Counter)  # per reason
    windows_closed: Counter[str] = field(default_factory=Counter)  # per metric
    store_seconds: list[tuple[str, float]] = field(default_factory=list)  # (operation, s)
    partitions: dict[int, PartitionMarks] | None = None  # None: not known (yet)
    # the metric versions in streaming it cannot compute, and why (None: not known)
    problems: list[str] | None = None

    @property
    def empty(self) -> bool:
        return not (self.absorbed or self.dead_letters or self.windows_closed
                    or self.store_seconds) and self.partitions is None and self.problems is None


class Tally:
    """The child's running figures; :meth:`drain` hands them over and starts again."""

    def __init__(self) -> None:
        self._figures = Figures()

    def absorbed(self, partition: int, events: int) -> None:
        if events:
            self._figures.absorbed[partition] += events

    def dead_letter(self, reason: str, count: int) -> None:
        if count:
            self._figures.dead_letters[reason] += count

    def windows_closed(self, metric: str, windows: int) -> None:
        if windows:
            self._figures.windows_closed[metric] += windows

    def store_took(self, operation: str, seconds: float) -> None:
        self._figures.store_seconds.append((operation, seconds))

    def drain(self, partitions: dict[int, PartitionMarks] | None,
              problems: list[str] | None = None) -> Figures:
        figures, self._figures = self._figures, Figures()
        figures.partitions = partitions
        figures.problems = problems
        return figures
