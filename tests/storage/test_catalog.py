"""Metric versions, stage history, reference profiles, batch runs and dead letters."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import insert, update

from metrics.drift import ReferenceProfile
from monitor import Threshold
from monitor.batch.runner import watermark
from monitor.lifecycle import metric_status
from monitor.spec import MetricSpec
from monitor.storage.definitions import DEFINITIONS
from monitor.storage.models import ERROR_CHARS, PAYLOAD_EXCERPT_CHARS
from monitor.storage.records import DeadLetter
from monitor.storage.runs import RUNS, finish_runs
from monitor.storage.store import SqlStore
from monitor.targets import target
from tests.storage.helpers import HOUR, STREAM, T0, latency_spec


def test_the_same_spec_keeps_its_version_and_a_changed_one_gets_the_next(
    store: SqlStore,
) -> None:
    first = store.register_metric(latency_spec())
    assert (first.version, first.stage, first.spec_id) == (1, "research", latency_spec().id)
    assert store.register_metric(latency_spec()) == first

    changed = store.register_metric(latency_spec(window="15m"))
    assert changed.version == 2 and changed.window == "15m"
    assert store.current_definition("latency") == changed
    assert store.register_metric(latency_spec()).version == 3  # going back is a change too
    assert [d.version for d in store.list_definitions()] == [3]
    assert store.current_definition("nope") is None


def test_owner_and_description_edits_stay_in_the_version(store: SqlStore) -> None:
    store.register_metric(latency_spec())
    edited = store.register_metric(latency_spec(owner="search", description="p99 matters"))
    assert (edited.version, edited.owner, edited.description) == (1, "search", "p99 matters")
    assert store.current_definition("latency") == edited


def test_the_spec_json_is_kept(store: SqlStore) -> None:
    spec = latency_spec()
    store.register_metric(spec)
    stored = store.current_definition("latency")
    assert stored is not None and stored.spec == spec.to_dict()


def stored_as_older_releases_did(store: SqlStore, spec_id: str) -> None:
    """The registered version of ``latency`` in batch, under ``spec_id``."""
    store.register_metric(latency_spec())
    store.record_stage_change("latency", 1, "batch", by="ana", reason="backtest caught INC-7")
    with store.database.begin() as conn:
        conn.execute(update(DEFINITIONS).values(spec_id=spec_id))


MEETINGS: dict[str, Callable[[SqlStore, MetricSpec], object]] = {
    "a research run": lambda store, spec: store.register_metric(spec),
    "the batch and streaming stages": lambda store, spec: target(spec, store),
    "promotion and metrics list": lambda store, spec: metric_status(spec, store),
}


@pytest.mark.parametrize("meeting", MEETINGS)
def test_a_version_stored_under_the_legacy_id_is_adopted_with_its_stage(
    store: SqlStore, meeting: str
) -> None:
    spec = latency_spec()
    stored_as_older_releases_did(store, spec.legacy_id)
    assert spec.legacy_id != spec.id

    MEETINGS[meeting](store, spec)
    adopted = store.current_definition("latency")
    assert adopted is not None
    assert (adopted.version, adopted.stage, adopted.spec_id) == (1, "batch", spec.id)
    assert len(store.stage_history("latency")) == 2  # registered, promoted: nothing new
    assert target(spec, store).version == 1
    assert store.register_metric(spec).version == 1


def test_another_definitions_legacy_id_is_not_adopted(store: SqlStore) -> None:
    stored_as_older_releases_did(store, latency_spec(window="15m").legacy_id)
    assert store.register_metric(latency_spec()).version == 2


def test_edits_outside_the_id_reach_the_stored_version_and_keep_its_stage(
    store: SqlStore,
) -> None:
    store.register_metric(latency_spec())
    store.record_stage_change("latency", 1, "batch", by="ana", reason="backtest caught INC-7")
    edited = dataclasses.replace(
        latency_spec(owner="search", description="p99 is what users feel"),
        stream=dataclasses.replace(STREAM, topic="home-events-v2", table="home_2026"),
        alerts=(Threshold(field="p99", above=800),))

    running = target(edited, store)
    assert running.version == 1
    assert running.metric.alerts == edited.alerts  # what batch and streaming evaluate
    stored = store.current_definition("latency")
    assert stored is not None and (stored.version, stored.stage) == (1, "batch")
    assert (stored.owner, stored.description) == ("search", "p99 is what users feel")
    assert stored.spec == edited.to_dict()  # the dashboard draws the rules from it
    alerts = stored.spec["alerts"]
    assert isinstance(alerts, (list, tuple)) and alerts[0]["above"] == 800


def test_stage_changes_are_recorded_in_order(store: SqlStore) -> None:
    store.register_metric(latency_spec())
    store.record_stage_change("latency", 1, "batch", by="ana", reason="backtest caught INC-7")
    store.record_stage_change("latency", 1, "streaming", by="ana", reason="alerts within 1m")
    store.record_stage_change("latency", 1, "batch", by="bo", reason="too noisy at 1m")
    store.register_metric(latency_spec(window="15m"), stage="batch", by="bo")

    history = store.stage_history("latency")
    assert [(c.version, c.from_stage, c.to_stage, c.by) for c in history] == [
        (1, None, "research", "monitor"),
        (1, "research", "batch", "ana"),
        (1, "batch", "streaming", "ana"),
        (1, "streaming", "batch", "bo"),
        (2, None, "batch", "bo"),
    ]
    assert history[-1].reason.startswith("registered version 2: spec changed")
    assert all(c.at.tzname() == "UTC" for c in history)
    current = store.current_definition("latency")
    assert current is not None and current.stage == "batch"


def test_bad_stage_changes_say_what_is_wrong(store: SqlStore) -> None:
    store.register_metric(latency_spec())
    with pytest.raises(LookupError, match="'latency' has no version 5; its versions are 1"):
        store.record_stage_change("latency", 5, "batch", by="ana", reason="x")
    with pytest.raises(LookupError, match="not registered"):
        store.record_stage_change("other", 1, "batch", by="ana", reason="x")
    with pytest.raises(ValueError, match="already in stage 'research'"):
        store.record_stage_change("latency", 1, "research", by="ana", reason="x")
    with pytest.raises(ValueError, match="unknown stage 'prod'"):
        store.record_stage_change("latency", 1, "prod", by="ana", reason="x")
    with pytest.raises(ValueError, match="needs a reason"):
        store.record_stage_change("latency", 1, "batch", by="ana", reason=" ")
    assert len(store.stage_history("latency")) == 1


def profile(scale: float = 1.0) -> ReferenceProfile:
    frame = pd.DataFrame({"latency_ms": [10.0 * scale, 20.0, 1 / 3, 1e150, -0.0],
                          "country": ["SE", "US", "SE", None, "DE"]})
    return ReferenceProfile.fit(frame, name="training", bins=3)


def test_profiles_round_trip_and_the_latest_fit_wins(store: SqlStore) -> None:
    old, new = profile(), profile(scale=1.5)
    store.save_profile(old, fitted_at=T0)
    store.save_profile(new, fitted_at=T0 + HOUR)
    store.save_profile(old, fitted_at=T0 + 2 * HOUR)  # already stored: nothing changes

    assert store.load_profile("training") == new
    loaded = store.load_profile("training", old.id)
    assert loaded == old and loaded.to_json() == old.to_json()
    with pytest.raises(LookupError, match="no reference profile 'serving'"):
        store.load_profile("serving")


def test_batch_runs_are_recorded(store: SqlStore) -> None:
    ok = store.start_run("latency", 1, T0, T0 + 3 * HOUR)
    failed = store.start_run("latency", 1, T0 + 3 * HOUR, T0 + 4 * HOUR)
    store.finish_run(ok, status="succeeded", rows_read=1200, windows_written=3)
    store.finish_run(failed, status="failed", rows_read=10, windows_written=0,
                     error="KeyError: 'latency_ms'\n" + "x" * (2 * ERROR_CHARS))

    runs = store.recent_runs("latency")
    assert [(r.id, r.status, r.rows_read, r.windows_written) for r in runs] == [
        (failed, "failed", 10, 0), (ok, "succeeded", 1200, 3)]
    error = runs[0].error
    assert error is not None and len(error) == ERROR_CHARS and error.startswith("KeyError")
    assert runs[1].window_end - runs[1].window_start == 3 * HOUR
    assert runs[1].finished_at is not None and runs[1].finished_at >= runs[1].started_at
    with pytest.raises(ValueError, match="succeeded or failed"):
        store.finish_run(ok, status="done", rows_read=0, windows_written=0)
    with pytest.raises(LookupError, match="no batch run"):
        store.finish_run(10**9, status="failed", rows_read=0, windows_written=0)


def test_the_runs_of_a_slice_start_in_order_and_finish_in_one_statement(
        store: SqlStore) -> None:
    metrics = [("ctr", 2), ("latency", 1), ("aaa", 3)]
    ids = store.start_runs(metrics, T0, T0 + 3 * HOUR)
    runs = {r.id: r for r in store.recent_runs(limit=10)}
    assert [(runs[i].metric, runs[i].metric_version, runs[i].status) for i in ids] == [
        (metric, version, "running") for metric, version in metrics]
    assert store.start_runs([], T0, T0 + HOUR) == []
    with store.database.begin() as conn:
        finish_runs(conn, {ids[0]: 3, ids[1]: 2}, status="succeeded", rows_read=50)
        finish_runs(conn, {ids[0]: 0, ids[2]: 1}, status="failed", rows_read=0, error="late")
    runs = {r.id: r for r in store.recent_runs(limit=10)}
    assert [(runs[i].status, runs[i].rows_read, runs[i].windows_written) for i in ids] == [
        ("succeeded", 50, 3), ("succeeded", 50, 2), ("failed", 0, 1)]
    with pytest.raises(LookupError, match="no batch run with id 1000000000"), \
            store.database.begin() as conn:
        finish_runs(conn, {ids[2]: 1, 10**9: 1}, status="failed", rows_read=0)


def test_the_watermark_survives_more_than_a_thousand_newer_runs(store: SqlStore) -> None:
    done = store.start_run("latency", 1, T0, T0 + 3 * HOUR)
    store.finish_run(done, status="succeeded", rows_read=1200, windows_written=3)
    later = datetime.now(UTC) + timedelta(minutes=1)  # after the success started
    newer = [{"metric": "latency", "metric_version": version, "window_start": T0 + 3 * HOUR,
              "window_end": T0 + (4 + i) * HOUR, "status": status, "rows_read": 0,
              "windows_written": 0, "error": None, "started_at": later + i * HOUR,
              "finished_at": later + i * HOUR}
             for i, (version, status) in enumerate([(1, "failed"), (1, "running"),
                                                    (2, "succeeded")] * 334)]
    with store.database.begin() as conn:
        conn.execute(insert(RUNS), newer)
    assert len(store.recent_runs("latency", limit=2000)) == 1 + 1002

    assert watermark(store, "latency", 1) == pd.Timestamp(T0 + 3 * HOUR)
    assert watermark(store, "latency", 2) == pd.Timestamp(T0 + (4 + 1001) * HOUR)
    assert watermark(store, "latency", 3) is None
    assert watermark(store, "other", 1) is None


def test_dead_letters_keep_a_bounded_excerpt(store: SqlStore) -> None:
    huge = '{"ts": "not a time", "blob": "' + "x" * 50_000 + '"}'
    written = store.write_dead_letters([
        DeadLetter("home-events", "unparseable timestamp in 'ts'", huge),
        DeadLetter("home-events", "not JSON", b"\xff\xfe garbage", T0),
    ])
    assert written == 2
    latest, oldest = store.recent_dead_letters("home-events")
    assert isinstance(latest.payload, str)
    assert len(latest.payload) == PAYLOAD_EXCERPT_CHARS and latest.payload.endswith("…")
    assert latest.payload.startswith('{"ts": "not a time"')
    assert oldest.payload == "\ufffd\ufffd garbage" and oldest.created_at == T0
    assert latest.created_at is not None and latest.created_at - T0 > timedelta(0)


def test_changes_into_and_out_of_streaming_record_their_boundary(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first window after the deployment's lead, or one given; a takeover's boundary
    starts a window of both versions."""
    monkeypatch.setenv("MONITOR_SWITCH_LEAD", "20m")
    store.register_metric(latency_spec(window="1h"))
    store.record_stage_change("latency", 1, "batch", by="ana", reason="r")
    promoted = store.record_stage_change("latency", 1, "streaming", by="ana", reason="r")
    expected = (pd.Timestamp(promoted.at) + pd.Timedelta("20min")).ceil("1h")
    assert promoted.effective_from == expected.to_pydatetime()
    assert store.stage_history("latency")[-1].effective_from == promoted.effective_from
    assert store.stage_history("latency")[1].effective_from is None  # research -> batch

    store.register_metric(latency_spec(window="1d"), stage="batch", by="bo")
    with pytest.raises(ValueError, match="window boundary"):  # not a day's start
        store.record_stage_change("latency", 2, "streaming", by="bo", reason="r",
                                  effective_from=T0 + HOUR)
    takeover = store.record_stage_change("latency", 2, "streaming", by="bo", reason="r")
    expected = (pd.Timestamp(takeover.at) + pd.Timedelta("20min")).ceil("1D")
    assert takeover.effective_from == expected.to_pydatetime()
    demoted = store.record_stage_change("latency", 2, "batch", by="bo", reason="r",
                                        effective_from=T0)
    assert demoted.effective_from == T0


def test_a_change_into_streaming_too_slow_to_record_is_refused(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Workers count on seeing a change within COMMIT_WITHIN of the time it records; one
    that took longer (a slow or locked database) changes nothing and says to try again."""
    from monitor.storage import definitions

    store.register_metric(latency_spec(window="1h"))
    store.record_stage_change("latency", 1, "batch", by="ana", reason="r")
    clock = iter([T0, T0 + timedelta(seconds=1.5)])
    monkeypatch.setattr(definitions, "utc_now", lambda: next(clock))
    with pytest.raises(definitions.StageChangeTooSlow, match=r"took 1\.5 s.*try again"):
        store.record_stage_change("latency", 1, "streaming", by="ana", reason="r")
    assert [c.to_stage for c in store.stage_history("latency")] == ["research", "batch"]
    current = store.current_definition("latency")
    assert current is not None and current.stage == "batch"
    clock = iter([T0, T0 + timedelta(seconds=0.5)])
    assert store.record_stage_change("latency", 1, "streaming", by="ana",
                                     reason="r").to_stage == "streaming"
