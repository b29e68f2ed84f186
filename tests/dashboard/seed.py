"""A realistic results database for the dashboard tests: the example app's week through
the batch stage (alerts included), research and streaming twins of some metrics, an
estimate of performance beside its realized metrics
(:mod:`tests.dashboard.seed_performance`), dead letters, silences and alert deliveries
(sent, failed, silenced, pending).

Seeding takes a few seconds, so the tests build one SQLite file per session and only read
it: the dashboard never writes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import select, text, update

import metrics
from examples.music_home import mon, training_profile
from examples.music_home_events import (
    DEFAULT_START,
    click_outcomes,
    generate_events,
    generate_reference,
)
from monitor import Threshold
from monitor.alerts.dispatcher import Dispatcher
from monitor.alerts.ports import DeliveryError
from monitor.alerts.records import Notification
from monitor.alerts.silences import Silence
from monitor.batch.runner import BatchRunner
from monitor.engine import Engine
from monitor.lifecycle import bind_stored_reference
from monitor.spec import MetricSpec
from monitor.storage import alert_states, silences
from monitor.storage.alert_store import SqlDispatchStore
from monitor.storage.database import Database
from monitor.storage.dead_letters import write_dead_letters
from monitor.storage.migrate import upgrade
from monitor.storage.models import Base, MetricStateRow, table_of
from monitor.storage.outbox import DELIVERIES
from monitor.storage.records import DeadLetter, WindowResult, window_results
from monitor.storage.store import SqlStore
from monitor.targets import batch_targets
from tests.dashboard.seed_performance import seed_performance
from tests.frame_source import FrameSource

DAYS = 6  # every incident of the example week (the last starts at hour 132)
EVENTS_PER_HOUR = 300
START = DEFAULT_START
STREAM = mon.streams["home"]
RESEARCH_METRICS = ("latency", "ctr")  # stored as research too: parity on the metric page
STREAMING_METRIC = "latency"  # and streamed over the last two days
DEAD_LETTER_METRIC = "home.dead_letters"
# A drift report on discrete columns per country, in research: the drift page's point bins
# (a bin per value) and a decision corrected over columns and segments.
SEGMENTED_DRIFT = MetricSpec(
    "rank_drift", STREAM,
    metrics.drift_report(["fav_carousel_rank", "carousels_served", "device"], "training"),
    window="1h", segment_by=("country",), owner="home-personalization",
    description="Drift of the favourite carousel's rank, the carousels served and the "
                "device mix per country.")
# An assertion in batch with an alert rule: the assertions page's violations, examples and
# download; the latency spike makes it fire.
SLOW_VIEWS = MetricSpec(
    "slow_views", STREAM,
    metrics.assertion("latency_ms > 1500", id="view_id",
                      keep=("user_id", "device", "latency_ms"), k=20),
    window="1h", segment_by=("country",), owner="home-platform",
    alerts=(Threshold("violation_rate", above=0.02, name="slow views over 2%"),),
    description="Homepage views slower than 1.5 s, with the view's user, device and latency.")
# A dead letter whose payload looks like a secret: the secrets test checks it is masked.
PAYLOAD_WITH_TOKEN = '{"ts": "not a time", "note": "token=SEEDED-TOKEN-123"}'


@dataclass(frozen=True)
class Seeded:
    url: str
    metrics: tuple[str, ...]
    firing: tuple[str, ...]  # metrics with an alert still firing at the end


class FakeChannel:
    """Slack succeeds; email fails for good (a wrong recipient, say)."""

    def __init__(self, name: str, fail: bool) -> None:
        self.name = name
        self.fail = fail

    def send(self, key: str, notifications: Sequence[Notification]) -> None:
        if self.fail:
            raise DeliveryError("550 mailbox unavailable", transient=False)


def seed(url: str, *, days: int = DAYS) -> Seeded:
    """Migrate ``url`` and fill it with ``days`` of the example week."""
    upgrade(url)
    end = START + pd.Timedelta(days=days)
    now = (end + pd.Timedelta("5min")).to_pydatetime()
    events = generate_events(start=START, days=days, seed=5, events_per_hour=EVENTS_PER_HOUR)
    labels = click_outcomes(events, seed=5)
    labels = labels[labels["ts"] < pd.Timestamp(now)]  # the click outcomes landed by now
    events = _with_bad_rows(events)
    reference = generate_reference(start=START, seed=5, events_per_hour=EVENTS_PER_HOUR)
    profile = training_profile(reference)
    with SqlStore.open(url) as store:
        store.save_profile(profile, fitted_at=START.to_pydatetime())
        for spec in mon.metrics.values():
            version = store.register_metric(bind_stored_reference(spec, store),
                                            by="seed").version
            store.record_stage_change(spec.name, version, "batch", by="seed",
                                      reason="backtest over the example week")
        targets = {t.metric.name: t for t in batch_targets(mon, store)}
        BatchRunner(store, lambda m: FrameSource(events),
                    label_source_for=lambda s: FrameSource(labels)).run_many(
            list(targets.values()), since=START, until=end, now=pd.Timestamp(now))
        valid, _ = STREAM.schema.validate(events)
        for name in RESEARCH_METRICS:
            target = targets[name]
            _write_engine(store, target.metric, target.version, "research", valid)
        segmented = bind_stored_reference(SEGMENTED_DRIFT, store)
        _write_engine(store, segmented, store.register_metric(segmented, by="seed").version,
                      "research", valid)
        slow = store.register_metric(SLOW_VIEWS, by="seed").version
        store.record_stage_change(SLOW_VIEWS.name, slow, "batch", by="seed",
                                  reason="backtest over the example week")
        _write_engine(store, SLOW_VIEWS, slow, "batch", valid, evaluate_at=now)
        latest_start = end - pd.Timedelta("2D")  # streamed since then
        latest = valid[pd.to_datetime(valid["ts"], utc=True) >= latest_start]
        streamed = targets[STREAMING_METRIC]
        store.record_stage_change(STREAMING_METRIC, streamed.version, "streaming", by="seed",
                                  reason="parity with batch over two days",
                                  effective_from=latest_start.to_pydatetime())
        _write_engine(store, streamed.metric, streamed.version, "streaming", latest)
        performance = seed_performance(store)
        _dead_letters(store, end)
        _dispatch(store, now)
        with store.database.begin() as conn:
            silences.add_silence(conn, Silence(
                None, metric="ctr", labels={"country": "SE"},
                ends_at=now + timedelta(hours=6), reason="SE holiday traffic",
                created_by="oncall"), now - timedelta(hours=1))
        firing = sorted({a.key.metric for a in _firing(store)})
    return Seeded(url, (*mon.metrics, SEGMENTED_DRIFT.name, SLOW_VIEWS.name, *performance),
                  tuple(firing))


def _with_bad_rows(events: pd.DataFrame) -> pd.DataFrame:
    """A few rows the schema rejects, so the batch stage writes dead letters."""
    bad = events.sample(8, random_state=1).copy()
    latency, country = bad.columns.get_loc("latency_ms"), bad.columns.get_loc("country")
    assert isinstance(latency, int) and isinstance(country, int)  # the columns are unique
    bad.iloc[:4, latency] = np.inf
    bad.iloc[4:, country] = None
    return pd.concat([events, bad], ignore_index=True)


def _write_engine(store: SqlStore, metric: MetricSpec, version: int, stage: str,
                  events: pd.DataFrame, evaluate_at: datetime | None = None) -> None:
    engine = Engine([metric])
    engine.update(events)
    windows = window_results(metric, engine.partials)
    if evaluate_at is None:
        store.write_windows(metric.name, version, stage, windows)
    else:  # with its alert rules, as the batch stage stores windows
        store.write_windows_and_evaluate(metric, version, stage, windows, evaluate_at)


def _dead_letters(store: SqlStore, end: pd.Timestamp) -> None:
    """Streaming dead letters: samples in the table and counts as the stream's metric."""
    reasons = {"invalid JSON": 40, "unparseable timestamp in ts": 25, "oversized message": 3}
    letters = []
    windows = []
    for hour in range(24):
        start = (end - pd.Timedelta(hours=24 - hour)).to_pydatetime()
        counts = {reason: n * (1 + hour % 3) // 3 for reason, n in reasons.items()}
        for reason, count in counts.items():
            windows.append(WindowResult(f"reason={reason}", start, start + timedelta(hours=1),
                                        count, {"count": float(count)}))
            letters += [DeadLetter("stream:home-events", f"{reason}: sample {i}",
                                   '{"ts": 17, "user_id": "x"' if reason == "invalid JSON"
                                   else PAYLOAD_WITH_TOKEN,
                                   start + timedelta(minutes=i)) for i in range(min(count, 2))]
        windows.append(WindowResult("*", start, start + timedelta(hours=1),
                                    sum(counts.values()), {"count": float(sum(counts.values()))}))
    store.write_dead_letters(letters)
    store.write_windows(DEAD_LETTER_METRIC, 1, "streaming", windows)


def _dispatch(store: SqlStore, at: datetime) -> None:
    """Deliver what the batch stage queued: Slack accepts, email refuses."""
    channels = {"slack": FakeChannel("slack", fail=False), "email": FakeChannel("email", True)}
    now = [at]
    dispatcher = Dispatcher(SqlDispatchStore(store.database), channels, clock=lambda: now[0])
    for minutes in (1, 2):  # route, then send once the group wait has passed
        now[0] = at + timedelta(minutes=minutes)
        dispatcher.run_once()


def _firing(store: SqlStore) -> list[alert_states.StoredAlert]:
    with store.database.connect() as conn:
        return alert_states.active_alerts(conn, status=("firing",))


def copy_database(source_url: str, target_url: str) -> None:
    """Every table of a seeded database into a migrated, empty one: faster than seeding
    again. Ids are kept, and Postgres' id sequences moved past them."""
    with Database(source_url) as source, Database(target_url) as target, \
            source.connect() as read, target.begin() as write:
        for table in Base.metadata.sorted_tables:
            rows = [dict(row) for row in read.execute(table.select()).mappings()]
            for first in range(0, len(rows), 5_000):
                write.execute(table.insert(), rows[first:first + 5_000])
            if target.dialect == "postgresql" and "id" in table.c and rows:
                write.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', "
                                   f"'id'), (SELECT MAX(id) FROM {table.name}))"))


