"""The label join with real workers, the real broker and real Postgres: ``monitor stream
worker`` consumes the prediction topic and the label topic (partitioned otherwise), and
once every horizon has passed its values are research's, bit for bit — with a worker
killed with SIGKILL mid-replay twice, the next one resuming from the stored offsets."""

from __future__ import annotations

import threading
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

import pandas as pd

from monitor.research import evaluate
from monitor.stage_switch import EPOCH
from monitor.storage.store import SqlStore
from monitor.targets import Target, batch_targets
from streaming.broker import create_topics
from streaming.codec import event_dicts
from streaming.emitter import Emitter
from streaming.label_processor import join_sources
from streaming.label_store import held_counts
from tests.label_data import labels_for, predictions
from tests.streaming.label_stream_app import mon
from tests.streaming.workers import (
    Worker,
    absorbed_events,
    all_stored,
    assert_same_values,
    wait_for,
)

APP = "tests.streaming.label_stream_app:mon"
PREDICTION_PARTITIONS = 4
LABEL_PARTITIONS = 3
# Longer than the replay takes: a partition the worker judged idle would move its mark to
# the wall clock, months past these events, and close (and forget) every window at once.
IDLE_TIMEOUT_S = 20.0


def promote(store: SqlStore) -> list[Target]:
    for spec in mon.metrics.values():
        definition = store.register_metric(spec)
        for stage in ("batch", "streaming"):
            store.record_stage_change(spec.name, definition.version, stage, by="test",
                                      reason="label join end to end", effective_from=EPOCH)
    return batch_targets(mon, store, stages=("streaming",))


def arrivals(preds: pd.DataFrame, labels: pd.DataFrame) -> list[tuple[str, dict[str, Any]]]:
    """(stream, event) in the order they would arrive: a prediction when it is made, a
    label up to 45 minutes after its own time (so labels come shuffled by less than the
    metrics' lateness of 2 hours; early ones before their prediction, most after their
    prediction's window closed)."""
    timed = [(pd.Timestamp(e["ts"]), "home", e) for e in event_dicts(preds)]
    for i, event in enumerate(event_dicts(labels)):
        jitter = pd.Timedelta(seconds=zlib.crc32(str(i).encode()) % 2_700)
        timed.append((pd.Timestamp(event["ts"]) + jitter, "outcomes", event))
    timed.sort(key=lambda item: (item[0], item[1]))
    return [(stream, event) for _, stream, event in timed]


def send_paced(bootstrap: str, topics: dict[str, str],
               events: list[tuple[str, dict[str, Any]]]) -> None:
    """Keyed by prediction id, a few events a message, paced over about 20 s: the workers
    are killed while it goes on."""
    emitters = {stream: Emitter(bootstrap, topic, key_field="prediction_id",
                                max_batch_events=4, block_ms=60_000, exit_timeout_s=None)
                for stream, topic in topics.items()}
    try:
        for number, (stream, event) in enumerate(events):
            assert emitters[stream].emit(event)
            if number % 25 == 24:
                time.sleep(0.09)
        for emitter in emitters.values():
            assert emitter.flush(timeout=60)
            assert emitter.stats().failed == 0
    finally:
        for emitter in emitters.values():
            emitter.close()


def held(store: SqlStore, targets: list[Target]) -> int:
    with store.database.connect() as conn:
        return sum(sum(held_counts(conn, t.metric.name, t.version)) for t in targets)


def test_workers_killed_mid_replay_join_labels_as_research_does(
        tmp_path: Path, store: SqlStore, bootstrap: str, postgres_url: str) -> None:
    run_id = uuid.uuid4().hex[:8]
    topics = {"home": f"label-predictions-{run_id}", "outcomes": f"label-outcomes-{run_id}"}
    create_topics(bootstrap, {topics["home"]: PREDICTION_PARTITIONS,
                              topics["outcomes"]: LABEL_PARTITIONS})
    targets = promote(store)
    preds = predictions(n=3_000)
    labels = labels_for(preds)
    expected = {t.metric.name: evaluate(t.metric, preds, labels=labels).drop(columns="stage")
                for t in targets}
    valid_labels = len(mon.streams["outcomes"].schema.validate(labels)[0]) - 1  # an empty id
    sources = join_sources(topics["home"], topics["outcomes"])
    producer = threading.Thread(target=send_paced, args=(bootstrap, topics,
                                                         arrivals(preds, labels)), daemon=True)

    def absorbed() -> int:
        return absorbed_events(store, sources[0]) + absorbed_events(store, sources[1])

    def worker(name: str) -> Worker:
        return Worker(tmp_path / f"{name}.log", database_url=postgres_url,
                      bootstrap=bootstrap, group=f"g-{run_id}", app=APP, topics=topics,
                      idle_timeout=IDLE_TIMEOUT_S)

    total = len(preds) + valid_labels
    killed_at: list[int] = []
    for name, reach in (("first", total // 4), ("second", total * 11 // 20)):
        running = worker(name).start()
        if not producer.is_alive() and not killed_at:
            producer.start()
        try:
            def stored_up_to(reach: int = reach) -> bool:
                return absorbed() >= reach

            wait_for(stored_up_to, 120, f"{reach} events stored", [running])
            killed_at.append(absorbed())
            assert running.alive, running.tail()
        finally:
            running.kill()  # SIGKILL: nothing stored after this, the group not left
    assert killed_at[0] < killed_at[1] < total, killed_at  # both mid-replay
    producer.join(120)

    last = worker("last").start()
    try:
        wait_for(lambda: absorbed() >= total and held(store, targets) == 0
                 and all_stored(store, expected), 180,
                 "every event absorbed, every window stored and forgotten", [last])
    finally:
        last.stop()
    assert absorbed() == total  # each event once, whatever was replayed
    assert_same_values(store, expected)
