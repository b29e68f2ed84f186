"""A rule on a consistency check's estimated count fires as often as the law of its
sample says (:mod:`metrics.consistency_alarms`): the kept keys are a uniform sample, and
the stated false-alarm and detection rates hold."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

import metrics
from metrics.consistency_alarms import rule_fire_chance

KEYS, MAX_KEYS, THRESHOLD, WINDOWS = 2_000, 400, 20, 400


def window(violating: int, seed: int) -> pd.DataFrame:
    """Two events per key; the first ``violating`` keys (in arrival order, so a sample
    that kept the first keys it saw would hold them all) disagree on ``top``."""
    names = np.array([f"s{seed}-u{i}" for i in range(KEYS)], dtype=object)
    second = np.where(np.arange(KEYS) < violating, "radio", "mix").astype(object)
    return pd.DataFrame({"user_id": np.concatenate([names, names]),
                         "top": np.concatenate([np.full(KEYS, "mix", dtype=object), second])})


@pytest.mark.parametrize("violating", [10, 30])
def test_rule_fires_as_often_as_the_law_of_the_sample_says(violating: int) -> None:
    check = metrics.consistency("top", key="user_id", max_keys=MAX_KEYS)
    fired = 0
    for seed in range(WINDOWS):
        state = check.new_state()
        state.update(window(violating, seed))
        value = check.value(state)
        assert value["exact"] == 0.0
        fired += value["violating_keys"] > THRESHOLD
    expected = rule_fire_chance(KEYS, violating, MAX_KEYS, THRESHOLD)
    assert 0.05 < expected < 0.95  # a rate the windows can tell apart from others
    spread = math.sqrt(expected * (1 - expected) / WINDOWS)
    assert abs(fired / WINDOWS - expected) < 4 * spread, (fired / WINDOWS, expected)


def test_exact_counts_fire_exactly_above_the_threshold() -> None:
    check = metrics.consistency("top", key="user_id", max_keys=KEYS)
    for violating in (THRESHOLD, THRESHOLD + 1):
        state = check.new_state()
        state.update(window(violating, seed=0))
        fired = check.value(state)["violating_keys"] > THRESHOLD
        assert fired == bool(rule_fire_chance(KEYS, violating, KEYS, THRESHOLD))
        assert fired == (violating > THRESHOLD)


def test_fire_chance_grows_with_the_violating_keys_and_refuses_impossible_windows() -> None:
    chances = [rule_fire_chance(KEYS, v, MAX_KEYS, THRESHOLD) for v in range(0, 60, 5)]
    assert chances[0] == 0.0 and chances[-1] > 0.99
    assert all(a <= b for a, b in itertools.pairwise(chances))
    assert rule_fire_chance(KEYS, 3, MAX_KEYS, 0) == pytest.approx(
        1 - math.comb(KEYS - 3, MAX_KEYS) / math.comb(KEYS, MAX_KEYS))
    with pytest.raises(ValueError):
        rule_fire_chance(KEYS, KEYS + 1, MAX_KEYS, THRESHOLD)
