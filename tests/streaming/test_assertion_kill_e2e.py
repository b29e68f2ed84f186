"""An assertion's counts, sample and dead letters across a worker killed with SIGKILL
mid-stream and restarted (real worker processes, the real broker and Postgres; the harness
of tests/streaming/workers.py, as test_faults_e2e.py uses it): the stored values and
states equal research's byte for byte, so the sampled examples are the same, and each
event a per-event function failed on is one dead letter, counted once."""

from __future__ import annotations

import json
import signal
import threading
import uuid
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from examples.music_home_events import DEFAULT_START, generate_events
from monitor.assertion_examples import examples
from monitor.research import run
from monitor.storage.store import SqlStore
from tests.streaming.assertion_app import SLOW_MS, mon
from tests.streaming.workers import (
    STREAM,
    Worker,
    absorbed_events,
    assert_same_values,
    example_event_dicts,
    example_profile,
    expected_values,
    new_topic,
    promote_to_streaming,
    send,
    settled,
    wait_for,
)

APP = "tests.streaming.assertion_app:mon"
FAILED = "per-event function of metric 'buried_favourite' failed"


def test_a_killed_worker_keeps_the_same_sample_counts_and_dead_letters(
    tmp_path: Path, store: SqlStore, bootstrap: str, postgres_url: str,
) -> None:
    run_id = uuid.uuid4().hex[:8]
    targets = promote_to_streaming(store, example_profile(seed=31), app=mon)
    events = generate_events(start=DEFAULT_START, days=1, seed=32, events_per_hour=400)
    slow = events["latency_ms"] > SLOW_MS
    assert 5 <= slow.sum() <= 100
    topic = f"home-{run_id}"
    new_topic(bootstrap, topic)
    expected = expected_values(targets, events, None)
    rows = example_event_dicts(events)
    half = len(rows) // 2

    def worker(name: str) -> Worker:
        return Worker(tmp_path / f"{name}.log", database_url=postgres_url,
                      bootstrap=bootstrap, group=f"g-{run_id}", topic=topic, app=APP)

    first = worker("first").start()
    try:
        send(bootstrap, topic, rows[:half])
        wait_for(lambda: absorbed_events(store, topic) >= half // 2, 90,
                 "the first events stored", [first])
        producer = threading.Thread(
            target=lambda: send(bootstrap, topic, rows[half:], batch=5), daemon=True)
        producer.start()
        wait_for(lambda: absorbed_events(store, topic) > half, 90,
                 "events of the second half stored", [first])
        assert first.alive, first.tail()
        first.signal(signal.SIGKILL)  # mid-stream: messages keep coming
        assert first.wait(15) is not None, first.tail()
    finally:
        if first.alive:
            first.kill()
    producer.join(60)
    second = worker("second").start()
    try:
        wait_for(settled(store, topic, len(STREAM.schema.validate(events)[0]), expected),
                 120, "every window stored", [second])
    finally:
        second.stop()
    assert "resuming after offset" in second.log_path.read_text(errors="replace")

    assert_same_values(store, expected)  # the counts, rates and highest severities
    for target in targets:
        spec = target.metric
        research = run(spec, events)
        stored = store.read_states(spec.name, target.version, "streaming",
                                   events["ts"].min().floor("1h").to_pydatetime(),
                                   (events["ts"].max().floor("1h")
                                    + pd.Timedelta("1h")).to_pydatetime())
        assert ({(w.segment, pd.Timestamp(w.window_start)): w.state for w in stored}
                == {(w.segment, pd.Timestamp(w.window_start)): w.state
                    for w in research.windows}), spec.name
        by_window = ["segment", "window_start"]
        got = examples(spec, stored).sort_values(by_window, kind="stable")
        want = examples(spec, research.windows).sort_values(by_window, kind="stable")
        pd.testing.assert_frame_equal(got.reset_index(drop=True),
                                      want.reset_index(drop=True), check_exact=True)
        assert len(got) > 10 * 24

    with store.database.connect() as conn:
        letters = pd.read_sql(sa.text("SELECT source_key, reason, payload FROM dead_letters "
                                      "WHERE source = :source"), conn,
                              params={"source": f"stream:{topic}"})
    failed = letters[letters["reason"].str.startswith(FAILED)]
    assert sorted(json.loads(p)["view_id"] for p in failed["payload"]) == sorted(
        events["view_id"][slow])
    counted = store.read_values(metric="home.dead_letters", stage="streaming", limit=None)
    assert counted[counted["segment"] == f"reason={FAILED}"]["value"].sum() == slow.sum()
    assert counted[counted["segment"] == "*"]["value"].sum() == slow.sum()
