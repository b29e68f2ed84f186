"""The streaming stage's logic without Kafka: parity with research, replays skipped,
crashes resumed from the stored state, lateness, idle partitions and dead letters."""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from collections.abc import Iterator, Sequence

import pandas as pd
import pytest

from examples.music_home import mon, training_profile
from examples.music_home_events import DEFAULT_START, generate_events, generate_reference
from metrics.drift import ReferenceProfile
from monitor.research import evaluate
from monitor.storage.store import SqlStore
from monitor.targets import Target
from streaming.codec import encode_events, event_dicts
from streaming.messages import RawMessage
from streaming.partition import OUTLIERS
from streaming.processor import StreamProcessor, StreamSettings
from streaming.sql_store import SqlStreamStore
from tests.streaming.clock import Clock
from tests.streaming.own_store import store, targets

__all__ = ["store", "targets"]  # fixtures of tests.streaming.own_store, used here

STREAM = mon.streams["home"]
TOPIC = "home-events"
PARTITIONS = 4
START = DEFAULT_START
DAYS = 1


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    return generate_events(start=START, days=DAYS, seed=5, events_per_hour=400)


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    reference = generate_reference(start=START, seed=5, events_per_hour=400)
    return training_profile(reference)


def messages_of(events: pd.DataFrame, *, seed: int = 0, max_batch: int = 40
                ) -> list[RawMessage]:
    """The events as a producer keyed by user would send them: per partition in file
    order, batched into messages of 1 to ``max_batch`` events."""
    rng = random.Random(seed)
    per_partition: dict[int, list[dict[str, object]]] = {p: [] for p in range(PARTITIONS)}
    for event in event_dicts(events):
        per_partition[hash(str(event["user_id"])) % PARTITIONS].append(event)
    messages = []
    for partition, items in per_partition.items():
        offset = 0
        while items:
            size = rng.randint(1, max_batch)
            chunk, items = items[:size], items[size:]
            messages.append(RawMessage(partition, offset, encode_events(chunk)))
            offset += 1
    return messages


def interleave(messages: Sequence[RawMessage], seed: int, most: int = 30
               ) -> Iterator[list[RawMessage]]:
    """Micro-batches as a consumer would fetch them: partitions interleaved, each in order."""
    rng = random.Random(seed)
    queues = {p: [m for m in messages if m.partition == p] for p in range(PARTITIONS)}
    while any(queues.values()):
        batch = []
        for partition in rng.sample(sorted(queues), PARTITIONS):
            take = rng.randint(0, most)
            batch += queues[partition][:take]
            queues[partition] = queues[partition][take:]
        if batch:
            yield batch


def processor(store: SqlStore, targets: list[Target], clock: Clock) -> StreamProcessor:
    return StreamProcessor(SqlStreamStore(store.database), STREAM, TOPIC, PARTITIONS, targets,
                           StreamSettings(idle_timeout_s=5), clock=lambda: clock.monotonic,
                           wall_clock=lambda: clock.wall)


def stored(store: SqlStore, metric: str) -> pd.DataFrame:
    values = store.read_values(metric=metric, stage="streaming", limit=None)
    return values.drop(columns="stage").reset_index(drop=True)


def assert_parity(store: SqlStore, targets: list[Target], events: pd.DataFrame,
                  profile: ReferenceProfile) -> None:
    for target in targets:
        expected = evaluate(target.metric, events, reference=profile).drop(columns="stage")
        pd.testing.assert_frame_equal(stored(store, target.metric.name), expected,
                                      check_exact=True, check_dtype=False)


def test_streaming_values_equal_research_values_for_every_example_metric(
    store: SqlStore, targets: list[Target], events: pd.DataFrame, profile: ReferenceProfile
) -> None:
    clock = Clock()
    stage = processor(store, targets, clock)
    stage.assign(range(PARTITIONS))
    messages = messages_of(events)
    for batch in interleave(messages, seed=1):
        stage.handle(batch)
        clock.later(0.2)
        stage.tick()
    clock.later(6)  # every partition idle: the watermarks move to the wall clock
    finalized = stage.tick()
    assert {f.metric for f in finalized} == {t.metric.name for t in targets}
    assert_parity(store, targets, events, profile)
    with store.database.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM stream_partials").scalar() == 0
    assert all(not s.engine.partials for s in stage.owned.values())  # memory freed


