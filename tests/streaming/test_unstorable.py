"""A value the database refuses must not stall a partition (issue 12, item 2: one NUL in a
segment value made every store fail, and the worker retried forever). The refusal is
made real with a trigger that rejects partial states of one segment, on SQLite and
Postgres: the messages holding such a value are set aside as dead letters, everything
else is stored; an error that is not about the data sets nothing aside."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest

from examples.music_home import mon, training_profile
from examples.music_home_events import DEFAULT_START, generate_events, generate_reference
from metrics.drift import ReferenceProfile
from monitor.research import evaluate
from monitor.storage.database import Database
from monitor.storage.store import SqlStore
from monitor.targets import Target
from streaming.codec import encode_events, event_dicts
from streaming.messages import RawMessage
from streaming.processor import UNSTORABLE, StreamProcessor, StreamSettings
from streaming.processor_process import _Steps
from streaming.sql_store import SqlStreamStore
from tests.streaming.workers import promote_to_streaming

STREAM = mon.streams["home"]
TOPIC = "home-events"
START = DEFAULT_START
POISON = "Atlantis"  # a country whose partial states the database refuses


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    reference = generate_reference(start=START, seed=41, events_per_hour=200)
    return training_profile(reference)


@pytest.fixture
def store(results_url: str) -> Iterator[SqlStore]:
    with SqlStore.open(results_url) as store:
        yield store
        drop_refusals(store.database)


@pytest.fixture
def targets(store: SqlStore, profile: ReferenceProfile) -> list[Target]:
    return promote_to_streaming(store, profile)


def refuse(database: Database, table: str, condition: str) -> None:
    """Make the database refuse rows of ``table`` where ``condition`` (on NEW) holds."""
    with database.begin() as conn:
        if database.dialect == "sqlite":
            for when in ("INSERT", "UPDATE"):
                conn.exec_driver_sql(
                    f"CREATE TRIGGER refuse_{table}_{when.lower()} BEFORE {when} ON {table} "
                    f"WHEN {condition} BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
        else:
            conn.exec_driver_sql(
                f"CREATE FUNCTION refuse_{table}() RETURNS trigger AS $$ BEGIN "
                f"IF {condition} THEN RAISE EXCEPTION 'refused by the test' "
                "USING ERRCODE = 'check_violation'; END IF; RETURN NEW; END $$ "
                "LANGUAGE plpgsql")
            for when in ("INSERT", "UPDATE"):
                conn.exec_driver_sql(
                    f"CREATE TRIGGER refuse_{table}_{when.lower()} BEFORE {when} ON {table} "
                    f"FOR EACH ROW EXECUTE FUNCTION refuse_{table}()")


def drop_refusals(database: Database) -> None:
    with database.begin() as conn:
        for table in ("stream_partials", "stream_checkpoints"):
            if database.dialect == "sqlite":
                for when in ("insert", "update"):
                    conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS refuse_{table}_{when}")
            else:
                conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS refuse_{table}() CASCADE")


def messages(events: pd.DataFrame, per_message: int = 10) -> list[RawMessage]:
    rows = list(event_dicts(events))
    return [RawMessage(0, offset, encode_events(rows[start:start + per_message]))
            for offset, start in enumerate(range(0, len(rows), per_message))]


def processor(store: SqlStore, targets: list[Target], wall: pd.Timestamp) -> StreamProcessor:
    clock = [0.0]
    return StreamProcessor(SqlStreamStore(store.database), STREAM, TOPIC, 1, targets,
                           StreamSettings(idle_timeout_s=5), clock=lambda: clock[0],
                           wall_clock=lambda: wall)


def columns(batch: list[RawMessage]) -> tuple[list[int], list[int], list[bytes | None],
                                                list[bytes | None]]:
    return ([m.partition for m in batch], [m.offset for m in batch],
            [m.value for m in batch], [m.key for m in batch])


def test_messages_the_database_refuses_are_set_aside_and_the_rest_is_stored(
    store: SqlStore, targets: list[Target], profile: ReferenceProfile
) -> None:
    events = generate_events(start=START, days=1, seed=42, events_per_hour=200)
    poisoned_rows = events.index[[100, 101, 2000, 3500]]  # in messages 10, 200 and 350
    events.loc[poisoned_rows, "country"] = POISON
    refuse(store.database, "stream_partials", f"NEW.segment = 'country={POISON}'")
    stage = processor(store, targets, pd.Timestamp.now(tz="UTC"))
    stage.assign([0])
    steps = _Steps(stage)
    all_messages = messages(events)
    refused = []
    for start in range(0, len(all_messages), 200):  # micro-batches of 200 messages
        batch = all_messages[start:start + 200]
        steps.prepare(columns(batch), False)
        refused += steps.commit()
    assert sorted(r.offset for r in refused) == [10, 200, 350]
    assert {r.reason for r in refused} == {UNSTORABLE}
    assert all("refused by the test" in r.detail for r in refused)

    stage.owned[0].advance_idle(pd.Timestamp.now(tz="UTC").value)  # close every window
    stage.tick()
    kept = events.drop(index=events.index[[i for r in refused
                                           for i in range(r.offset * 10, r.offset * 10 + 10)]])
    for target in targets:
        expected = evaluate(target.metric, kept, reference=profile).drop(columns="stage")
        got = store.read_values(metric=target.metric.name, stage="streaming", limit=None)
        pd.testing.assert_frame_equal(got.drop(columns="stage").reset_index(drop=True),
                                      expected, check_exact=True, check_dtype=False)
    counted = store.read_values(metric="home.dead_letters", stage="streaming", limit=None)
    assert counted.groupby("segment")["value"].sum()[f"reason={UNSTORABLE}"] == 3


def test_an_error_that_is_not_about_the_data_sets_nothing_aside(
    store: SqlStore, targets: list[Target], profile: ReferenceProfile
) -> None:
    """Every checkpoint write refused (as a database that does not match the version
    would): nothing is dead-lettered; once the cause is gone, the retried micro-batch is
    stored whole."""
    events = generate_events(start=START, days=1, seed=43, events_per_hour=100).head(500)
    stage = processor(store, targets, pd.Timestamp.now(tz="UTC"))
    stage.assign([0])
    steps = _Steps(stage)
    batch = messages(events)
    steps.prepare(columns(batch[:10]), False)
    assert steps.commit() == []
    refuse(store.database, "stream_checkpoints", "1 = 1")
    steps.prepare(columns(batch[10:]), False)
    for _ in range(2):
        with pytest.raises(Exception, match="refused by the test"):
            steps.commit()
    drop_refusals(store.database)
    assert steps.commit() == []
    assert stage.owned[0].offset == batch[-1].offset
    with store.database.connect() as conn:
        stored = conn.exec_driver_sql("SELECT events FROM stream_checkpoints").scalar()
    assert stored == len(events)
