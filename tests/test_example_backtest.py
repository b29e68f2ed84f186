"""The example app catches the incidents its generator injects, and only those.

A week of homepage events is generated into a temporary directory with the example's own
command line, then every metric of ``examples.music_home`` is backtested in the research
stage against the training reference. Each metric is owned by one incident: its alerts
must fire in that incident's segment, soon after it starts, and resolve when it ends;
no metric may alert in any other window or segment. The realized click AUC has no rule:
it is the labelled twin of the estimate, which alerts before the click outcomes are in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from examples.music_home import (
    FEATURE_SHIFT,
    INCIDENTS,
    LATENCY_SPIKE,
    MODEL_ROLLOUT,
    main,
    mon,
    training_profile,
)
from examples.music_home_events import CANARY_MODEL, DEFAULT_START, STABLE_MODEL, Incident
from metrics import ReferenceProfile
from monitor.alerts.rules import Threshold
from monitor.performance_pairs import performance_pairs
from monitor.research import backtest, evaluate
from monitor.sources.files import read_events

SEED = 7
DAYS = 7
# The alerts of each metric must come from this incident and from nowhere else.
OWNER = {
    "fav_rank": MODEL_ROLLOUT,
    "click_ndcg": MODEL_ROLLOUT,
    "ctr": MODEL_ROLLOUT,
    "latency": LATENCY_SPIKE,
    "score_psi": FEATURE_SHIFT,
    "click_auc_estimate": MODEL_ROLLOUT,
    "feature_drift": FEATURE_SHIFT,
    "session_null_rate": FEATURE_SHIFT,
    "fav_consistency": LATENCY_SPIKE,
    "home.in_set.fav_carousel": LATENCY_SPIKE,
    "home.expectations": LATENCY_SPIKE,
}
# Metrics without alert rules, each the realized value of an estimate that has them.
REALIZES = {"click_auc_realized": "click_auc_estimate"}
DETECTION_HOURS = 2  # every rule needs two breached windows; allow no more than that


@dataclass
class Week:
    events: pd.DataFrame
    reference: ReferenceProfile
    labels: pd.DataFrame
    data_path: Path
    reference_path: Path
    labels_path: Path


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> Week:
    folder = tmp_path_factory.mktemp("music_home")
    data, reference = folder / "home.jsonl", folder / "training.jsonl"
    labels = folder / "outcomes.jsonl"
    assert main(["--out", str(data), "--reference-out", str(reference),
                 "--labels-out", str(labels), "--days", str(DAYS), "--seed", str(SEED)]) == 0
    read, outcomes = read_events(data), read_events(labels)
    assert read.rejects.empty and outcomes.rejects.empty
    profile = training_profile(read_events(reference).events)
    return Week(read.events, profile, outcomes.events, data, reference, labels)


@pytest.fixture(scope="module")
def episodes(week: Week) -> dict[str, pd.DataFrame]:
    return {name: backtest(metric, week.events, week.reference,
                           labels=None if metric.labels is None else week.labels)
            for name, metric in mon.metrics.items()}


def _last_hour(incident: Incident) -> int:
    """The last hour (after the start) inside an incident that ends."""
    assert incident.end_hour is not None
    return incident.end_hour - 1


def hours_after_start(ts: pd.Timestamp) -> float:
    return float((ts - DEFAULT_START) / pd.Timedelta(hours=1))


def test_every_metric_is_owned_by_an_incident() -> None:
    assert set(OWNER) | set(REALIZES) == set(mon.metrics)
    assert {incident.name for incident in OWNER.values()} == {i.name for i in INCIDENTS}
    for metric in mon.metrics.values():
        assert metric.alerts or metric.name in REALIZES, f"{metric.name} has no alert rule"
        assert metric.owner and metric.description
    specs = {name: metric.to_dict() for name, metric in mon.metrics.items()}
    pairs = {(p.realized, p.estimate) for p in performance_pairs(specs)}
    assert set(REALIZES.items()) <= pairs
    assert not any(mon.get(name).alerts for name in REALIZES)


@pytest.mark.parametrize("name", sorted(OWNER))
def test_each_rule_fires_in_its_incident(name: str, episodes: dict[str, pd.DataFrame]) -> None:
    incident = OWNER[name]
    _, end = incident.window(DEFAULT_START)
    found = episodes[name]
    for rule in mon.get(name).alerts:
        mine = found[(found["rule"] == rule.title) & (found["segment"] == incident.segment)]
        assert len(mine) == 1, f"{name} / {rule.title}: expected one alert in " \
                               f"{incident.segment}, got\n{mine}"
        fired = mine.iloc[0]
        delay = hours_after_start(fired["fired_window_start"]) - incident.start_hour
        assert 0 <= delay <= DETECTION_HOURS - 1, f"{name} fired {delay}h into {incident.name}"
        if end is None:
            assert pd.isna(fired["resolved_window_start"]), "the shift lasts to the end"
        else:
            assert fired["resolved_window_start"] == end, f"{name} did not resolve at {end}"


@pytest.mark.parametrize("name", sorted(OWNER))
def test_no_alert_outside_its_incident(name: str, episodes: dict[str, pd.DataFrame]) -> None:
    incident = OWNER[name]
    rows = episodes[name].to_dict("records")
    outside = [row for row in rows if not _inside(row, incident)]
    assert not outside, f"{name} alerted outside {incident.name}:\n" + "\n".join(
        f"  {r['rule']} [{r['segment']}] fired {r['fired_window_start']} resolved "
        f"{r['resolved_window_start']} value {r['value']:.4g}" for r in outside
    )


def _inside(episode: Mapping[Any, Any], incident: Incident) -> bool:
    begin, end = incident.window(DEFAULT_START)
    fired, resolved = episode["fired_window_start"], episode["resolved_window_start"]
    if episode["segment"] != incident.segment or fired < begin:
        return False
    if end is None:
        return True
    return fired < end and not pd.isna(resolved) and resolved <= end


def test_every_segment_was_watched(week: Week) -> None:
    """Quiet segments are quiet because they were computed, not because they are missing."""
    values = evaluate(mon.get("fav_rank"), week.events)
    segments = set(values["segment"])
    assert segments == {"*", *(f"country={c}" for c in ("BR", "DE", "IN", "SE", "US"))}
    windows = values.groupby("segment")["window_start"].nunique()
    assert (windows == DAYS * 24).all()


def test_the_rank_regression_is_in_brazil_only(week: Week) -> None:
    values = evaluate(mon.get("fav_rank"), week.events)
    hours = (values["window_start"] - DEFAULT_START) / pd.Timedelta(hours=1)
    during = hours.between(MODEL_ROLLOUT.start_hour, _last_hour(MODEL_ROLLOUT))
    p50 = values[(values["field"] == "p50") & during].groupby("segment")["value"].median()
    assert p50["country=BR"] >= 4.5
    assert (p50.drop(["country=BR", "*"]) <= 2.5).all()
    canary = week.events[week.events["model_version"] == CANARY_MODEL]
    assert set(canary["country"]) == {"BR"}


def test_the_latency_spike_is_in_the_tail(week: Week) -> None:
    values = evaluate(mon.get("latency"), week.events)
    hours = (values["window_start"] - DEFAULT_START) / pd.Timedelta(hours=1)
    wide = values.assign(hour=hours).pivot(index="hour", columns="field", values="value")
    spike = wide.loc[LATENCY_SPIKE.start_hour : _last_hour(LATENCY_SPIKE)]
    before = wide.loc[LATENCY_SPIKE.start_hour - 4 : LATENCY_SPIKE.start_hour - 1]
    assert spike["p99"].min() > 3 * before["p99"].max()
    assert spike["p50"].median() < 1.1 * before["p50"].median()


def test_the_reference_is_training_data_without_incidents(week: Week) -> None:
    reference = read_events(week.reference_path).events
    times = pd.to_datetime(reference["ts"], utc=True)
    assert times.max() < DEFAULT_START
    assert set(reference["model_version"]) == {STABLE_MODEL}
    assert reference["session_length_s"].isna().mean() < 0.05


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_generator_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    small = ["--days", "2", "--events-per-hour", "200"]
    runs = {}
    for label, seed in (("a", 3), ("b", 3), ("c", 4)):
        out, ref = tmp_path / f"{label}.jsonl", tmp_path / f"{label}-ref.jsonl"
        main(["--out", str(out), "--reference-out", str(ref), "--seed", str(seed), *small])
        runs[label] = (_digest(out), _digest(ref))
    assert runs["a"] == runs["b"]
    assert runs["a"][0] != runs["c"][0] and runs["a"][1] != runs["c"][1]


def test_jsonl_csv_and_parquet_hold_the_same_events(tmp_path: Path) -> None:
    schema = mon.streams["home"].schema
    frames = []
    for suffix in (".jsonl", ".csv", ".parquet"):
        path = tmp_path / f"home{suffix}"
        main(["--out", str(path), "--days", "1", "--events-per-hour", "100", "--seed", "5"])
        read = read_events(path)
        clean, rejects = schema.validate(read.events)
        assert read.rejects.empty and rejects.empty, suffix
        frames.append(clean[list(schema.names)])
    for other in frames[1:]:
        pd.testing.assert_frame_equal(frames[0], other)


def test_the_estimate_fires_before_the_labels_confirm_it(week: Week) -> None:
    """The estimate fires at the end of the rollout's second hour. As of then, the click
    outcomes of that hour are still coming in (a view without a click is reported half an
    hour later): the realized AUC's window is not mature. An hour later both rollout hours
    are, and their realized AUC is under the estimate's threshold too."""
    begin, _ = MODEL_ROLLOUT.window(DEFAULT_START)
    second_hour_ends = begin + pd.Timedelta(hours=2)
    estimate = mon.get("click_auc_estimate")
    episodes = backtest(estimate, week.events, week.reference)
    fired = episodes[episodes["segment"] == MODEL_ROLLOUT.segment]["fired_window_start"]
    assert fired.tolist() == [begin + pd.Timedelta(hours=1)]
    [rule] = estimate.alerts
    assert isinstance(rule, Threshold) and rule.below is not None
    source = mon.get("click_auc_realized").labels
    assert source is not None

    def realized(as_of: pd.Timestamp) -> pd.DataFrame:
        viewed, landed = _times(week.events), _times(week.labels)
        values = evaluate(mon.get("click_auc_realized"), week.events[viewed < as_of],
                          labels=week.labels[landed < as_of])
        mine = values[(values["segment"] == MODEL_ROLLOUT.segment)
                      & (values["window_start"] >= begin)]
        return mine.pivot(index="window_start", columns="field", values="value")

    assert realized(second_hour_ends)["label_coverage"].iloc[-1] < source.mature_at
    confirmed = realized(second_hour_ends + pd.Timedelta(hours=1)).iloc[:2]
    assert (confirmed["label_coverage"] >= source.mature_at).all()
    assert (confirmed["auc"] < rule.below).all()


def _times(events: pd.DataFrame) -> pd.Series:
    return pd.to_datetime(events["ts"], utc=True)


def test_click_outcomes_arrive_late_and_some_never(week: Week) -> None:
    views = week.events[["view_id", "clicked"]].assign(viewed=_times(week.events))
    joined = week.labels.assign(landed=_times(week.labels)).merge(views, on="view_id")
    assert len(joined) == len(week.labels)  # every outcome is of a view
    assert (joined["click"] == joined["clicked"]).all()
    delay = (joined["landed"] - joined["viewed"]).dt.total_seconds()
    assert delay.min() > 0
    clicks = delay[joined["click"]]
    assert 60 < clicks.median() < 180 and clicks.quantile(0.99) > 600
    assert (delay[~joined["click"]] >= 1800).all()
    lost = 1 - len(week.labels) / len(week.events)
    assert 0.02 < lost < 0.04
