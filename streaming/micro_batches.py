"""A stream's messages gathered into micro-batches, bounded in messages, bytes and time.

The agent adds each message as Faust hands it over; a micro-batch is due when it holds
``max_messages`` messages, or ``max_bytes`` bytes of values, or when its first message has
waited ``within_s`` seconds and no more messages wait in Faust's buffer. The byte bound
is why this is not Faust's ``take_events``, which counts messages only: 4,000 messages of
500 events are 280 MB, and the Faust process held a whole micro-batch of them (385 MB
against the bare agent's 254 MB in bench/stream.py). The time bound counts from the
first message, not from the last micro-batch, so once the worker has caught up no
message waits more than ``within_s`` (plus one timer tick when no other message follows
it) before it goes to the processor.

Pure bookkeeping, no I/O: the agent decides when to store what :meth:`Gathering.take`
returns (:class:`streaming.worker._StreamAgent`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Generic, TypeVar

M = TypeVar("M")


@dataclass
class Gathering(Generic[M]):
    """The micro-batch being gathered: items (Faust events) with their value sizes."""

    max_messages: int
    max_bytes: int
    within_s: float
    items: list[M] = field(default_factory=list)
    partitions: list[int] = field(default_factory=list)  # of each item
    lengths: list[int] = field(default_factory=list)  # of each item's value
    size: int = 0  # bytes of values gathered
    first_at: float = 0.0  # clock time the first item was added

    def add(self, item: M, partition: int, length: int, now: float) -> None:
        if not self.items:
            self.first_at = now
        self.items.append(item)
        self.partitions.append(partition)
        self.lengths.append(length)
        self.size += length

    @property
    def full(self) -> bool:
        """Full by count or bytes: the consumer is behind (a backlog)."""
        return len(self.items) >= self.max_messages or self.size >= self.max_bytes

    def due(self, now: float, waiting: bool = False) -> bool:
        """Full, or the first item waited ``within_s`` and no more are ``waiting`` in
        Faust's buffer. While more wait, the consumer is behind: the micro-batch grows
        to its bounds (fewer, larger micro-batches catch up faster, and a full one tells
        the processor it is behind) — the wait bounds latency once it has caught up."""
        return bool(self.items) and (
            self.full or (not waiting and now - self.first_at >= self.within_s))

    def take(self) -> list[M]:
        """The items gathered, in the order they came; the gathering starts afresh."""
        taken = self.items
        self.items, self.partitions, self.lengths, self.size = [], [], [], 0
        return taken

    def drop(self, partitions: Collection[int]) -> list[M]:
        """Forget the items of ``partitions`` (revoked: their next owner reads them again
        from the stored offsets); the items dropped, in order."""
        rows = list(zip(self.items, self.partitions, self.lengths, strict=True))
        dropped = [item for item, partition, _ in rows if partition in partitions]
        kept = [row for row in rows if row[1] not in partitions]
        self.items = [item for item, _, _ in kept]
        self.partitions = [partition for _, partition, _ in kept]
        self.lengths = [length for _, _, length in kept]
        self.size = sum(self.lengths)
        return dropped
