"""Rules that take the window's count into account, without I/O: min_count and its effect
on pending, firing and history; breaches beyond noise (exact bounds, Fisher's test) and
what they say; seasonal baselines; serialization; fit to the metric at registration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import stats

import metrics
from monitor.alerts.fit import rule_problem
from monitor.alerts.lifecycle import AlertState, step
from monitor.alerts.rules import Anomaly, Change, Check, Point, Threshold, rule_from_dict
from monitor.alerts.walk import Position, Step, Window, walk

T0 = datetime(2026, 3, 2, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def windows(values: list[float], counts: list[int]) -> list[Window]:
    return [(T0 + i * HOUR, T0 + (i + 1) * HOUR, v, n)
            for i, (v, n) in enumerate(zip(values, counts, strict=True))]


def transitions(rule: Threshold | Change | Anomaly, values: list[float], counts: list[int]
                ) -> list[tuple[int, str]]:
    walked = walk(rule, Position(), [], windows(values, counts))
    return [(int((s.window_start - T0) / HOUR), s.transition) for s in walked.steps]


# -- min_count ---------------------------------------------------------------------------

def test_a_window_under_min_count_is_not_judged() -> None:
    rule = Threshold("rate", below=0.18, min_count=50)
    small = rule.check([], 0.05, count=49)
    assert not small.breached and not small.judged
    assert small.detail == "49 events, fewer than min_count 50: not judged"
    assert rule.check([], 0.05, count=50).breached
    assert not rule.check([], 0.05).judged  # a count nobody knows is not enough either


def test_under_min_count_a_pending_alert_keeps_its_count_and_a_firing_one_keeps_firing(
) -> None:
    """A small window is as if it were missing: it neither breaches nor clears, so a quiet
    hour inside an incident neither resolves it (and pages again next hour) nor starts one."""
    rule = Threshold("rate", below=0.18, for_windows=2, min_count=50)
    held = [0.10, 0.10, 0.10, 0.30, 0.30, 0.10]
    # breach, small, breach: the second breach in a row fires; a small clean window does
    # not resolve, the next clean one does
    assert transitions(rule, held, [400, 10, 400, 10, 400, 400]) == [
        (0, "pending"), (2, "firing"), (4, "resolved"), (5, "pending")]
    # a small window after a clean one does not start anything, and one inside a pending
    # stretch neither clears it nor counts
    assert transitions(rule, [0.30, 0.10, 0.10, 0.30], [400, 10, 400, 400]) == [
        (2, "pending"), (3, "cleared")]
    # without min_count the small windows count: the flap clears, the quiet hour resolves
    plain = Threshold("rate", below=0.18, for_windows=2)
    assert transitions(plain, held, [400, 10, 400, 10, 400, 400]) == [
        (0, "pending"), (1, "firing"), (3, "resolved"), (5, "pending")]


def test_lifecycle_holds_on_a_window_it_did_not_judge() -> None:
    unjudged = Check(False, float("nan"), "", judged=False)
    for state in (AlertState(), AlertState("pending", 1), AlertState("firing", 4)):
        assert step(state, unjudged, for_windows=2) == (state, None)


def test_small_windows_are_left_out_of_the_history() -> None:
    rule = Change("rate", relative=0.5, baseline_windows=3, min_count=100)
    history = [Point(None, 0.30, 500), Point(None, 0.01, 5), Point(None, 0.32, 500),
               Point(None, 0.31, 500)]
    check = rule.judge(history, Point(None, 0.31, 500))
    assert not check.breached and "median 0.31" in check.detail
    # the small window is skipped, not counted as one of the three
    assert rule.judge(history[:3], Point(None, 0.31, 500)).detail == "not enough history"


def test_walking_with_min_count_in_pieces_equals_walking_at_once() -> None:
    rule = Change("rate", relative=0.3, baseline_windows=4, for_windows=2, min_count=50)
    rng = np.random.default_rng(1)
    values = list(0.3 + rng.normal(0, 0.02, 40))
    values[20:24] = [0.6] * 4
    counts = [int(c) for c in rng.choice([10, 200, 400], size=40)]
    series = windows(values, counts)
    whole = walk(rule, Position(), [], series)
    position = Position()
    steps: list[Step] = []
    for i in range(0, len(series), 3):
        history = [Point(s, v, n) for s, _, v, n in series[:i]]  # what the store gives
        piece = walk(rule, position, history, series[i:i + 3])
        position, steps = piece.position, steps + piece.steps
    assert steps == whole.steps and position == whole.position
    assert any(s.transition == "firing" for s in whole.steps)


# -- beyond noise: thresholds -------------------------------------------------------------

@pytest.mark.parametrize("n", [50, 180, 1000, 10_000])
def test_a_significant_threshold_uses_the_exact_binomial_bound(n: int) -> None:
    rule = Threshold("rate", above=0.05, confidence=0.99)
    for hits in range(0, n // 5, max(1, n // 400)):
        check = rule.check([], hits / n, count=n)
        if hits / n <= 0.05:
            assert not check.breached
            continue
        # scipy's two-sided 98% exact interval has the one-sided 99% bounds at its ends
        low = stats.binomtest(hits, n).proportion_ci(0.98, method="exact").low
        assert check.breached == (low > 0.05), (hits, n, check.detail)
        p_value = stats.binomtest(hits, n, 0.05, alternative="greater").pvalue
        assert check.breached == (p_value < 0.01)


def test_a_breach_beyond_noise_says_n_the_bound_and_the_false_alarm_rate() -> None:
    rule = Threshold("rate", above=0.05, confidence=0.99)
    fired = rule.check([], 30 / 180, count=180)
    assert fired.breached and fired.bound == 0.05
    low = stats.binomtest(30, 180).proportion_ci(0.98, "exact").low
    assert fired.detail == (f"0.166667 > 0.05 beyond noise at n = 180: 99% lower bound "
                            f"{low:.4g} > 0.05 (false alarms <= 1%)")
    quiet = rule.check([], 15 / 180, count=180)  # 8.3%: could be 5% by chance
    assert not quiet.breached and not quiet.judged  # could be either: the alert holds
    assert quiet.detail == ("0.0833333 > 0.05 but within noise at n = 180: 99% lower bound "
                            "0.04232 <= 0.05")
    below = Threshold("share", below=0.3, confidence=0.995).check([], 0.2, count=2000)
    assert below.breached and "99.5% upper bound 0.2" in below.detail
    assert below.detail.endswith("(false alarms <= 0.5%)")


def test_an_alert_fires_beyond_noise_and_resolves_back_within_bounds() -> None:
    """A window below the threshold but within noise neither fires nor resolves: an
    incident in a small segment does not flap whenever one hour has few events."""
    rule = Threshold("rate", below=0.18, confidence=0.99)
    values = [0.30, 0.14, 0.08, 0.12, 0.09, 0.16, 0.31, 0.15, 0.05]
    counts = [100, 100, 200, 40, 200, 300, 100, 100, 100]
    assert [rule.check([], v, count=n).judged for v, n in zip(values, counts, strict=True)] \
        == [True, False, True, False, True, False, True, False, True]
    assert transitions(rule, values, counts) == [(2, "firing"), (6, "resolved"),
                                                 (8, "firing")]
    plain = Threshold("rate", below=0.18)
    assert transitions(plain, values, counts) == [(1, "firing"), (6, "resolved"),
                                                  (7, "firing")]


def test_significance_needs_a_count_and_a_proportion() -> None:
    rule = Threshold("rate", above=0.05, confidence=0.99)
    unknown = rule.check([], 0.5)
    assert not unknown.judged and "count is unknown" in unknown.detail
    odd = rule.check([], 7.0, count=100)
    assert not odd.judged and "7 is not a proportion of the window's 100 events" in odd.detail
    assert not rule.check([], float("nan"), count=100).breached


def test_the_hits_behind_a_rate_are_recovered_from_value_and_count() -> None:
    rule = Threshold("rate", above=0.3, confidence=0.99)
    for n in (3, 7, 179, 1001):
        for hits in range(n + 1):
            value = hits / n
            bound = stats.binomtest(hits, n).proportion_ci(0.98, "exact").low if hits else 0
            assert rule.check([], value, count=n).breached == (value > 0.3 and bound > 0.3)


# -- beyond noise: against a baseline -----------------------------------------------------

def test_a_change_beyond_noise_uses_fishers_exact_test_against_the_pooled_baseline() -> None:
    rule = Change("rate", relative=0.2, baseline_windows=4, direction="up", confidence=0.99)
    history = [Point(None, h / 500, 500) for h in (150, 160, 155, 145)]  # pooled 610/2000
    for hits, n in ((25, 60), (50, 120), (200, 500), (420, 1000)):
        check = rule.judge(history, Point(None, hits / n, n))
        p = stats.fisher_exact([[hits, n - hits], [610, 2000 - 610]],
                               alternative="greater").pvalue
        assert check.breached == (p <= 0.01), (hits, n, p, check.detail)
        assert f"p = {p:.2g}" in check.detail
    small = rule.judge(history, Point(None, 25 / 60, 60))  # +36%, but 60 events
    assert not small.breached and "within noise at n = 60 against 2000 baseline" in small.detail
    big = rule.judge(history, Point(None, 420 / 1000, 1000))
    assert big.breached and big.detail.endswith("(false alarms <= 1%)")


def test_both_directions_split_the_false_alarm_rate() -> None:
    history = [Point(None, 0.3, 1000)] * 4
    current = Point(None, 0.26, 1000)  # -13%: one-sided Fisher p about 0.007
    p = stats.fisher_exact([[260, 740], [1200, 2800]], alternative="less").pvalue
    assert 0.005 < p < 0.01
    down = Change("rate", relative=0.1, baseline_windows=4, direction="down", confidence=0.99)
    both = Change("rate", relative=0.1, baseline_windows=4, direction="both", confidence=0.99)
    assert down.judge(history, current).breached
    refused = both.judge(history, current)  # needs p <= 0.005
    assert not refused.breached and refused.detail.endswith(f"p = {p:.2g} > 0.005")
    wider = Change("rate", relative=0.1, baseline_windows=4, confidence=0.98)
    assert wider.judge(history, current).breached


def test_an_anomaly_beyond_noise_needs_more_than_the_history_spread() -> None:
    rng = np.random.default_rng(5)
    # big windows: the spread of their rates is small, so a small window looks odd
    history = [Point(None, float(v), 5000) for v in 0.3 + rng.normal(0, 0.005, 24)]
    plain = Anomaly("rate", z=4, history_windows=24)
    sure = Anomaly("rate", z=4, history_windows=24, confidence=0.99)
    small = Point(None, 0.4, 40)  # 16 of 40: what a 30% rate gives one time in ten
    assert plain.judge(history, small).breached
    assert not sure.judge(history, small).breached
    large = Point(None, 0.4, 4000)
    assert sure.judge(history, large).breached


# -- seasonal baselines -------------------------------------------------------------------

def daily(days: int, bump: dict[int, float] | None = None
          ) -> list[tuple[datetime, datetime, float, int]]:
    """Hourly rates with a daily cycle (0.1 at night, 0.4 in the evening), every window
    of 1000 events."""
    out = []
    for h in range(days * 24):
        value = 0.25 + 0.15 * np.sin(2 * np.pi * (h % 24 - 12) / 24)
        value *= (bump or {}).get(h, 1.0)
        start = T0 + h * HOUR
        out.append((start, start + HOUR, float(value), 1000))
    return out


def test_a_seasonal_change_compares_with_the_same_hour_of_previous_days() -> None:
    positional = Change("rate", relative=0.25, baseline_windows=4)
    seasonal = Change("rate", relative=0.25, season="1d", seasons=4)
    quiet = daily(8)
    assert walk(positional, Position(), [], quiet).steps  # the daily cycle alone fires
    assert walk(seasonal, Position(), [], quiet).steps == []
    incident = 6 * 24 + 20  # day 6, 20:00: down by half
    steps = walk(seasonal, Position(), [], daily(8, {incident: 0.5})).steps
    assert [(s.transition, s.window_start) for s in steps] == [
        ("firing", T0 + incident * HOUR), ("resolved", T0 + (incident + 1) * HOUR)]
    assert "against median" in steps[0].check.detail


def test_a_seasonal_baseline_takes_exactly_the_earlier_seasons() -> None:
    rule = Change("rate", relative=0.2, season="1d", seasons=3)
    now = T0 + 10 * DAY + 5 * HOUR
    history = [Point(now - k * DAY + off, 0.5 if off else 0.2, 100)
               for k in range(1, 6) for off in (-HOUR, timedelta(0), HOUR)]
    history.sort(key=lambda p: p.start or now)
    check = rule.judge(history, Point(now, 0.2, 100))
    assert not check.breached and "median 0.2" in check.detail  # neighbours ignored
    # two of three seasons missing: not enough; one missing: the median of the other two
    only_one = [p for p in history if p.start == now - DAY]
    assert rule.judge(only_one, Point(now, 0.9, 100)).detail == "not enough history"
    two = [p for p in history if p.start in (now - DAY, now - 3 * DAY)]
    assert rule.judge(two, Point(now, 0.9, 100)).breached


def test_a_weekly_anomaly_needs_min_history_seasons() -> None:
    rule = Anomaly("rate", z=3.5, season="7d", seasons=6, min_history=4)
    now = T0 + 50 * DAY
    rng = np.random.default_rng(2)
    history = [Point(now - k * timedelta(days=7), float(0.3 + rng.normal(0, 0.01)), 500)
               for k in range(6, 0, -1)]
    assert rule.judge(history, Point(now, 0.5, 500)).breached
    assert not rule.judge(history, Point(now, 0.305, 500)).breached
    assert rule.judge(history[:3], Point(now, 0.5, 500)).detail == "not enough history"
    assert rule.history_span == timedelta(days=42) and rule.history_needed == 0


def test_a_seasonal_rule_walked_in_pieces_with_stored_history_equals_one_walk() -> None:
    rule = Anomaly("rate", z=3.0, season="1d", seasons=5, min_history=3, for_windows=1,
                   min_count=200)
    series = daily(9, {7 * 24 + 9: 1.6, 8 * 24 + 3: 0.5})
    series = [(s, e, v, 100 if i % 17 == 0 else n) for i, (s, e, v, n) in enumerate(series)]
    whole = walk(rule, Position(), [], series)
    assert [s.transition for s in whole.steps].count("firing") == 2
    span = rule.history_span
    assert span is not None
    position = Position()
    steps: list[Step] = []
    for i in range(0, len(series), 7):
        first = series[i][0]
        stored = [Point(s, v, n) for s, _, v, n in series[:i]
                  if s >= first - span and n >= rule.min_count]  # what the store returns
        piece = walk(rule, position, stored, series[i:i + 7])
        position, steps = piece.position, steps + piece.steps
    assert steps == whole.steps and position == whole.position


def test_a_seasonal_rule_called_without_times_says_what_it_needs() -> None:
    with pytest.raises(ValueError, match="seasonal baseline needs the window's start"):
        Change("rate", season="1d").check([0.1, 0.2], 0.3)


# -- parameters, titles and serialization --------------------------------------------------

def test_bad_count_and_season_options_fail_early() -> None:
    with pytest.raises(ValueError, match="min_count must be a whole number"):
        Threshold("x", above=1, min_count=-1)
    with pytest.raises(ValueError, match="min_count must be a whole number"):
        Threshold("x", above=1, min_count=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"confidence must be between 0\.5 and 1"):
        Threshold("x", above=1, confidence=99)
    with pytest.raises(ValueError, match="season: bad duration 'daily'"):
        Change("x", season="daily")
    with pytest.raises(ValueError, match="season must be longer than zero"):
        Change("x", season="0d")
    with pytest.raises(ValueError, match="seasons must be a whole number"):
        Change("x", season="1d", seasons=0)
    with pytest.raises(ValueError, match="baseline_windows does not apply with season="):
        Change("x", season="1d", baseline_windows=7)
    with pytest.raises(ValueError, match="history_windows does not apply with season="):
        Anomaly("x", season="1d", history_windows=7)
    with pytest.raises(ValueError, match="with seasons=4 pass min_history=4 or fewer"):
        Anomaly("x", season="7d", seasons=4)


def test_titles_of_rules_without_the_new_options_are_unchanged() -> None:
    assert Threshold("rate", below=0.18).title == "threshold:rate:<0.18"
    assert Change("rate").title == "change:rate:both 20% vs 24w"
    assert Anomaly("p50").title == "anomaly:p50:both z>3.5 over 48w"
    assert Threshold("rate", below=0.18, min_count=50, confidence=0.99).title == \
        "threshold:rate:<0.18 n>=50 at 99%"
    assert Change("rate", season="7d", seasons=3, direction="down").title == \
        "change:rate:down 20% vs same time 3x7d"


def test_stored_rules_load_and_keep_their_dicts() -> None:
    """A rule stored before the options existed loads with their defaults, and a rule not
    using them serializes exactly as before, so its metric keeps its id."""
    stored = {"kind": "change", "field": "rate", "for_windows": 2, "severity": "warning",
              "name": None, "labels": [["team", "ml"]], "relative": 0.3,
              "baseline_windows": 24, "direction": "down"}
    rule = rule_from_dict(stored)
    assert rule == Change("rate", for_windows=2, labels=(("team", "ml"),), relative=0.3,
                          direction="down")
    assert rule.min_count == 0 and rule.confidence is None and rule.season is None
    assert rule.to_dict() == stored
    for new in (Threshold("rate", below=0.2, min_count=30, confidence=0.95),
                Change("rate", season="7d", seasons=2, confidence=0.99),
                Anomaly("share", season="1d", seasons=20, min_history=10, min_count=5)):
        assert rule_from_dict(new.to_dict()) == new


# -- fit to the metric, at registration ----------------------------------------------------

@pytest.mark.parametrize("aggregate", [metrics.rate("clicked"), metrics.share("device", "ios"),
                                       metrics.null_rate("country")])
def test_confidence_fits_proportions(aggregate: metrics.Aggregate) -> None:
    field = aggregate.fields()[0]
    assert rule_problem(Threshold(field, above=0.1, confidence=0.99), aggregate, "1h") is None
    assert rule_problem(Change(field, confidence=0.99, season="1d"), aggregate, "1h") is None


@pytest.mark.parametrize(("aggregate", "field", "hint"), [
    (metrics.mean("latency_ms"), "mean", "which the mean aggregate does not keep"),
    (metrics.quantiles("latency_ms"), "p99", "use min_count= to leave out small windows"),
    (metrics.count(), "count", "'count' of a count aggregate is not one"),
    (metrics.accuracy("label", "prediction"), "accuracy", "is not one"),
])
def test_confidence_is_refused_on_what_is_not_a_proportion_of_the_events(
    aggregate: metrics.Aggregate, field: str, hint: str,
) -> None:
    problem = rule_problem(Anomaly(field, confidence=0.99), aggregate, "1h")
    assert problem is not None and problem.startswith(f"alert rule anomaly:{field}:")
    assert "confidence= tests a proportion of the window's events" in problem and hint in problem
    assert rule_problem(Anomaly(field, min_count=100), aggregate, "1h") is None


def test_a_season_must_be_whole_windows() -> None:
    rate = metrics.rate("clicked")
    assert rule_problem(Change("rate", season="1d"), rate, "15m") is None
    assert rule_problem(Change("rate", season="7d"), rate, "1d") is None
    problem = rule_problem(Change("rate", season="1d"), rate, "2d")
    assert problem is not None and "season '1d' is not a whole number of the metric's " \
        "'2d' windows" in problem
