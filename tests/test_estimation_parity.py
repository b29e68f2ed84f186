"""The same predictions give bit-identical estimated performance in every stage: research on
a DataFrame, batch from a SQL table (SQLite and Postgres) and streaming (the processor,
without Kafka, partitions interleaved), each bound to the profile stored with the
calibration, as a promoted metric is."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

import metrics
from metrics.drift import ReferenceProfile
from monitor import Monitor
from monitor.batch.runner import BatchRunner, Retry
from monitor.batch.sources import TableSource
from monitor.batch.tables import load_events
from monitor.lifecycle import bind_stored_reference
from monitor.research import evaluate
from monitor.stage_switch import EPOCH
from monitor.storage.store import SqlStore
from monitor.targets import Target, batch_targets
from tests.streaming.interleaved_feed import feed_interleaved
from tests.test_estimation import simulate

START = pd.Timestamp("2026-03-02T00:00:00Z")
HOURS = 4
END = START + pd.Timedelta(hours=HOURS)
PARTITIONS = 3
REFERENCE = ReferenceProfile.fit(simulate(np.random.default_rng(21), 20_000), ["score"],
                                 name="training", calibrations=[("score", "label")])


def app() -> Monitor:
    mon = Monitor("estimation-parity")
    mon.stream("scores", schema={"user_id": "str", "device": "str", "score": "float?"},
               table="scored_events", topic="scored-events")
    mon.metric("estimated", "scores", metrics.estimated_performance("score", "label",
                                                                    "training"),
               window="1h", segment_by=["device"])
    mon.metric("estimated_at_0.3", "scores",
               metrics.cbpe("score", "label", "training", threshold=0.3), window="1h")
    return mon


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    rng = np.random.default_rng(22)
    n = 4_000
    frame = pd.concat([simulate(rng, n // 2), simulate(rng, n // 2, shift=1.0)],
                      ignore_index=True).drop(columns="label")  # shifted after 2 hours
    frame.loc[rng.random(n) < 0.02, "score"] = None
    offsets = np.sort(rng.integers(0, HOURS * 3_600_000, n))
    frame.insert(0, "ts", START + pd.to_timedelta(offsets, unit="ms"))
    frame["user_id"] = rng.integers(0, 200, n).astype(str).astype(object)
    frame["device"] = rng.choice(["ios", "android", "web"], n).astype(object)
    return frame


@pytest.fixture
def store(results_url: str) -> Iterator[SqlStore]:
    with SqlStore.open(results_url) as store:
        yield store


def promote(store: SqlStore, mon: Monitor, stage: str) -> list[Target]:
    store.save_profile(REFERENCE)
    for spec in mon.metrics.values():
        version = store.register_metric(bind_stored_reference(spec, store)).version
        store.record_stage_change(spec.name, version, "batch", by="test", reason="parity")
        if stage == "streaming":
            store.record_stage_change(spec.name, version, stage, by="test", reason="parity",
                                      effective_from=EPOCH)
    return batch_targets(mon, store, stages=(stage,))


def assert_same_as_research(store: SqlStore, mon: Monitor, stage: str,
                            events: pd.DataFrame) -> None:
    for name, spec in mon.metrics.items():
        expected = evaluate(spec, events, reference=REFERENCE).drop(columns="stage")
        got = store.read_values(metric=name, stage=stage, limit=None)
        got = got.drop(columns="stage").reset_index(drop=True)
        assert len(got) == HOURS * 10 * (4 if spec.segment_by else 1)
        pd.testing.assert_frame_equal(got, expected, check_exact=True, check_dtype=False)


def test_batch_from_a_table_equals_research(store: SqlStore, events: pd.DataFrame) -> None:
    mon = app()
    targets = promote(store, mon, "batch")
    engine = sa.create_engine(store.database.url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS scored_events"))
        assert load_events(engine, mon.streams["scores"], events) == len(events)
        batch = BatchRunner(store, lambda m: TableSource(engine, m.stream, chunk_rows=377),
                            retry=Retry(attempts=1))
        summaries = batch.run_many(targets, since=START, until=END)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE scored_events"))
    finally:
        engine.dispose()
    assert [s.rows_read for s in summaries] == [len(events)] * len(targets)
    assert_same_as_research(store, mon, "batch", events)


def test_streaming_equals_research(store: SqlStore, events: pd.DataFrame) -> None:
    mon = app()
    targets = promote(store, mon, "streaming")
    feed_interleaved(store.database, mon.streams["scores"], "scored-events", PARTITIONS, targets,
                     events, seed=3)
    assert_same_as_research(store, mon, "streaming", events)
