"""A segmented drift report in streaming: the window a worker closes, and the correction
when another worker's partial of it lands later, store every segment's values as research
computes them - the correction over columns x segments covers the whole window, so a
correction of one segment revalues the segments stored before."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

import metrics
from metrics.drift import ReferenceProfile
from monitor import Monitor
from monitor.research import evaluate
from monitor.storage.store import SqlStore
from streaming.codec import encode_events, event_dicts
from streaming.messages import RawMessage
from streaming.processor import StreamProcessor, StreamSettings
from streaming.sql_store import SqlStreamStore
from tests.streaming.clock import Clock
from tests.streaming.workers import promote_to_streaming

START = pd.Timestamp("2026-03-02", tz="UTC")


def events(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame({
        "ts": START + pd.to_timedelta(np.sort(rng.uniform(0, 3600, n)), unit="s"),
        "x": rng.normal(0.0, 1.0, n),
        "device": rng.choice(["ios", "web", "tv"], n),
        "country": rng.choice(["BR", "SE", "US"], n),
    })


@pytest.fixture
def store(results_url: str) -> Iterator[SqlStore]:
    with SqlStore.open(results_url) as store:
        yield store


def test_a_correction_of_one_segment_revalues_the_windows_other_segments(
        store: SqlStore) -> None:
    """Worker A owns partition 0, B partition 1, both idle. A stores most of the hour, B
    closes it; then A gets the rest, all from one country: closing again merges that
    country's stored state with the new partial and values it with the others (whose
    adjusted p-values move with it), as research values the hour's events."""
    rng = np.random.default_rng(3)
    profile = ReferenceProfile.fit(events(rng, 4_000)[["x", "device"]], name="training")
    mon = Monitor("segmented-drift")
    stream = mon.stream("s", schema={"x": "float", "device": "str", "country": "str"},
                        topic="segmented")
    mon.metric("drift", "s", metrics.drift_report(["x", "device"], "training"),
               window="1h", segment_by=["country"])
    [target] = promote_to_streaming(store, profile, mon)

    hour = events(rng, 900)
    hour.loc[hour["country"] == "BR", "x"] += 0.4
    late = hour.index[(hour["country"] == "US") & (hour.index >= 600)]
    first = list(event_dicts(hour.drop(index=late)))
    rest = list(event_dicts(hour.loc[late]))
    clock = Clock()

    def worker() -> StreamProcessor:
        return StreamProcessor(SqlStreamStore(store.database), stream, "segmented", 2, [target],
                               StreamSettings(idle_timeout_s=5),
                               clock=lambda: clock.monotonic, wall_clock=lambda: clock.wall)

    a, b = worker(), worker()
    a.assign([0])
    b.assign([1])
    clock.later(6)
    a.tick()
    b.tick()  # both partitions idle: their marks are at the wall clock
    a.handle([RawMessage(0, 0, encode_events(first))])
    clock.later(1.1)
    assert b.tick()  # B closes the hour with A's events so far
    closed_first = stored(store)
    a.handle([RawMessage(0, 1, encode_events(rest))])
    for _ in range(2):
        clock.later(6)
        a.tick()
        b.tick()

    expected = evaluate(target.metric, hour, reference=profile).drop(columns="stage")
    got = stored(store)
    pd.testing.assert_frame_equal(got, expected, check_exact=True, check_dtype=False)
    # The correction added US events only, yet another country's adjusted p moved.
    before = closed_first.set_index(["segment", "field"])["value"]
    after = got.set_index(["segment", "field"])["value"]
    moved = [segment for segment in ("country=BR", "country=SE")
             if before[(segment, "x.p_adjusted")] != after[(segment, "x.p_adjusted")]]
    assert moved


def stored(store: SqlStore) -> pd.DataFrame:
    values = store.read_values(metric="drift", stage="streaming", limit=None)
    return values.drop(columns="stage").reset_index(drop=True)
