"""A micro-batch that comes decoded reaches the processor's process without its messages'
bytes (streaming.raw_on_demand): the child asks the worker for them on each of the three
paths that need them, through a real processor process and Postgres. Reloading after a
checkpoint conflict, storing in halves around a row the database refuses, and decoding
again for the unknown-fields mark each store exactly what research computes; a worker
that does not answer with the batch's messages fails the step and stores nothing."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from monitor.research import evaluate
from monitor.stage_switch import EPOCH
from monitor.storage.store import SqlStore
from monitor.targets import batch_targets
from streaming.codec import encode_events, event_dicts
from streaming.messages import RawMessage, decode_part
from streaming.processor import UNSTORABLE, StreamProcessor, StreamSettings
from streaming.processor_process import ProcessorProcess, ProcessorSpec, StepFailed
from streaming.raw_on_demand import Columns, RawOnDemand, RawUnavailable, columns_of
from streaming.split_decode import HEAD_SHARE, HeadDecoded, head_length
from streaming.sql_store import SqlStreamStore
from tests.streaming.raw_ask_app import mon
from tests.streaming.test_unstorable import drop_refusals, refuse

STREAM = mon.streams["home"]
SETTINGS = StreamSettings(idle_timeout_s=0.2)
PER_MESSAGE = 10
POISON = "Atlantis"


class Asked(ProcessorProcess):
    """The processor's process, counting the child's asks; ``answer`` may be set to
    answer them wrongly."""

    def __init__(self, spec: ProcessorSpec) -> None:
        super().__init__(spec)
        self.asks: list[int] = []
        self.answer = super().answer_raw

    def answer_raw(self, batch: int) -> Columns | None:
        self.asks.append(batch)
        return self.answer(batch)


@pytest.fixture
def promoted(store: SqlStore) -> SqlStore:
    for spec in mon.metrics.values():
        version = store.register_metric(spec).version
        for stage in ("batch", "streaming"):
            store.record_stage_change(spec.name, version, stage, by="test",
                                      reason="raw on demand test", effective_from=EPOCH)
    return store


@pytest.fixture
def process(promoted: SqlStore, postgres_url: str) -> Iterator[Asked]:
    spec = ProcessorSpec(postgres_url, "tests.streaming.raw_ask_app:mon", STREAM, 1,
                         tuple(mon.metrics), SETTINGS, None, logging.WARNING)
    process = Asked(spec)
    process.assign([0])
    yield process
    process.close()
    drop_refusals(promoted.database)


def events_of(count: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-01-01", tz="UTC")
    return pd.DataFrame({
        "event_time": start + pd.to_timedelta(np.sort(rng.integers(0, 3 * 3600, count)),
                                              unit="s"),
        "latency_ms": rng.gamma(2.0, 50.0, count).round(3),
        "country": rng.choice(["DE", "FR", "US"], count),
        "user_id": rng.integers(1, 500, count),
    })


def messages_of(events: pd.DataFrame) -> list[RawMessage]:
    rows = list(event_dicts(events))
    return [RawMessage(0, offset, encode_events(rows[start:start + PER_MESSAGE]))
            for offset, start in enumerate(range(0, len(rows), PER_MESSAGE))]


def head_of(messages: list[RawMessage], mark: bool) -> HeadDecoded:
    """As the worker's Faust process decodes a micro-batch's head (streaming.pre_decode);
    the processor decodes the rest."""
    max_time = pd.Timestamp.now(tz="UTC") + pd.Timedelta(seconds=SETTINGS.max_future_s)
    through = head_length(messages, HEAD_SHARE)
    return HeadDecoded(decode_part(messages[:through], STREAM.schema, max_time=max_time,
                                   mark_unknown=mark), through, max_time, mark)


def close_every_window(process: ProcessorProcess) -> None:
    """The partition idle past the timeout: its watermark moves to the wall clock."""
    time.sleep(SETTINGS.idle_timeout_s * 2)
    process.tick()


def stored(store: SqlStore, metric: str) -> pd.DataFrame:
    values = store.read_values(metric=metric, stage="streaming", limit=None)
    return values.drop(columns="stage").reset_index(drop=True)


def assert_latency_as_research(store: SqlStore, events: pd.DataFrame) -> None:
    metric = mon.metrics["latency"]
    expected = evaluate(metric, events).drop(columns="stage")
    assert len(expected) > 3
    pd.testing.assert_frame_equal(stored(store, "latency"), expected, check_exact=True,
                                  check_dtype=False)


def checkpoint(store: SqlStore) -> tuple[int, int]:
    with store.database.connect() as conn:
        row = conn.exec_driver_sql("SELECT \"offset\", events FROM stream_checkpoints").one()
    return int(row[0]), int(row[1])


def another_worker_stores(store: SqlStore, messages: list[RawMessage]) -> None:
    """A worker that owned the partition meanwhile stores ``messages`` (the process's
    loaded state is stale now: its store meets a checkpoint conflict)."""
    other = StreamProcessor(SqlStreamStore(store.database), STREAM, STREAM.topic or "", 1,
                            batch_targets(mon, store, stages=("streaming",)), SETTINGS)
    other.assign([0])
    other.handle(messages)


def test_a_conflict_reloads_and_prepares_again_from_the_messages_it_asks_for(
        promoted: SqlStore, process: Asked) -> None:
    events = events_of(400)
    messages = messages_of(events)
    another_worker_stores(promoted, messages[:15])
    process.prepare_decoded(messages, head_of(messages, mark=True), False)
    assert process.asks == []  # the common path needs only the positions
    assert process.commit() == []
    assert len(process.asks) == 1
    assert checkpoint(promoted) == (messages[-1].offset, len(events))  # none twice
    close_every_window(process)
    assert_latency_as_research(promoted, events)


def test_a_refused_row_is_stored_around_in_halves_of_the_messages_it_asks_for(
        promoted: SqlStore, process: Asked) -> None:
    events = events_of(400, seed=2)
    poisoned = [35, 36, 212]  # in messages 3 and 21
    events.loc[poisoned, "country"] = POISON
    refuse(promoted.database, "stream_partials", f"NEW.segment = 'country={POISON}'")
    messages = messages_of(events)
    process.prepare_decoded(messages, head_of(messages, mark=True), False)
    refused = process.commit()
    assert len(process.asks) == 1
    assert sorted(r.offset for r in refused) == [3, 21]
    assert {r.reason for r in refused} == {UNSTORABLE}
    assert all(r.payload == messages[r.offset].value for r in refused)
    close_every_window(process)
    kept = events.drop(index=[i for r in refused for i in range(r.offset * PER_MESSAGE,
                                                               (r.offset + 1) * PER_MESSAGE)])
    assert_latency_as_research(promoted, kept.reset_index(drop=True))


def test_a_decoding_without_the_wanted_mark_is_done_again_from_the_messages_it_asks_for(
        promoted: SqlStore, process: Asked) -> None:
    events = events_of(200, seed=3)
    messages = messages_of(events.assign(debug="trace"))  # every event has an unknown field
    unmarked = head_of(messages, mark=False)
    rejected, wants_mark = process.prepare_decoded(messages, unmarked, False)
    assert rejected == [] and wants_mark
    assert len(process.asks) == 1
    assert process.commit() == []
    close_every_window(process)
    # every event fails the check, as research finds (decoded without the mark, none would)
    metric = mon.metrics["fields.no_unknown_fields"]
    expected = evaluate(metric, events.assign(debug="trace")).drop(columns="stage")
    assert set(expected.loc[expected["field"] == "failure_rate", "value"]) == {1.0}
    pd.testing.assert_frame_equal(stored(promoted, metric.name), expected, check_exact=True,
                                  check_dtype=False)


@pytest.mark.parametrize("answer", ["nothing", "another batch's messages"])
def test_a_worker_that_does_not_answer_with_the_batchs_messages_stores_nothing(
        promoted: SqlStore, process: Asked, answer: str) -> None:
    events = events_of(300, seed=4)
    messages = messages_of(events)
    another_worker_stores(promoted, messages[:10])
    process.prepare_decoded(messages, head_of(messages, mark=True), False)
    right = process.answer
    if answer == "nothing":
        process.answer = lambda batch: None
    else:
        process.answer = lambda batch: columns_of(messages[1:] + messages[:1])
    with pytest.raises(StepFailed, match="micro-batch"):
        process.commit()
    assert checkpoint(promoted) == (messages[9].offset, 10 * PER_MESSAGE)
    process.answer = right  # once answered, the retried commit stores the batch once
    assert process.commit() == []
    assert checkpoint(promoted) == (messages[-1].offset, len(events))
    close_every_window(process)
    assert_latency_as_research(promoted, events)


def test_an_ask_for_a_stored_batch_or_another_gets_nothing(process: Asked) -> None:
    messages = messages_of(events_of(50, seed=5))
    process.prepare_decoded(messages, head_of(messages, mark=True), False)
    answer = super(Asked, process).answer_raw  # the real answer, not the test's
    assert answer(0) == columns_of(messages)  # the first micro-batch of the process
    assert answer(1) is None
    process.commit()
    assert answer(0) is None


def test_the_messages_are_fetched_once_and_only_when_read() -> None:
    messages = messages_of(events_of(40, seed=6))
    fetches: list[int] = []

    def fetch(batch: int) -> Columns | None:
        fetches.append(batch)
        return columns_of(messages)

    raw = RawOnDemand(7, [m.partition for m in messages], [m.offset for m in messages],
                      fetch)
    assert list(raw.positions()) == [(m.partition, m.offset) for m in messages]
    assert len(raw) == len(messages) and fetches == []
    assert list(raw) == messages and raw[2] == messages[2]
    assert fetches == [7]
    wrong = RawOnDemand(8, [0], [99], fetch)
    with pytest.raises(RawUnavailable, match="other messages"):
        wrong.messages()
