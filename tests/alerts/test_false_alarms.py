"""How often rules fire on windows where nothing changed: a rule with ``confidence=``
at most ``1 - confidence``, a plain one as often as noise crosses its threshold.

The threshold's rate is exact: every possible count of hits in a window of n events,
weighted by its binomial probability, goes through the rule. The rate of a Change
against its baseline is measured on seeded series. Run as a script for the table:

    .venv/bin/python -m tests.alerts.test_false_alarms
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from monitor.alerts.rules import Change, Point, Rule, Threshold
from tests.alerts.helpers import HOUR, T0

RATES = (0.03, 0.40)
COUNTS = (50, 100, 200, 500, 1000, 2000, 5000, 10_000)


def exact_rate(rule: Rule, rate: float, n: int) -> float:
    """The share of windows of ``n`` events at a true ``rate`` on which ``rule`` breaches."""
    hits = np.arange(n + 1)
    weight = stats.binom.pmf(hits, n, rate)
    likely = weight > 1e-15  # the rest cannot move the sum
    return float(sum(w for x, w in zip(hits[likely], weight[likely], strict=True)
                     if rule.check([], x / n, count=n).breached))


def series_rate(rule: Rule, rate: float, n: int, windows: int, seed: int) -> float:
    """The share of windows of a seeded series without change on which ``rule`` breaches,
    each judged against the ``history_needed`` windows before it."""
    rng = np.random.default_rng(seed)
    warm = rule.history_needed
    points = [Point(T0 + i * HOUR, hits / n, n)
              for i, hits in enumerate(rng.binomial(n, rate, size=warm + windows))]
    breached = sum(rule.judge(points[i - warm:i], points[i]).breached
                   for i in range(warm, len(points)))
    return breached / windows


@pytest.mark.parametrize("confidence", [0.99, 0.95])
@pytest.mark.parametrize("rate", RATES)
def test_a_threshold_beyond_noise_fires_at_most_as_often_as_it_says(
    confidence: float, rate: float,
) -> None:
    """Worst case: the true rate sits exactly on the threshold."""
    for n in COUNTS:
        above = exact_rate(Threshold("rate", above=rate, confidence=confidence), rate, n)
        below = exact_rate(Threshold("rate", below=rate, confidence=confidence), rate, n)
        assert above <= 1 - confidence and below <= 1 - confidence, (n, above, below)


def test_a_plain_threshold_with_headroom_fires_on_noise_at_small_counts() -> None:
    """Alerting at 1.5x the normal rate: noise crosses it often at 50 events, never at
    10,000; the same threshold with confidence=0.99 stays under 1% everywhere."""
    plain = Threshold("rate", above=0.045)
    sure = Threshold("rate", above=0.045, confidence=0.99)
    assert exact_rate(plain, 0.03, 50) > 0.15
    assert exact_rate(plain, 0.03, 10_000) < 1e-6
    assert all(exact_rate(sure, 0.03, n) <= 0.01 for n in COUNTS)


def test_a_change_beyond_noise_fires_at_most_as_often_as_it_says() -> None:
    plain = Change("rate", relative=0.2, baseline_windows=24)
    sure = Change("rate", relative=0.2, baseline_windows=24, confidence=0.99)
    for n, seed in ((50, 1), (500, 2), (5000, 3)):
        assert series_rate(sure, 0.03, n, 2000, seed) <= 0.01
    assert series_rate(plain, 0.03, 50, 2000, 1) > 0.5  # 20% of 1.5 events is noise


def table() -> str:
    lines = ["rate   n       plain@p0  sure@p0   plain@1.5p0  sure@1.5p0  "
             "change    change+conf"]
    for rate in RATES:
        for n in COUNTS:
            rules = [Threshold("rate", above=rate), Threshold("rate", above=rate,
                                                              confidence=0.99),
                     Threshold("rate", above=1.5 * rate),
                     Threshold("rate", above=1.5 * rate, confidence=0.99)]
            cells = [exact_rate(rule, rate, n) for rule in rules]
            changes = [series_rate(Change("rate", relative=0.2, baseline_windows=24,
                                          confidence=c), rate, n, 4000, n)
                       for c in (None, 0.99)]
            lines.append(f"{rate:<6} {n:<7} " + "  ".join(f"{c:<8.4f}" for c in cells)
                         + "     " + "  ".join(f"{c:<8.4f}" for c in changes))
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
