"""A stream processor's dead letters between two stores: counted per hour and reason, and a
few of each reason kept as samples. Pure; the counts and samples are stored with the
offsets of the micro-batch they came from (see :mod:`streaming.processor`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime

import pandas as pd

from monitor.segments import segment_label
from monitor.storage.records import DeadLetter
from streaming.messages import Rejected

DEAD_LETTER_WINDOW = pd.Timedelta("1h")
# Dead letters kept in the database as samples per micro-batch (all are counted): at most
# SAMPLES_PER_REASON of each reason, so a flood of one kind leaves room for the rare ones.
MAX_SAMPLES_PER_BATCH = 1_000
SAMPLES_PER_REASON = 100


class DeadLetterTally:
    def __init__(self, topic: str, wall_clock: Callable[[], pd.Timestamp]) -> None:
        self.topic = topic
        self.wall_clock = wall_clock
        self.counts: Counter[tuple[datetime, datetime, str]] = Counter()
        self.samples: list[DeadLetter] = []

    def __bool__(self) -> bool:
        return bool(self.counts) or bool(self.samples)

    def clear(self) -> None:
        self.counts.clear()
        self.samples.clear()

    def add(self, rejected: Sequence[Rejected]) -> None:
        if not rejected:
            return
        start = self.wall_clock().floor(DEAD_LETTER_WINDOW)
        end = start + DEAD_LETTER_WINDOW
        window = (start.to_pydatetime(), end.to_pydatetime())
        for letter in rejected:
            self.counts[(*window, segment_label({"reason": letter.reason}))] += 1
            self.counts[(*window, "*")] += 1
        kept = Counter(sample.reason.split(":", 1)[0] for sample in self.samples)
        # The n-th letter of a message (a message is never split across micro-batches and
        # decodes the same way again): a replay after a crash stores its samples once.
        nth: Counter[tuple[int, int]] = Counter()
        for letter in rejected:
            index = nth[(letter.partition, letter.offset)]
            nth[(letter.partition, letter.offset)] += 1
            if len(self.samples) >= MAX_SAMPLES_PER_BATCH:
                continue
            if kept[letter.reason] < SAMPLES_PER_REASON:
                kept[letter.reason] += 1
                self.samples.append(DeadLetter(
                    f"stream:{self.topic}", f"{letter.reason}: {letter.detail}",
                    letter.payload,
                    key=f"{self.topic}/{letter.partition}/{letter.offset}/{index}"))