def plant_secrets(url: str, secrets: Sequence[str]) -> None:
    """Secrets in a delivery error, a dead letter and an assertion's sampled example, as
    a careless channel or producer might leave them."""
    with Database(url) as database, database.begin() as conn:
        conn.execute(update(DELIVERIES).where(DELIVERIES.c.status == "failed")
                     .values(last_error=f"POST {' '.join(secrets)} failed"))
        write_dead_letters(conn, [DeadLetter("stream:home-events", "invalid JSON: leaked",
                                             f'{{"password": "{secret}"}}')
                                  for secret in secrets])
        # and in a field an assertion keeps: the newest overall window's first example
        states = table_of(MetricStateRow)
        newest = next(row for row in conn.execute(
            select(states.c.window_start, states.c.state)
            .where(states.c.metric == SLOW_VIEWS.name, states.c.segment == "*")
            .order_by(states.c.window_start.desc())) if b'"device":' in bytes(row.state))
        planted = re.sub(rb'"device":"[^"]*"', f'"device":"{" ".join(secrets)}"'.encode(),
                         bytes(newest.state), count=1)
        conn.execute(update(states).where(states.c.metric == SLOW_VIEWS.name,
                                          states.c.segment == "*",
                                          states.c.window_start == newest.window_start)
                     .values(state=planted))
