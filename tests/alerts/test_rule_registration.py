"""Registration refuses rule options that do not fit the metric, naming metric and rule."""

from __future__ import annotations

import pytest

import metrics
from monitor import Change, DefinitionError, Monitor, Threshold


@pytest.fixture
def mon() -> Monitor:
    mon = Monitor()
    mon.stream("home", schema={"clicked": "bool", "latency_ms": "float"})
    return mon


def test_confidence_on_a_mean_is_refused_at_registration(mon: Monitor) -> None:
    with pytest.raises(DefinitionError, match=r"metric 'latency': alert rule "
                       r"threshold:mean:>900 at 99%: confidence= tests a proportion"):
        mon.metric("latency", "home", metrics.mean("latency_ms"),
                   alerts=[Threshold(above=900, confidence=0.99)])


def test_a_season_of_part_windows_is_refused_at_registration(mon: Monitor) -> None:
    with pytest.raises(DefinitionError, match=r"metric 'ctr': .*season '1d' is not a whole "
                       r"number of the metric's '2d' windows"):
        mon.metric("ctr", "home", metrics.rate("clicked"), window="2d",
                   alerts=[Change(season="1d")])


def test_fitting_options_register(mon: Monitor) -> None:
    spec = mon.metric("ctr", "home", metrics.rate("clicked"), alerts=[
        Threshold(below=0.2, confidence=0.99, min_count=50),
        Change(season="7d", seasons=3, confidence=0.99)])
    assert [r.field for r in spec.alerts] == ["rate", "rate"]
