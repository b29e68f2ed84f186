"""Stage changes reaching a running ``monitor stream worker`` (real broker, real Postgres,
the real catalog): no restart, and every window counted from the boundary the change
states, equal to research's on the events of those windows.

Events are stamped with the wall clock as they are sent, the switch lead is 10 s and the
windows 5 s, so a change made mid-stream applies within seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from monitor.lifecycle import bind_stored_reference, change_stage
from monitor.stage_switch import EPOCH
from monitor.storage.store import SqlStore
from streaming.emitter import Emitter
from tests.streaming.switch_app import WINDOW_NS, bound, mon, profile, research, stored
from tests.streaming.workers import Worker, new_topic, open_partials, wait_for

APP = "tests.streaming.switch_app:mon"
LEAD_S = 10
WORKER_OPTIONS = ["--max-future", str(LEAD_S), "--lifecycle-poll", "1"]


@pytest.fixture(autouse=True)
def short_lead(monkeypatch: pytest.MonkeyPatch) -> None:
    """The deployment's switch lead, for the worker and for the changes made here."""
    monkeypatch.setenv("MONITOR_SWITCH_LEAD", f"{LEAD_S}s")


class Producer:
    """Events stamped with the wall clock, about ``per_second`` a second, until stopped."""

    def __init__(self, bootstrap: str, topic: str, per_second: float = 60) -> None:
        self.sent: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(bootstrap, topic, per_second),
                                        daemon=True)

    def __enter__(self) -> Producer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self, bootstrap: str, topic: str, per_second: float) -> None:
        rng = np.random.default_rng(7)
        with Emitter(bootstrap, topic, key_field="user_id", max_batch_events=50,
                     block_ms=60_000, exit_timeout_s=None) as emitter:
            while not self._stop.is_set():
                for _ in range(int(per_second / 10)):
                    event = {"ts": pd.Timestamp.now(tz="UTC").isoformat(),
                             "latency_ms": float(rng.lognormal(5, 0.5)),
                             "country": str(rng.choice(["SE", "US", "BR"])),
                             "user_id": f"u{rng.integers(0, 500)}"}
                    assert emitter.emit(event)
                    self.sent.append(event)
                time.sleep(0.1)
            assert emitter.flush(timeout=60)

    def frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.sent)
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
        return frame


def register(store: SqlStore, name: str) -> int:
    """Register the app's ``name`` against the latest stored profile, in batch."""
    definition = store.register_metric(bind_stored_reference(mon.get(name), store))
    store.record_stage_change(name, definition.version, "batch", by="test", reason="e2e")
    return definition.version


def last_window(frame: pd.DataFrame) -> pd.Timestamp:
    latest = frame.ts.max().value
    return pd.Timestamp(latest - latest % WINDOW_NS, tz="UTC")


@pytest.fixture
def worker(tmp_path: Path, store: SqlStore, bootstrap: str, topic: str,
           postgres_url: str) -> Iterator[Worker]:
    new_topic(bootstrap, topic)
    store.save_profile(profile(1))
    for name in ("latency", "latency_psi"):
        register(store, name)
    running = Worker(tmp_path / "worker.log", database_url=postgres_url, bootstrap=bootstrap,
                     group=f"g-{topic}", app=APP, topics={"clicks": topic}, idle_timeout=2,
                     extra=WORKER_OPTIONS)
    yield running
    if running.process is not None:
        running.stop()


def start(worker: Worker, store: SqlStore, streaming: str) -> None:
    """Start ``worker`` with version 1 of ``streaming`` streamed from the first event."""
    store.record_stage_change(streaming, 1, "streaming", by="test", reason="e2e",
                              effective_from=EPOCH)
    worker.start()
    wait_for(lambda: bool(worker.owned_partitions()), 60, "the worker's partitions", [worker])


def test_a_promotion_and_a_refit_reach_a_running_worker(
    worker: Worker, store: SqlStore, bootstrap: str, topic: str
) -> None:
    """latency is promoted while the worker runs; latency_psi, streaming already, gets a
    new version from a refit of its reference. Each counts exactly from its boundary."""
    start(worker, store, streaming="latency_psi")
    with Producer(bootstrap, topic) as producer:
        time.sleep(6)
        promoted = change_stage(mon.get("latency"), "streaming", store, by="test",
                                reason="live promotion")
        refit = profile(2, 1.3)
        store.save_profile(refit)
        assert register(store, "latency_psi") == 2
        takeover = store.record_stage_change("latency_psi", 2, "streaming", by="test",
                                             reason="refit")
        promoted_from, takeover_from = promoted.effective_from, takeover.effective_from
        assert promoted_from is not None and takeover_from is not None
        wait_for(lambda: pd.Timestamp.now(tz="UTC") > max(
            pd.Timestamp(promoted_from), pd.Timestamp(takeover_from))
            + pd.Timedelta(seconds=12), 60, "the boundaries to pass")
    frame = producer.frame()
    last = last_window(frame)

    def closed() -> bool:
        latest = [stored(store, "latency", 1), stored(store, "latency_psi", 2)]
        return (all(len(v) and v.window_start.max() == last for v in latest)
                and open_partials(store, topic) == 0)

    wait_for(closed, 60, "every window to close", [worker])
    assert worker.alive
    latency = stored(store, "latency", 1)
    assert latency.window_start.min() == pd.Timestamp(promoted_from)
    pd.testing.assert_frame_equal(
        latency, research(mon.get("latency"), frame, since=promoted_from),
        check_exact=True, check_dtype=False)
    first, second = profile(1), refit
    pd.testing.assert_frame_equal(
        stored(store, "latency_psi", 1),
        research(bound("latency_psi", first), frame, until=takeover_from,
                 reference=first), check_exact=True, check_dtype=False)
    pd.testing.assert_frame_equal(
        stored(store, "latency_psi", 2),
        research(bound("latency_psi", second), frame, since=takeover_from,
                 reference=second), check_exact=True, check_dtype=False)
    log = worker.log_path.read_text(errors="replace")
    assert "latency_psi version 1 stopped" in log


def test_a_demotion_stops_a_running_worker_at_its_boundary(
    worker: Worker, store: SqlStore, bootstrap: str, topic: str
) -> None:
    start(worker, store, streaming="latency")
    with Producer(bootstrap, topic) as producer:
        time.sleep(6)
        demoted = change_stage(mon.get("latency"), "batch", store, by="test",
                               reason="live demotion")
        assert demoted.effective_from is not None
        end = pd.Timestamp(demoted.effective_from)
        wait_for(lambda: pd.Timestamp.now(tz="UTC") > end + pd.Timedelta(seconds=8), 60,
                 "the boundary to pass")
    frame = producer.frame()
    wait_for(lambda: "latency version 1 stopped" in worker.log_path.read_text(
        errors="replace"), 60, "the version to leave the worker", [worker])
    assert worker.alive
    values = stored(store, "latency", 1)
    assert values.window_start.max() == end - pd.Timedelta(WINDOW_NS, unit="ns")
    pd.testing.assert_frame_equal(values, research(mon.get("latency"), frame, until=end),
                                  check_exact=True, check_dtype=False)
    assert open_partials(store, topic) == 0
