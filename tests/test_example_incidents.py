"""The example generator's incidents can be moved (as the demo moves the BR rollout into
its live part) without changing anything but the events they touch."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from examples.music_home_events import (
    CANARY_MODEL,
    DEFAULT_START,
    FEATURE_SHIFT,
    LATENCY_SPIKE,
    MODEL_ROLLOUT,
    generate_events,
)


def test_a_moved_incident_changes_only_the_events_it_touches() -> None:
    moved = dataclasses.replace(MODEL_ROLLOUT, start_hour=30, end_hour=34)
    week = generate_events(start=DEFAULT_START, days=6, seed=4, events_per_hour=200)
    other = generate_events(start=DEFAULT_START, days=6, seed=4, events_per_hour=200,
                            incidents=(LATENCY_SPIKE, moved, FEATURE_SHIFT))
    hour = ((week["ts"] - DEFAULT_START) // pd.Timedelta(hours=1)).to_numpy()
    brazil = (week["country"] == "BR").to_numpy()
    touched = brazil & (MODEL_ROLLOUT.active(hour) | moved.active(hour))
    assert touched.sum() > 100
    pd.testing.assert_frame_equal(week[~touched], other[~touched])
    canary = (other["model_version"] == CANARY_MODEL).to_numpy()
    assert np.array_equal(canary, brazil & moved.active(hour))
    assert (other["fav_carousel_rank"][touched & moved.active(hour)].mean()
            > week["fav_carousel_rank"][touched & moved.active(hour)].mean() + 2)


def test_incidents_must_be_distinct_ones_of_the_example() -> None:
    made_up = dataclasses.replace(MODEL_ROLLOUT, name="outage")
    with pytest.raises(ValueError, match="distinct ones of"):
        generate_events(days=1, events_per_hour=50, incidents=(made_up,))
    with pytest.raises(ValueError, match="distinct ones of"):
        generate_events(days=1, events_per_hour=50, incidents=(MODEL_ROLLOUT, MODEL_ROLLOUT))
