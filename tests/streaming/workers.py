"""Running real ``monitor stream worker`` processes against the session's broker, and
what the end-to-end streaming tests share: promotion to streaming, replays, waiting."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from examples.music_home import mon, training_profile
from examples.music_home_events import DEFAULT_START, generate_reference
from monitor import Monitor
from monitor.lifecycle import bind_stored_reference
from monitor.research import evaluate
from monitor.stage_switch import EPOCH
from monitor.storage.database import Database
from monitor.storage.models import Base
from monitor.storage.store import SqlStore
from monitor.targets import Target, batch_targets
from streaming.broker import create_topics
from streaming.codec import event_dicts
from streaming.emitter import Emitter

MONITOR = str(Path(sys.executable).with_name("monitor"))
APP = "examples.music_home:mon"
STREAM = mon.streams["home"]
PARTITIONS = 4


def promote_to_streaming(store: SqlStore, profile: Any, app: Monitor = mon) -> list[Target]:
    """Register every metric of ``app`` (the example app's by default), bound to
    ``profile``, and move it to streaming; one joined to labels stays in batch, as
    promotion insists (the streaming stage does not join labels yet)."""
    store.save_profile(profile)
    for spec in app.metrics.values():
        definition = store.register_metric(bind_stored_reference(spec, store))
        stages = ("batch",) if spec.labels is not None else ("batch", "streaming")
        for stage in stages:
            store.record_stage_change(spec.name, definition.version, stage, by="test",
                                      reason="streaming test", effective_from=EPOCH)
    return batch_targets(app, store, stages=("streaming",))


def example_profile(seed: int, events_per_hour: float = 300) -> Any:
    """A reference profile of the example app's homepage events, as a test fits it."""
    reference = generate_reference(start=DEFAULT_START, seed=seed,
                                   events_per_hour=events_per_hour)
    return training_profile(reference)


@contextmanager
def emptied_store(url: str) -> Iterator[SqlStore]:
    """A store on the database at ``url``, every table emptied first."""
    with Database(url) as database, database.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    with SqlStore.open(url) as store:
        yield store


def send(bootstrap: str, topic: str, events: Iterable[dict[str, Any]], *,
         batch: int = 20) -> None:
    """Events keyed by user, as a model service's emitter would send them."""
    with Emitter(bootstrap, topic, key_field="user_id", max_batch_events=batch,
                 block_ms=60_000, exit_timeout_s=None) as emitter:
        for event in events:
            assert emitter.emit(event)
        assert emitter.flush(timeout=60)
    assert emitter.stats().failed == 0


def new_topic(bootstrap: str, topic: str) -> None:
    create_topics(bootstrap, {topic: PARTITIONS})


class Worker:
    """A ``monitor stream worker`` subprocess logging to a file."""

    def __init__(self, log: Path, *, database_url: str, bootstrap: str, group: str,
                 topic: str | None = None, idle_timeout: float = 4.0,
                 extra: Iterable[str] = (), app: str = APP,
                 topics: dict[str, str] | None = None) -> None:
        """``topic`` is the example app's stream's; ``topics`` maps streams of ``app`` to
        the topics of the test instead."""
        self.log_path = log
        overrides = topics if topics is not None else {"home": str(topic)}
        self.command = [
            MONITOR, "--app", app, "stream", "worker", "--database-url", database_url,
            "--bootstrap", bootstrap, "--group", group,
            *[arg for name, t in overrides.items() for arg in ("--topic", f"{name}={t}")],
            "--idle-timeout", str(idle_timeout), "--session-timeout", "6",
            "--loglevel", "info", *extra]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to store anything or leave the group."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the worker alone (as a service manager's SIGTERM would)."""
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None if it is still running after ``timeout`` seconds."""
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 30.0) -> int:
        """Ctrl-C, as a user would; the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
                raise AssertionError(
                    f"worker did not stop within {timeout} s:\n{self.tail()}") from None
        return self.process.returncode

    def tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def owned_partitions(self) -> list[list[int]]:
        """Every assignment the worker logged, in order."""
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if "this worker owns partitions" in line:
                listed = line.split("owns partitions", 1)[1].strip().strip("[] ")
                found.append([int(p) for p in listed.split(",") if p.strip()])
        return found


def wait_for(condition: Callable[[], bool], timeout: float, what: str,
             workers: Iterable[Worker] = ()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    logs = "\n---\n".join(w.tail() for w in workers)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{logs}")


def absorbed_events(store: SqlStore, topic: str) -> int:
    with store.database.connect() as conn:
        total = conn.exec_driver_sql(
            "SELECT COALESCE(SUM(events), 0) FROM stream_checkpoints WHERE topic = "
            f"'{topic}'").scalar()
    return int(total or 0)


def open_partials(store: SqlStore, topic: str) -> int:
    with store.database.connect() as conn:
        count = conn.exec_driver_sql(
            f"SELECT COUNT(*) FROM stream_partials WHERE topic = '{topic}'").scalar()
    return int(count or 0)


def settled(store: SqlStore, topic: str, events: int, expected: dict[str, pd.DataFrame]
            ) -> Callable[[], bool]:
    """A condition: every event absorbed, every window stored, nothing left open."""
    return lambda: (absorbed_events(store, topic) >= events and all_stored(store, expected)
                    and open_partials(store, topic) == 0)


def expected_values(targets: list[Target], events: pd.DataFrame, profile: Any
                    ) -> dict[str, pd.DataFrame]:
    return {t.metric.name: evaluate(t.metric, events, reference=profile).drop(columns="stage")
            for t in targets}


def streaming_values(store: SqlStore, metric: str) -> pd.DataFrame:
    values = store.read_values(metric=metric, stage="streaming", limit=None)
    return values.drop(columns="stage").reset_index(drop=True)


def all_stored(store: SqlStore, expected: dict[str, pd.DataFrame]) -> bool:
    return all(len(streaming_values(store, name)) >= len(frame)
               for name, frame in expected.items())


def assert_same_values(store: SqlStore, expected: dict[str, pd.DataFrame]) -> None:
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(streaming_values(store, name), frame, check_exact=True,
                                      check_dtype=False, obj=f"streaming values of {name}")


def example_event_dicts(events: pd.DataFrame) -> list[dict[str, Any]]:
    return list(event_dicts(events))