def test_a_crash_loses_and_doubles_nothing(
    store: SqlStore, targets: list[Target], events: pd.DataFrame, profile: ReferenceProfile
) -> None:
    """Workers die at random points (states in memory gone, some batches never stored);
    a new one replays from the committed offsets, as Kafka would redeliver."""
    clock = Clock()
    messages = messages_of(events, seed=2)
    batches = list(interleave(messages, seed=3, most=4))
    rng = random.Random(4)
    stage = processor(store, targets, clock)
    stage.assign(range(PARTITIONS))
    committed: dict[int, int] = {}  # Kafka's committed offsets: acked after a store
    position = 0
    crashes = 0
    while position < len(batches):
        batch = batches[position]
        if rng.random() < 0.1:
            crashes += 1
            if rng.random() < 0.5:  # absorbed but the process died before storing
                stage.absorb(stage.prepare(batch))
            stage = processor(store, targets, clock)
            stage.assign(range(PARTITIONS))  # the group hands the partitions over
            # Kafka redelivers from the committed offsets: rewind to the oldest batch
            # holding a message past them (messages at or below them come again too).
            position = min(i for i, b in enumerate(batches)
                           if any(m.offset > committed.get(m.partition, -1) for m in b))
            continue
        stage.handle(batch)
        for message in batch:
            committed[message.partition] = max(committed.get(message.partition, -1),
                                               message.offset)
        clock.later(0.2)
        if rng.random() < 0.3:
            stage.tick()
        position += 1
    assert crashes >= 3
    clock.later(6)
    stage.tick()
    assert_parity(store, targets, events, profile)


def test_late_events_are_dead_lettered_and_counted(
    store: SqlStore, targets: list[Target], events: pd.DataFrame
) -> None:
    clock = Clock()
    stage = processor(store, targets, clock)
    [latency] = [t for t in targets if t.metric.name == "latency"]
    lateness = pd.Timedelta(latency.metric.lateness_ns)
    base = next(event_dicts(events.head(1)))
    t0 = START + pd.Timedelta(hours=1)
    on_time = [{**base, "ts": (t0 + pd.Timedelta(minutes=m)).isoformat()} for m in (0, 10)]
    # more than the watermark's outliers, so they move it past the first window
    far = [{**base, "ts": (t0 + pd.Timedelta(hours=2, seconds=s) + lateness).isoformat()}
           for s in range(OUTLIERS + 1)]
    late = {**base, "ts": (t0 + pd.Timedelta(minutes=30)).isoformat(), "latency_ms": 9e9}
    stage.handle([RawMessage(0, 0, encode_events(on_time)),
                  RawMessage(0, 1, encode_events(far)),
                  RawMessage(0, 2, json.dumps(late).encode())])
    with store.database.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT segment, value FROM metric_values WHERE metric = 'home.dead_letters' "
            "ORDER BY segment").all()
        letters = conn.exec_driver_sql(
            "SELECT reason, payload FROM dead_letters WHERE source = 'stream:home-events'"
        ).all()
    assert [(r[0], r[1]) for r in rows] == [("*", 1.0), ("reason=late", 1.0)]
    assert letters[-1][0].startswith("late: too late for the closed window of ")
    assert "9000000000" in letters[-1][1]
    partials = stage.owned[0].engine.partials
    assert sum(p.rows for k, p in partials.items()
               if k[0] == "latency" and k[1] == "*") == 2 + len(far)


def test_replayed_messages_are_skipped(store: SqlStore, targets: list[Target],
                                       events: pd.DataFrame) -> None:
    clock = Clock()
    stage = processor(store, targets, clock)
    messages = messages_of(events.head(500))
    stage.handle(messages)
    again = processor(store, targets, clock)
    prepared = again.handle(messages)
    assert prepared.skipped == len(messages)
    assert not prepared.events


