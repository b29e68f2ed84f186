"""Is a proportion's move beyond sampling noise, given how many events the window counted?

A rate of 8% over 50 events and over 50,000 events are different evidence: the first is 4
hits, which a true rate of 5% gives one window in six. Rules with ``confidence=`` ask the
tests here before they call a breach, so noise at small counts cannot page.

Both tests are *exact* (they never fire more often than stated, at any count and rate):

- against a fixed threshold, the one-sided Clopper–Pearson bound of the window's
  proportion must lie beyond it (the exact binomial test). The Wilson score bound, the
  usual choice, fires up to 3x too often at small counts and low rates (1.7-3.1% at a
  stated 1% for a rate of 3% over 50-500 events), so it is not used;
- against a baseline of earlier windows, Fisher's exact test of the window's hits and
  count against the baseline's pooled hits and count, one-sided in the direction of the
  move.

Hits are ``round(value * count)``: the window's count is the number of events it held,
which is a rate's denominator for ``share`` and ``null_rate`` and for a ``rate`` whose
condition is never null (events where it is null count in the window but not in the rate).

>>> round(lower_bound(hits=15, n=180, confidence=0.99), 4)  # 8.3% of 180 events
0.0423
>>> round(upper_bound(hits=0, n=180, confidence=0.99), 4)
0.0252
>>> fisher_p(hits=35, n=100, base_hits=200, base_n=1000, side="up") < 0.01
True
"""

from __future__ import annotations

import math
from typing import Literal

from scipy import special

Side = Literal["up", "down"]


def hits_of(value: float, count: int | None) -> int | None:
    """The number of events behind a proportion ``value`` of ``count`` events; None when
    the count is unknown or the value is not a proportion."""
    if count is None or count <= 0 or not 0.0 <= value <= 1.0:
        return None
    return min(count, max(0, round(value * count)))


def lower_bound(hits: int, n: int, confidence: float) -> float:
    """The exact one-sided lower confidence bound of a proportion: the true one is below it
    with probability at most ``1 - confidence``."""
    if hits <= 0:
        return 0.0
    return float(special.betaincinv(hits, n - hits + 1, 1.0 - confidence))


def upper_bound(hits: int, n: int, confidence: float) -> float:
    """The exact one-sided upper confidence bound of a proportion."""
    if hits >= n:
        return 1.0
    return float(special.betaincinv(hits + 1, n - hits, confidence))


def fisher_p(hits: int, n: int, base_hits: int, base_n: int, side: Side) -> float:
    """One-sided p-value of Fisher's exact test that the window's proportion is higher
    (``"up"``) or lower (``"down"``) than the baseline's, both from the same rate."""
    from scipy import stats  # here: importing scipy.stats costs about a second

    total, drawn = n + base_n, hits + base_hits
    if side == "up":
        p = stats.hypergeom.sf(hits - 1, total, drawn, n)
    else:
        p = stats.hypergeom.cdf(hits, total, drawn, n)
    return min(1.0, float(p)) if math.isfinite(p) else 1.0


def percent(fraction: float) -> str:
    """``0.99`` as ``99%``, ``0.005`` as ``0.5%``."""
    return f"{fraction * 100:.4g}%"
