"""A micro-batch's raw messages, fetched from the worker only when the processor needs them.

The worker's Faust process decodes the head of each micro-batch itself
(:mod:`streaming.pre_decode`) and sends the processor's process the decoded frame and the
bytes of the rest, which the processor decodes (:mod:`streaming.split_decode`). The
processor needs the messages' positions (partition, offset) for every batch: which are
replays, how far each partition got. It needs all their bytes only on three rare paths:
reloading after a checkpoint conflict, storing in halves when the database refuses a row,
and decoding again when a metric wants the unknown-fields mark the decoding lacks. Sending
all the bytes with every batch cost about 18 ms of pickling per batch of 8 MB, and 8 MB
more in the processor's process.

So the processor gets the positions (and the bytes of the rest, for its decoding), and a
:class:`RawOnDemand` asks for all the messages the first time something reads one: over
the same pipe, in the middle of the step, it sends ``(NEED_RAW, batch)`` instead of a
reply, and the worker (which holds the batch's messages until it is stored, see
:class:`streaming.processor_process.ProcessorProcess`) answers with the columns, or
``None`` if it no longer holds that batch. The answer is checked against the positions:
a wrong one fails the step rather than store other messages under these offsets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import overload

from streaming.messages import RawMessage

NEED_RAW = "need raw"  # a child's request, sent instead of a step's reply

# A micro-batch's messages as the pipe carries them: partitions, offsets, values, keys.
Columns = tuple[list[int], list[int], list[bytes | None], list[bytes | None]]


def columns_of(messages: Sequence[RawMessage]) -> Columns:
    """Four lists pickle faster than one list of tuples."""
    return ([m.partition for m in messages], [m.offset for m in messages],
            [m.value for m in messages], [m.key for m in messages])


def messages_of(columns: Columns) -> list[RawMessage]:
    """The messages :func:`columns_of` gave ``columns`` of."""
    return [RawMessage(*fields) for fields in zip(*columns, strict=True)]


class RawUnavailable(RuntimeError):
    """The worker did not answer an ask for a micro-batch's messages with them."""


class RawOnDemand(Sequence[RawMessage]):
    """Micro-batch ``batch``'s messages: the positions at hand, the whole messages fetched
    (once) by ``fetch(batch)`` when one is read."""

    def __init__(self, batch: int, partitions: list[int], offsets: list[int],
                 fetch: Callable[[int], Columns | None]) -> None:
        if len(partitions) != len(offsets):
            raise ValueError("as many partitions as offsets")
        self.batch = batch
        self.partitions = partitions
        self.offsets = offsets
        self._fetch = fetch
        self._messages: list[RawMessage] | None = None

    @property
    def fetched(self) -> bool:
        return self._messages is not None

    def positions(self) -> Iterable[tuple[int, int]]:
        return zip(self.partitions, self.offsets, strict=True)

    def __len__(self) -> int:
        return len(self.offsets)

    @overload
    def __getitem__(self, index: int) -> RawMessage: ...

    @overload
    def __getitem__(self, index: slice) -> list[RawMessage]: ...

    def __getitem__(self, index: int | slice) -> RawMessage | list[RawMessage]:
        return self.messages()[index]

    def __iter__(self) -> Iterator[RawMessage]:
        return iter(self.messages())

    def messages(self) -> list[RawMessage]:
        if self._messages is None:
            columns = self._fetch(self.batch)
            if columns is None:
                raise RawUnavailable(f"the worker no longer holds the messages of micro-batch "
                                     f"{self.batch}")
            if columns[0] != self.partitions or columns[1] != self.offsets:
                raise RawUnavailable(f"the worker answered an ask for the messages of "
                                     f"micro-batch {self.batch} with other messages")
            self._messages = messages_of(columns)
        return self._messages


def positions(messages: Sequence[RawMessage]) -> Iterable[tuple[int, int]]:
    """(partition, offset) of each message, without fetching a :class:`RawOnDemand`."""
    if isinstance(messages, RawOnDemand):
        return messages.positions()
    return ((m.partition, m.offset) for m in messages)