def test_streaming_fires_exactly_the_alerts_the_backtest_predicted(
    store: SqlStore, targets: list[Target], profile: ReferenceProfile
) -> None:
    """A week with the example incidents, streamed with alert evaluation in the
    transaction that stores each final window."""
    from monitor.research import backtest
    from monitor.storage import alert_states
    from streaming.alert_hook import evaluate_alerts

    week = generate_events(start=START, days=7, seed=8, events_per_hour=150)
    clock = Clock()
    stage = StreamProcessor(
        SqlStreamStore(store.database), STREAM, TOPIC, PARTITIONS, targets,
        StreamSettings(idle_timeout_s=5),
        clock=lambda: clock.monotonic, wall_clock=lambda: clock.wall,
        after_final=evaluate_alerts)
    stage.assign(range(PARTITIONS))
    for batch in interleave(messages_of(week, max_batch=200), seed=9):
        stage.handle(batch)
        clock.later(0.2)
        stage.tick()
    clock.later(6)
    stage.tick()

    predicted = set()
    for target in targets:
        for row in backtest(target.metric, week, profile).to_dict("records"):
            resolved = row["resolved_window_start"]
            predicted.add((row["metric"], row["rule"], row["segment"],
                           row["fired_window_start"].to_pydatetime(),
                           None if pd.isna(resolved) else resolved.to_pydatetime()))
    fired: set[tuple[str, str, str, object, object]] = set()
    with store.database.connect() as conn:
        for target in targets:
            metric = target.metric.name
            open_: dict[tuple[str, str], object] = {}
            for event in alert_states.events_of(conn, metric, "streaming"):
                alert = (event.key.rule, event.key.segment)
                if event.transition == "firing":
                    open_[alert] = event.window_start
                elif event.transition == "resolved":
                    fired.add((metric, *alert, open_.pop(alert), event.window_start))
            fired |= {(metric, *alert, start, None) for alert, start in open_.items()}
    assert {episode[0] for episode in predicted} >= {"latency", "fav_rank"}
    assert fired == predicted


