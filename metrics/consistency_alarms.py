"""How often a rule on an estimated consistency count fires: for sizing ``max_keys``.

A window of :func:`metrics.consistency` (or ``expect_unique``) with more keys than
``max_keys`` keeps the ``max_keys`` keys of the smallest hash — a uniform sample — and
estimates ``violating_keys`` as (violating keys sampled) / ``max_keys`` x (estimated
keys). A rule ``violating_keys > T`` then fires by chance on a window whose true count
is below ``T`` and may stay silent on one above it. :func:`rule_fire_chance` gives that
chance exactly, so a team can pick ``max_keys`` for the error rates it accepts:

>>> round(rule_fire_chance(keys=20_000, violating=10, max_keys=4_000, threshold=20), 3)
0.076
>>> rule_fire_chance(keys=20_000, violating=10, max_keys=20_000, threshold=20)
0.0

``bench/consistency_alarms.py`` measures the same over seeded windows, and
``tests/test_consistency_alarms.py`` checks the state against this law.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = ["rule_fire_chance"]


def rule_fire_chance(keys: int, violating: int, max_keys: int, threshold: float) -> float:
    """P(``violating_keys > threshold``) for a window of ``keys`` keys of which
    ``violating`` violate, counted by a state bounded to ``max_keys`` keys.

    Exact counts (``keys <= max_keys``) fire exactly when ``violating > threshold``.
    Past that, the violating keys sampled, ``x``, are hypergeometric, and the estimate
    ``x / M x (M - 1) / u`` (:func:`metrics.key_table.estimated_keys`, ``M = max_keys``)
    has ``u``, the largest kept hash over 2**64, the M-th smallest of ``keys`` uniforms:
    Beta(M, keys - M + 1), independent of which keys were kept."""
    if not 0 <= violating <= keys or max_keys < 2 or keys < 1:
        raise ValueError("need 0 <= violating <= keys, keys >= 1 and max_keys >= 2")
    if keys <= max_keys or threshold < 0:
        return float(violating > threshold)
    if threshold == 0:  # fires when any violating key was kept
        return float(stats.hypergeom(keys, violating, max_keys).sf(0))
    sampled = np.arange(min(violating, max_keys) + 1)
    chance = stats.hypergeom(keys, violating, max_keys).pmf(sampled)
    # x / M * (M - 1) / u > T  <=>  u < x (M - 1) / (M T)
    kept = stats.beta(max_keys, keys - max_keys + 1).cdf(
        sampled * (max_keys - 1) / (max_keys * threshold))
    return float(np.clip(np.sum(chance * kept), 0.0, 1.0))
