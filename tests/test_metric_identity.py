"""A metric's id holds what decides its values, and nothing else.

Editing the owner, the description or the alert rules, moving the per-event function to
another module, or pointing the stream at another topic or table keeps the id (a new id
is a new version, which goes back to research and stops in batch and streaming). Changing
the code, a parameter, the window, the lateness, the segments or a field of the schema
gives a new one.
"""

from __future__ import annotations

import importlib
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import metrics
from monitor import Monitor, Threshold
from monitor.spec import MetricSpec

SCHEMA = {"latency_ms": "float", "country": "str", "rank": "int"}


def monitor(**stream: Any) -> Monitor:
    mon = Monitor()
    mon.stream("home", schema=stream.pop("schema", SCHEMA), **stream)
    return mon


def latency(mon: Monitor | None = None, **options: Any) -> MetricSpec:
    compute = options.pop("compute", metrics.quantiles("latency_ms"))
    options.setdefault("segment_by", ["country"])
    return (mon or monitor()).metric("latency", "home", compute, **options)


def test_editing_owner_and_description_of_a_decorated_metric_keeps_its_id() -> None:
    first, second = monitor(), monitor()

    @first.metric("rank_doubled", "home", aggregate=metrics.mean(), owner="a",
                  description="ranks as the homepage shows them")
    def rank_doubled(events: pd.DataFrame) -> pd.Series:
        return events["rank"] * 2

    @second.metric("rank_doubled", "home", aggregate=metrics.mean(),
                   owner="b", description="twice the rank")
    def rank_doubled_edited(events: pd.DataFrame) -> pd.Series:
        return events["rank"] * 2

    assert rank_doubled.owner != rank_doubled_edited.owner
    assert rank_doubled.id == rank_doubled_edited.id


def test_moving_the_per_event_function_to_another_module_keeps_its_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = '''
        @mon.metric("rank_doubled", "home", aggregate=metrics.mean(), owner="search")
        def rank_doubled(events):
            return events["rank"] * 2
    '''
    header = f"import metrics\nfrom monitor import Monitor\nmon = Monitor()\n" \
             f"mon.stream('home', schema={SCHEMA!r})\n"
    (tmp_path / "team_a").mkdir()
    (tmp_path / "team_a" / "__init__.py").write_text("")
    (tmp_path / "team_a" / "metric_defs.py").write_text(header + textwrap.dedent(body))
    (tmp_path / "moved_metrics.py").write_text(
        header + "\n\n# moved here from team_a.metric_defs\n" + textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))

    before = importlib.import_module("team_a.metric_defs").mon.get("rank_doubled")
    after = importlib.import_module("moved_metrics").mon.get("rank_doubled")
    assert before.per_event is not None and after.per_event is not None
    assert before.per_event.path != after.per_event.path
    assert before.id == after.id


def test_where_the_stream_is_found_is_not_part_of_the_id() -> None:
    here = latency(monitor(topic="home-events", table="home_events", files="a/*.jsonl"))
    there = latency(monitor(topic="home-events-v2", query="SELECT * FROM events_2026",
                            files="b/*.parquet"))
    assert here.stream.topic != there.stream.topic
    assert here.id == there.id


def test_alert_rules_are_not_part_of_the_id() -> None:
    # they decide alerts, not values; every stage evaluates the app's rules of the day
    assert latency(alerts=[Threshold(field="p99", above=500)]).id == \
        latency(alerts=[Threshold(field="p99", above=800)]).id == latency().id


def twice(events: pd.DataFrame) -> pd.Series:
    return events["rank"] * 2


def thrice(events: pd.DataFrame) -> pd.Series:
    return events["rank"] * 3


def per_event(function: Callable[[pd.DataFrame], pd.Series], **options: Any) -> MetricSpec:
    return monitor().metric("ranked", "home", aggregate=metrics.mean(), **options)(function)


CHANGES: dict[str, Callable[[], tuple[MetricSpec, MetricSpec]]] = {
    "function body": lambda: (per_event(twice), per_event(thrice)),
    "aggregate parameter": lambda: (
        latency(compute=metrics.quantiles("latency_ms", ps=(0.5, 0.99))),
        latency(compute=metrics.quantiles("latency_ms", ps=(0.5, 0.999)))),
    "window": lambda: (latency(window="1h"), latency(window="15m")),
    "lateness": lambda: (latency(), latency(lateness="5m")),
    "segments": lambda: (latency(), latency(segment_by=[])),
    "a field it reads": lambda: (
        latency(), latency(monitor(schema={**SCHEMA, "latency_ms": "float?"}))),
    # every stage keeps only the events valid against the whole schema
    "another field of the schema": lambda: (
        latency(), latency(monitor(schema={**SCHEMA, "rank": "float"}))),
}


@pytest.mark.parametrize("change", CHANGES)
def test_what_decides_the_values_is_part_of_the_id(change: str) -> None:
    before, after = CHANGES[change]()
    assert before.id != after.id


def test_the_legacy_id_is_the_id_older_releases_stored() -> None:
    # computed by the release before ids left owner, rules and locations out: a catalog
    # written by it holds this id, which the catalog adopts (tests/storage/test_catalog.py)
    assert latency(owner="platform", description="homepage latency",
                   compute=metrics.quantiles("latency_ms", ps=(0.5, 0.99))
                   ).legacy_id == "82a163a6c0952c46"
