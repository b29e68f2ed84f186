"""Events through a streaming processor as a Kafka topic would bring them: keyed by user
to partitions, packed 1 to 30 to a message, and taken in micro-batches that interleave
the partitions at random; the clock moves a little after each micro-batch and past the
idle timeout at the end, so every window closes. The parity tests' streaming stage."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pandas as pd

from monitor.spec import StreamSpec
from monitor.storage.database import Database
from monitor.targets import Target
from streaming.codec import encode_events, event_dicts
from streaming.messages import RawMessage
from streaming.processor import StreamProcessor, StreamSettings
from streaming.sql_store import SqlStreamStore
from tests.streaming.clock import Clock

IDLE_TIMEOUT_S = 5


def feed_interleaved(database: Database, stream: StreamSpec, topic: str, partitions: int,
                     targets: Sequence[Target], events: pd.DataFrame, seed: int) -> None:
    """Run ``events`` (with a ``user_id`` column) through a processor of ``targets`` that
    stores to ``database``; ``seed`` decides the packing and the interleaving."""
    clock = Clock()
    stage = StreamProcessor(SqlStreamStore(database), stream, topic, partitions,
                            list(targets), StreamSettings(idle_timeout_s=IDLE_TIMEOUT_S),
                            clock=lambda: clock.monotonic, wall_clock=lambda: clock.wall)
    stage.assign(range(partitions))
    rng = random.Random(seed)
    queues: dict[int, list[RawMessage]] = {p: [] for p in range(partitions)}
    pending: dict[int, list[dict[str, object]]] = {p: [] for p in range(partitions)}
    for event in event_dicts(events):  # keyed by user, in time order per partition
        pending[int(str(event["user_id"])) % partitions].append(event)
    for partition, items in pending.items():
        while items:
            size = rng.randint(1, 30)
            queues[partition].append(RawMessage(partition, len(queues[partition]),
                                                encode_events(items[:size])))
            items = items[size:]
    while any(queues.values()):  # micro-batches with the partitions interleaved
        batch = []
        for partition in rng.sample(range(partitions), partitions):
            take = rng.randint(0, 12)
            batch += queues[partition][:take]
            queues[partition] = queues[partition][take:]
        stage.handle(batch)
        clock.later(0.2)
        stage.tick()
    clock.later(IDLE_TIMEOUT_S + 1)  # every partition idle: the watermarks move on
    stage.tick()
