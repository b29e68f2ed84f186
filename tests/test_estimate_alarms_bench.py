"""The pure parts of bench/estimate_alarms.py: episodes are the alert walk's, false alarms and
catches are told apart as its docstring says, and the realized AUC is the rank statistic.
(The benchmark itself needs NannyML's venv and minutes; these make sure what it counts is
what it says.)"""

from __future__ import annotations

import doctest
import math

import numpy as np
import pandas as pd
import pytest

import bench.alarm_episodes
from bench.alarm_episodes import Episode, Scored, episodes, score
from bench.estimate_alarms import HOURS, realized_auc
from examples.music_home_events import DEFAULT_START
from monitor.alerts.rules import Threshold

LOW = Threshold("v", below=0.5, for_windows=2)


def test_the_module_examples_hold() -> None:
    assert doctest.testmod(bench.alarm_episodes).failed == 0


def test_episodes_fire_after_for_windows_breaches_and_resolve_on_the_first_good_hour() -> None:
    assert episodes([0.4, 0.9, 0.4, 0.9], LOW) == []  # never two in a row
    assert episodes([0.4, 0.4, 0.4], LOW) == [Episode(1, None)]  # still firing at the end
    assert episodes([0.9, 0.4, 0.4, 0.6, 0.4, 0.4], LOW) == [Episode(2, 3), Episode(5, None)]
    single = Threshold("v", below=0.5, for_windows=1)
    assert episodes([0.4, 0.9, 0.4], single) == [Episode(0, 1), Episode(2, None)]


def test_an_hour_without_a_window_neither_breaks_nor_resolves_an_alert() -> None:
    """A missing window is as if it were not stored (monitor.alerts.lifecycle)."""
    assert episodes([0.4, math.nan, 0.4, 0.9], LOW) == [Episode(2, 3)]
    assert episodes([0.4, 0.4, math.nan, 0.9], LOW) == [Episode(1, 3)]


def test_false_alarms_and_catches() -> None:
    # fired before the incident, and still firing into it: a false alarm, not a catch
    assert score([Episode(3, 6)], 20, (4, 8), 2) == Scored(1, 15, False, None)
    # the first episode inside the incident catches it; the delay runs to the window's close
    assert score([Episode(6, 8), Episode(7, None)], 20, (4, 8), 2) == Scored(0, 15, True, 3)
    # an episode firing on the hour after the incident with two-hour persistence leans on
    # the incident's last hour: neither a false alarm nor a catch
    assert score([Episode(8, 9)], 20, (4, 8), 2) == Scored(0, 15, False, None)
    # ... but with one-hour persistence it is a false alarm
    assert score([Episode(8, 9)], 20, (4, 8), 1) == Scored(1, 16, False, None)
    # the incident runs to the end of the series: nothing after it to taint
    assert score([], 20, (15, 20), 2) == Scored(0, 15, False, None)
    assert score([Episode(1, 2), Episode(9, None)], 20, None, 2) == Scored(2, 20, None, None)


def test_an_incident_outside_the_series_is_refused() -> None:
    for incident in ((-1, 3), (5, 5), (18, 21)):
        with pytest.raises(ValueError, match="not inside"):
            score([], 20, incident, 2)


def test_the_realized_auc_is_the_share_of_clicked_non_clicked_pairs_ordered_right() -> None:
    rng = np.random.default_rng(3)
    n = 600
    hour = rng.integers(0, 3, n)
    events = pd.DataFrame({
        "ts": DEFAULT_START + pd.to_timedelta(hour * 3600 + rng.integers(0, 3600, n), unit="s"),
        "country": rng.choice(["BR", "SE"], n),
        "score": np.round(rng.random(n), 2),  # ties count one half
        "clicked": rng.random(n) < 0.3,
    })
    values = realized_auc(events)
    assert set(values) == {f"country={c}" for c in ("US", "BR", "IN", "DE", "SE")}
    assert all(len(v) == HOURS for v in values.values())
    assert np.isnan(values["country=US"]).all() and np.isnan(values["country=BR"][3:]).all()
    for country in ("BR", "SE"):
        for h in range(3):
            rows = events[(events["country"] == country) & (hour == h)]
            pos = rows["score"][rows["clicked"]].to_numpy()[:, None]
            neg = rows["score"][~rows["clicked"]].to_numpy()[None, :]
            pairs = ((pos > neg) + 0.5 * (pos == neg)).mean()
            assert values[f"country={country}"][h] == pytest.approx(pairs, abs=1e-12)
