"""An assertion's counts and its sample of violations are the same in research, in batch
from a SQL table (SQLite and Postgres, read in chunks) and in streaming (the stream
processor without Kafka: shuffled partitions, messages of random sizes): the stored
values and the stored states, byte for byte, and so the examples. So are a consistency
check's violating keys, exact and past its max_keys (a sample of keys, flagged), and data
expectations with their validation summary (no unknown fields in streaming only: a table
holds the schema's columns alone)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

import metrics
from metrics.assertions import Assertion
from metrics.key_consistency import Consistency
from monitor import Monitor
from monitor.assertion_examples import examples
from monitor.batch.runner import BatchRunner, Retry
from monitor.batch.sources import TableSource
from monitor.batch.tables import load_events
from monitor.research import run
from monitor.spec import MetricSpec
from monitor.stage_switch import EPOCH
from monitor.storage.store import SqlStore
from monitor.targets import batch_targets
from tests.stored_states import stored_states
from tests.streaming.interleaved_feed import feed_interleaved

START = pd.Timestamp("2026-03-02T00:00:00Z")
HOURS = 4
END = START + pd.Timedelta(hours=HOURS)
PARTITIONS = 3


def assertion_app() -> tuple[Monitor, MetricSpec]:
    mon = Monitor("assertion-parity")
    mon.stream("home", table="assert_events", topic="assert-events",
               schema={"view_id": "int", "user_id": "str", "country": "str", "score": "float",
                       "new_user": "bool"})

    @mon.metric("sure_about_strangers", "home", window="1h", segment_by=["country"],
                aggregate=metrics.assertion(id="view_id", keep=("ts", "user_id", "score"),
                                            k=10))
    def sure_about_strangers(events: pd.DataFrame) -> pd.Series:
        return events["score"].where(events["new_user"], 0.0) - 0.7  # severity over 0.7

    # a view logged twice must have one score; one user's views one "new_user" (an hour
    # overall has more users than the 200 keys kept: a sample of users, alike in every stage)
    mon.metric("one_score_per_view", "home", metrics.consistency("score", key="view_id"),
               segment_by=["country"])
    mon.metric("new_user_agrees", "home",
               metrics.consistency("new_user", key="user_id", max_keys=200, k=5),
               segment_by=["country"])
    mon.expectations("home", [
        metrics.expect_in_range("score", low=0.05, high=0.95, tolerance=0.1),
        metrics.expect_in_set("country", values=["SE", "DE"], tolerance=0.3),
        metrics.expect_match("user_id", pattern=r"\d{1,2}"),
        metrics.expect_unique("view_id", max_keys=300),  # an hour overall has more
        metrics.expect_not_null("new_user")], segment_by=["country"])
    mon.expectations("home", [metrics.expect_no_unknown_fields()], prefix="fields")
    return mon, sure_about_strangers


CHECKED = ("sure_about_strangers", "one_score_per_view", "new_user_agrees",
           "home.in_range.score", "home.in_set.country", "home.match.user_id",
           "home.unique.view_id", "home.not_null.new_user", "home.expectations")
IN_STREAMING = ("fields.no_unknown_fields", "fields.expectations")


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    rng = np.random.default_rng(18)
    n = 3_000
    offsets = np.sort(rng.integers(0, HOURS * 3_600_000, n))
    return pd.DataFrame({
        "ts": START + pd.to_timedelta(offsets, unit="ms"),
        "view_id": rng.integers(0, 2_800, n),  # some views twice, with other fields
        "user_id": rng.integers(0, 300, n).astype(str).astype(object),
        "country": rng.choice(["SE", "DE", "BR"], n).astype(object),
        "score": rng.random(n).round(6),
        "new_user": rng.random(n) < 0.4,
        # a field the schema does not know, now and then
        "debug": pd.Series(np.where(rng.random(n) < 0.02, "trace", np.array(None)), dtype=object),
    })


@pytest.fixture
def store(results_url: str) -> Iterator[SqlStore]:
    with SqlStore.open(results_url) as store:
        yield store


def promote(store: SqlStore, app: Monitor, stage: str) -> dict[str, int]:
    versions = {}
    for name in CHECKED + (IN_STREAMING if stage == "streaming" else ()):
        spec = app.metrics[name]
        version = versions[name] = store.register_metric(spec).version
        store.record_stage_change(spec.name, version, "batch", by="test", reason="parity")
        if stage == "streaming":
            store.record_stage_change(spec.name, version, stage, by="test", reason="parity",
                                      effective_from=EPOCH)
    return versions


def assert_all_same_as_research(store: SqlStore, app: Monitor, versions: dict[str, int],
                                stage: str, events: pd.DataFrame) -> None:
    for name in versions:
        assert_same_as_research(store, app.metrics[name], versions[name], stage, events)
    agrees = app.metrics["new_user_agrees"]
    assert isinstance(agrees.aggregate, Consistency)
    states = [agrees.aggregate.state_from_bytes(w.state)
              for w in stored_states(run(agrees, events).windows)]
    assert any(s.keys.dropped for s in states) and not all(s.keys.dropped for s in states)


def assert_same_as_research(store: SqlStore, spec: MetricSpec, version: int, stage: str,
                            events: pd.DataFrame) -> None:
    research = run(spec, events)
    got = store.read_values(metric=spec.name, stage=stage, limit=None)
    pd.testing.assert_frame_equal(got.drop(columns="stage").reset_index(drop=True),
                                  research.values.drop(columns="stage"), check_exact=True,
                                  check_dtype=False)
    stored = store.read_states(spec.name, version, stage, START.to_pydatetime(),
                               END.to_pydatetime())
    assert len(stored) == len(research.windows) == HOURS * (4 if spec.segment_by else 1)
    assert ({(w.segment, pd.Timestamp(w.window_start)): w.state for w in stored}
            == {(w.segment, pd.Timestamp(w.window_start)): w.state for w in research.windows})
    if not isinstance(spec.aggregate, Assertion | Consistency):
        return
    by_window = ["segment", "window_start"]
    stored_examples = examples(spec, stored).sort_values(by_window, kind="stable")
    research_examples = examples(spec, research.windows).sort_values(by_window, kind="stable")
    pd.testing.assert_frame_equal(stored_examples.reset_index(drop=True),
                                  research_examples.reset_index(drop=True), check_exact=True)
    sizes = stored_examples.groupby(by_window).size()
    if spec.name == "sure_about_strangers":
        assert (sizes == 10).all()
    else:  # violating keys: not in every window, at most k
        assert sizes.sum() > 0 and (sizes <= spec.aggregate.k).all()


def test_batch_from_a_table_equals_research(store: SqlStore, events: pd.DataFrame) -> None:
    app, _ = assertion_app()
    versions = promote(store, app, "batch")
    targets = batch_targets(app, store, stages=("batch",))
    engine = sa.create_engine(store.database.url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS assert_events"))
        assert load_events(engine, app.streams["home"], events) == len(events)
        batch = BatchRunner(store, lambda m: TableSource(engine, m.stream, chunk_rows=211),
                            retry=Retry(attempts=1))
        summaries = batch.run_many(targets, since=START, until=END)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE assert_events"))
    finally:
        engine.dispose()
    assert [s.rows_read for s in summaries] == [len(events)] * len(versions)
    assert_all_same_as_research(store, app, versions, "batch", events)


def test_streaming_equals_research(store: SqlStore, events: pd.DataFrame) -> None:
    app, _ = assertion_app()
    versions = promote(store, app, "streaming")
    targets = batch_targets(app, store, stages=("streaming",))
    feed_interleaved(store.database, app.streams["home"], "assert-events", PARTITIONS, targets,
                     events, seed=4)
    assert_all_same_as_research(store, app, versions, "streaming", events)
