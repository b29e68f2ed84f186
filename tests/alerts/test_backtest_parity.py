"""The batch stage fires exactly the alerts the research backtest predicted.

A week of the example app's homepage events (with its injected incidents) is run
through the batch stage, day-long slice by slice, with alert evaluation in each slice's
transaction; the alert transitions stored are compared with ``monitor.research.backtest``
over the same events: same metric, rule, segment, firing window and resolving window.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from examples.music_home import mon, training_profile
from examples.music_home_events import (
    DEFAULT_START,
    click_outcomes,
    generate_events,
    generate_reference,
)
from metrics import ReferenceProfile
from monitor.batch.runner import BatchRunner
from monitor.lifecycle import bind_stored_reference
from monitor.research import backtest
from monitor.storage import alert_states, outbox
from monitor.storage.database import Database
from monitor.storage.store import SqlStore
from monitor.targets import batch_targets
from tests.frame_source import FrameSource

DAYS = 7
END = DEFAULT_START + pd.Timedelta(days=DAYS)
NOW = END + pd.Timedelta("5min")  # when batch runs: the click outcomes landed by then
STREAM = mon.streams["home"]


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    return generate_events(start=DEFAULT_START, days=DAYS, seed=7, events_per_hour=600)


@pytest.fixture(scope="module")
def labels(events: pd.DataFrame) -> pd.DataFrame:
    outcomes = click_outcomes(events, seed=7)
    return outcomes[outcomes["ts"] < NOW]


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    reference = generate_reference(start=DEFAULT_START, seed=7, events_per_hour=600)
    return training_profile(reference)


# (metric, rule, segment, fired window, resolved window or None, the firing text)
Episode = tuple[str, str, str, datetime, datetime | None, str]


@pytest.fixture(scope="module")
def predicted(events: pd.DataFrame, labels: pd.DataFrame, profile: ReferenceProfile
              ) -> set[Episode]:
    """Episodes (metric, rule, segment, fired window, resolved window, the firing text)
    of the backtest, as of when batch runs."""
    found: set[Episode] = set()
    for metric in mon.metrics.values():
        joined = metric.labels is not None
        for row in backtest(metric, events, profile, labels=labels if joined else None,
                            as_of=NOW if joined else None).to_dict("records"):
            resolved = row["resolved_window_start"]
            found.add((row["metric"], row["rule"], row["segment"],
                       row["fired_window_start"].to_pydatetime(),
                       None if pd.isna(resolved) else resolved.to_pydatetime(),
                       row["detail"]))
    return found


def fired(database: Database) -> set[Episode]:
    """Episodes (metric, rule, segment, fired window, resolved window, the firing text)
    from the stored transitions."""
    found: set[Episode] = set()
    with database.connect() as conn:
        for metric in mon.metrics:
            open_: dict[tuple[str, str], tuple[datetime, str]] = {}
            for event in alert_states.events_of(conn, metric, "batch"):
                alert = (event.key.rule, event.key.segment)
                if event.transition == "firing":
                    assert alert not in open_, f"{alert} fired twice in a row"
                    open_[alert] = (event.window_start, event.detail)
                elif event.transition == "resolved":
                    start, detail = open_.pop(alert)
                    found.add((metric, *alert, start, event.window_start, detail))
            found |= {(metric, *alert, start, None, detail)
                      for alert, (start, detail) in open_.items()}
    return found


def test_batch_fires_exactly_what_the_backtest_predicted(
    database: Database, events: pd.DataFrame, labels: pd.DataFrame,
    profile: ReferenceProfile, predicted: set[Episode],
) -> None:
    store = SqlStore(database)
    store.save_profile(profile)
    for spec in mon.metrics.values():
        version = store.register_metric(bind_stored_reference(spec, store)).version
        store.record_stage_change(spec.name, version, "batch", by="test", reason="parity")
    targets = batch_targets(mon, store)
    now = NOW
    source, outcomes = FrameSource(events), FrameSource(labels)
    BatchRunner(store, lambda m: source, label_source_for=lambda s: outcomes).run_many(
        targets, since=DEFAULT_START, until=END, now=now)

    expected = predicted
    # every metric with alert rules caught its incident
    assert {e[0] for e in expected} == {name for name, m in mon.metrics.items() if m.alerts}
    assert fired(database) == expected

    # announced: firings on windows of the last day, and their resolutions; an alert that
    # fired before that and is still firing is announced once, on the last window
    with database.connect() as conn:
        queued = {(n.alert.metric, n.alert.rule, n.alert.segment, n.kind, n.window_start)
                  for _, n in outbox.unrouted(conn)}
    recent = now.to_pydatetime() - timedelta(days=1)
    last_window = (END - pd.Timedelta("1h")).to_pydatetime()
    wanted = set()
    for metric, rule, segment, fired_at, resolved_at, _ in expected:
        if fired_at + timedelta(hours=1) >= recent:
            wanted.add((metric, rule, segment, "firing", fired_at))
            if resolved_at is not None:
                wanted.add((metric, rule, segment, "resolved", resolved_at))
        elif resolved_at is None:
            wanted.add((metric, rule, segment, "firing", last_window))
    assert queued == wanted
    assert any(w[4] == last_window for w in wanted)  # the feature shift, announced late

    # recomputing the last days (with the incident still on) fires nothing more
    BatchRunner(store, lambda m: source, label_source_for=lambda s: outcomes).run_many(
        targets, since=END - pd.Timedelta("2D"), until=END, now=now)
    assert fired(database) == expected
