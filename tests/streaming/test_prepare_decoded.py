"""A processor given its micro-batches decoded already (by the worker's Faust process, see
streaming.pre_decode) decides and stores exactly what it does decoding them itself:
replays are dropped from the decoding, and a decoding that lacks the unknown-fields mark
a metric now wants is done again from the messages."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from examples.music_home import training_profile
from examples.music_home_events import DEFAULT_START, generate_events, generate_reference
from metrics.drift import ReferenceProfile
from metrics.expectations import UNKNOWN_FIELDS
from monitor.storage.store import SqlStore
from monitor.targets import Target
from streaming.messages import DecodedBatch, RawMessage, decode_messages
from streaming.processor import StreamProcessor
from streaming.sql_store import SqlStreamStore
from tests.streaming.clock import Clock
from tests.streaming.own_store import store, targets
from tests.streaming.test_processor import (
    PARTITIONS,
    STREAM,
    TOPIC,
    assert_parity,
    interleave,
    messages_of,
    processor,
)

__all__ = ["store", "targets"]  # fixtures of tests.streaming.own_store, used here


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    return generate_events(start=DEFAULT_START, days=1, seed=7, events_per_hour=300)


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    return training_profile(generate_reference(start=DEFAULT_START, seed=7,
                                               events_per_hour=300))


def decoded(stage: StreamProcessor, clock: Clock, batch: list[RawMessage], mark: bool
            ) -> DecodedBatch:
    """The whole batch decoded as the Faust process does (replays included)."""
    max_time = clock.wall + pd.Timedelta(seconds=stage.settings.max_future_s)
    return decode_messages(batch, STREAM.schema, max_time=max_time, mark_unknown=mark)


def test_decoded_micro_batches_with_replays_store_research_values(
        store: SqlStore, targets: list[Target], events: pd.DataFrame, profile: ReferenceProfile
) -> None:
    """Every other micro-batch carries again some messages already stored (as Kafka
    redelivers after a rebalance): each prepared twice, from its decoding and from its
    messages, and both decisions compared, then the decoded one stored."""
    clock = Clock()
    stage = processor(store, targets, clock)
    stage.assign(range(PARTITIONS))
    rng = random.Random(3)
    done: list[RawMessage] = []
    replays = 0
    for batch in interleave(messages_of(events, seed=4), seed=5, most=6):
        if done and rng.random() < 0.5:
            again = rng.sample(done, min(len(done), rng.randint(1, 8)))
            batch = sorted(again, key=lambda m: (m.partition, m.offset)) + batch
            replays += len(again)
        for mark in (False, True):  # a mark the processor does not want is dropped
            from_messages = stage.prepare(batch)
            from_decoding = stage.prepare(batch, decoded(stage, clock, batch, mark), mark)
            assert from_decoding.skipped == from_messages.skipped
            assert from_decoding.through == from_messages.through
            assert from_decoding.rejected == from_messages.rejected
            assert from_decoding.events.keys() == from_messages.events.keys()
            for partition, frame in from_messages.events.items():
                pd.testing.assert_frame_equal(from_decoding.events[partition], frame)
                for key, late in from_messages.late[partition].items():
                    assert (from_decoding.late[partition][key] == late).all()
        stage.absorb(from_decoding)
        stage.store_or_reload(from_decoding)
        done += batch
        clock.later(0.2)
        stage.tick()
    assert replays > 50
    clock.later(6)
    stage.tick()
    assert_parity(store, targets, events, profile)


def test_a_decoding_without_the_mark_a_metric_wants_is_done_again(
        store: SqlStore, targets: list[Target], events: pd.DataFrame) -> None:
    import metrics
    from monitor import Monitor

    batch = messages_of(events.head(20).assign(debug="trace"), max_batch=5)
    judging = Monitor("unknown-fields-decoded")
    judging.stream("home", schema=STREAM.schema.to_dict(), time=STREAM.time, topic=TOPIC)
    judging.expectations("home", [metrics.expect_no_unknown_fields()], prefix="fields")
    spec = judging.metrics["fields.no_unknown_fields"]
    version = store.register_metric(spec).version
    clock = Clock()
    stage = StreamProcessor(SqlStreamStore(store.database), spec.stream, f"{TOPIC}-d",
                            PARTITIONS, [Target(spec, version)], wall_clock=lambda: clock.wall)
    assert stage.wants_unknown_mark
    unmarked = decoded(stage, clock, batch, mark=False)
    assert UNKNOWN_FIELDS not in unmarked.events.columns
    prepared = stage.prepare(batch, unmarked, marked=False)
    assert sum(len(e) for e in prepared.events.values()) == 20
    assert all(e[UNKNOWN_FIELDS].all() for e in prepared.events.values())
