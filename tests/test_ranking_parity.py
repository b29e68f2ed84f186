"""The same homepage events give bit-identical ranking values in every stage: research on a
DataFrame; batch from a SQL table (SQLite and Postgres, the list column stored as JSON) and
from JSON lines, CSV (the list as JSON text) and Parquet (a list<string> column) files; and
streaming, through the stream processor without Kafka, replayed from a Parquet file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

import metrics
from examples.music_home_events import write_events
from monitor import Monitor
from monitor.batch.runner import BatchRunner, Retry
from monitor.batch.sources import FileSource, TableSource
from monitor.batch.tables import load_events
from monitor.research import evaluate
from monitor.sources.files import read_events
from monitor.stage_switch import EPOCH
from monitor.storage.store import SqlStore
from monitor.targets import Target, batch_targets
from tests.builtins import ITEMS, ranked
from tests.streaming.interleaved_feed import feed_interleaved

START = pd.Timestamp("2026-03-02T00:00:00Z")
HOURS = 6
END = START + pd.Timedelta(hours=HOURS)
PARTITIONS = 3
SCHEMA = {"user_id": "str", "device": "str", "shown": "list[str]?", "clicked": "str?"}


def homepage_app(prefix: str = "", files: str | None = None) -> Monitor:
    mon = Monitor("ranking-parity")
    mon.stream("home", schema=SCHEMA, table="rank_events", topic="rank-events", files=files)
    mon.metric(f"{prefix}ndcg", "home", metrics.ndcg("shown", "clicked", k=5), window="1h",
               segment_by=["device"])
    mon.metric(f"{prefix}mrr", "home", metrics.mrr("shown", "clicked"), window="1h")
    mon.metric(f"{prefix}hit_rate", "home", metrics.hit_rate("shown", "clicked", k=3),
               window="1h", segment_by=["device"])
    mon.metric(f"{prefix}coverage", "home",
               metrics.catalogue_coverage("shown", catalogue=ITEMS[:30], k=4), window="1h")
    return mon


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    rng = np.random.default_rng(15)
    frame = ranked(rng, 3_000)  # shown (some null), clicked (some null, some not shown)
    offsets = np.sort(rng.integers(0, HOURS * 3_600_000, len(frame)))
    frame.insert(0, "ts", START + pd.to_timedelta(offsets, unit="ms"))
    frame["user_id"] = rng.integers(0, 200, len(frame)).astype(str).astype(object)
    frame["device"] = rng.choice(["ios", "android", "web"], len(frame)).astype(object)
    return frame


@pytest.fixture
def store(results_url: str) -> Iterator[SqlStore]:
    with SqlStore.open(results_url) as store:
        yield store


def promote(store: SqlStore, app: Monitor, stage: str) -> list[Target]:
    for spec in app.metrics.values():
        version = store.register_metric(spec).version
        store.record_stage_change(spec.name, version, "batch", by="test", reason="parity")
        if stage == "streaming":
            store.record_stage_change(spec.name, version, stage, by="test", reason="parity",
                                      effective_from=EPOCH)
    return batch_targets(app, store, stages=(stage,))


def assert_same_as_research(store: SqlStore, app: Monitor, stage: str, events: pd.DataFrame,
                            prefix: str = "") -> None:
    for name, spec in app.metrics.items():
        expected = evaluate(spec, events).drop(columns="stage")
        got = store.read_values(metric=name, stage=stage, limit=None)
        got = got.drop(columns="stage").reset_index(drop=True)
        assert len(got) == HOURS * len(spec.fields or ()) * (4 if spec.segment_by else 1)
        pd.testing.assert_frame_equal(got, expected, check_exact=True, check_dtype=False)


def test_batch_from_a_table_equals_research(store: SqlStore, events: pd.DataFrame) -> None:
    app = homepage_app()
    targets = promote(store, app, "batch")
    engine = sa.create_engine(store.database.url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS rank_events"))
        assert load_events(engine, app.streams["home"], events) == len(events)
        batch = BatchRunner(store, lambda m: TableSource(engine, m.stream, chunk_rows=377),
                            retry=Retry(attempts=1))
        summaries = batch.run_many(targets, since=START, until=END)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE rank_events"))
    finally:
        engine.dispose()
    assert [s.rows_read for s in summaries] == [len(events)] * len(targets)
    assert_same_as_research(store, app, "batch", events)


def test_batch_from_files_equals_research(store: SqlStore, events: pd.DataFrame,
                                          tmp_path: Path) -> None:
    hours = [events.iloc[i::3] for i in range(3)]  # every format holds a third of each hour
    write_events(hours[0], tmp_path / "home-0.jsonl")
    write_events(hours[1], tmp_path / "home-1.parquet")
    # CSV has no lists: the cell holds the list as JSON text (pandas would write its repr)
    write_events(hours[2].assign(shown=hours[2]["shown"].map(
        lambda v: None if v is None else json.dumps(v))), tmp_path / "home-2.csv")
    app = homepage_app("files_", files=str(tmp_path / "home-*"))
    targets = promote(store, app, "batch")
    batch = BatchRunner(store, lambda m: FileSource(m.stream), retry=Retry(attempts=1))
    summaries = batch.run_many(targets, since=START, until=END)
    assert [s.rows_read for s in summaries] == [len(events)] * len(targets)
    assert_same_as_research(store, app, "batch", events)


def test_streaming_equals_research(store: SqlStore, events: pd.DataFrame,
                                   tmp_path: Path) -> None:
    """The events are replayed from a Parquet file, as `monitor stream replay` sends them:
    its list cells come as numpy arrays and go out as JSON arrays."""
    replayed = read_events(write_events(events, tmp_path / "home.parquet")).events
    assert isinstance(replayed["shown"].dropna().iloc[0], np.ndarray)
    app = homepage_app()
    stream = app.streams["home"]
    targets = promote(store, app, "streaming")
    feed_interleaved(store.database, stream, "rank-events", PARTITIONS, targets, replayed, seed=3)
    assert_same_as_research(store, app, "streaming", events)