def test_a_partition_that_pauses_past_the_idle_timeout_loses_nothing(
    store: SqlStore, targets: list[Target], events: pd.DataFrame, profile: ReferenceProfile
) -> None:
    """Partition 3 goes quiet mid-replay: the others close their windows without it
    (its mark follows the wall clock); when it comes back, its events still count, merged
    into the windows already stored."""
    clock = Clock()
    stage = processor(store, targets, clock)
    stage.assign(range(PARTITIONS))
    messages = messages_of(events, seed=6)
    held = [m for m in messages if m.partition == 3]
    first, rest = held[: len(held) // 3], held[len(held) // 3:]
    others = [m for m in messages if m.partition != 3]
    for batch in interleave(others + first, seed=7):
        stage.handle(batch)
        clock.later(0.2)
        stage.tick()
    clock.later(6)
    closed = stage.tick()  # partition 3 is idle: windows close without its later events
    assert closed
    early = stored(store, "latency")
    assert len(early) > 0
    for batch in interleave(rest, seed=8):
        prepared = stage.handle(batch)
        assert not [r for r in prepared.rejected if r.reason == "late"]
        clock.later(0.2)
        stage.tick()
    clock.later(6)
    stage.tick()
    assert_parity(store, targets, events, profile)


def test_a_flood_of_one_reason_leaves_room_for_samples_of_the_rare_ones(
    store: SqlStore, targets: list[Target], events: pd.DataFrame
) -> None:
    """Every dead letter is counted; the stored samples are capped per reason, so 2,000
    malformed messages do not crowd out the 5 of another kind in the same micro-batch."""
    from streaming.dead_letter_tally import SAMPLES_PER_REASON

    clock = Clock()
    stage = processor(store, targets, clock)
    base = next(event_dicts(events.head(1)))
    flood = [RawMessage(0, i, b'{"ts": ') for i in range(2_000)]
    rare = [RawMessage(0, 2_000 + i, encode_events([{k: v for k, v in base.items()
                                                      if k != "country"}]))
            for i in range(5)]
    stage.handle(flood + rare)
    with store.database.connect() as conn:
        samples = conn.exec_driver_sql(
            "SELECT reason FROM dead_letters WHERE source = 'stream:home-events'").all()
        counted = conn.exec_driver_sql(
            "SELECT value FROM metric_values WHERE metric = 'home.dead_letters' "
            "AND segment = '*'").scalar()
    reasons = Counter(reason.split(":", 1)[0] for (reason,) in samples)
    assert reasons == {"malformed_json": SAMPLES_PER_REASON, "field 'country' is null": 5}
    assert counted == 2_005


def test_events_are_marked_for_unknown_fields_only_when_a_metric_judges_them(
        store: SqlStore, targets: list[Target], events: pd.DataFrame) -> None:
    """The mark costs a look at every event's keys, so a processor asks for it only when
    one of its metrics judges unknown fields (the example app's do not; one with
    expect_no_unknown_fields does, and so does a validation summary holding it)."""
    import metrics
    from metrics.expectations import UNKNOWN_FIELDS
    from monitor import Monitor

    with_debug = events.head(20).assign(debug="trace")  # a field the schema lacks
    batch = messages_of(with_debug, max_batch=5)
    plain = StreamProcessor(SqlStreamStore(store.database), STREAM, TOPIC, PARTITIONS, targets)
    prepared = plain.prepare(batch)
    assert sum(len(e) for e in prepared.events.values()) == 20
    assert not any(UNKNOWN_FIELDS in e.columns for e in prepared.events.values())

    judging = Monitor("unknown-fields")
    judging.stream("home", schema=STREAM.schema.to_dict(), time=STREAM.time, topic=TOPIC)
    judging.expectations("home", [metrics.expect_no_unknown_fields()], prefix="fields")
    for name in ("fields.no_unknown_fields", "fields.expectations"):
        spec = judging.metrics[name]
        version = store.register_metric(spec).version
        processor = StreamProcessor(SqlStreamStore(store.database), spec.stream,
                                    f"{TOPIC}-{name}", PARTITIONS,
                                    [Target(spec, version)])
        prepared = processor.prepare(batch)
        assert all(e[UNKNOWN_FIELDS].all() for e in prepared.events.values())


def close_times(store: SqlStore, targets: list[Target], events: pd.DataFrame, behind: bool
                ) -> tuple[StreamProcessor, Clock, list[float]]:
    """Replay the events in micro-batches 0.2 s apart, ticking after each (as the worker
    does while busy), the consumer behind or not; when windows closed (monotonic s)."""
    clock = Clock()
    stage = processor(store, targets, clock)
    stage.assign(range(PARTITIONS))
    closed_at = []
    for batch in interleave(messages_of(events), seed=1, most=4):  # about 60 batches
        if behind:
            stage.note_backlog()  # the worker's micro-batch was full
        stage.handle(batch)
        clock.later(0.2)
        if stage.tick():
            closed_at.append(clock.monotonic)
    return stage, clock, closed_at


def test_a_worker_that_keeps_up_closes_windows_as_soon_as_its_marks_pass_them(
        store: SqlStore, targets: list[Target], events: pd.DataFrame) -> None:
    _, _, closed_at = close_times(store, targets, events, behind=False)
    assert min(b - a for a, b in itertools.pairwise(closed_at)) < 1.0


def test_a_worker_behind_closes_windows_once_a_second_with_the_same_values(
        store: SqlStore, targets: list[Target], events: pd.DataFrame, profile: ReferenceProfile
) -> None:
    """Behind, the marks move with every micro-batch: the processor looks for windows to
    close once a second and closes what is due together (the test above, with the same
    micro-batches and ticks, closes some within 0.2 s of each other). The values are
    research's all the same."""
    stage, clock, closed_at = close_times(store, targets, events, behind=True)
    assert len(closed_at) >= 3
    assert min(b - a for a, b in itertools.pairwise(closed_at)) >= 1.0
    clock.later(6)  # past the backlog and the idle timeout: every window closes
    stage.tick()
    assert_parity(store, targets, events, profile)
