"""Switch boundaries and streaming spans: which windows streaming counts for each version."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from monitor.stage_switch import (
    StreamingSpan,
    check_boundary,
    streaming_spans,
    switch_boundary,
    switch_lead,
)
from monitor.storage.records import StageChange


def at(hour: int, minute: int = 0, second: int = 0, day: int = 2) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=UTC)


def test_the_boundary_is_the_first_window_start_after_the_lead() -> None:
    lead = pd.Timedelta("15min")
    assert switch_boundary(["1h"], at(10, 41), lead) == at(11)
    assert switch_boundary(["1h"], at(10, 46), lead) == at(12)
    assert switch_boundary(["1h"], at(10, 45), lead) == at(11)  # exactly on one: that one
    assert switch_boundary(["5m"], at(10, 41, 1), lead) == at(11)
    assert switch_boundary(["1d"], at(10, 41), lead) == at(0, day=3)
    assert switch_boundary(["10s"], at(10, 41, 3), pd.Timedelta("30s")) == at(10, 41, 40)


def test_a_takeover_boundary_starts_a_window_of_both_versions() -> None:
    """Version 2 (15m) taking over from version 1 (1h) at 11:15 would cut v1's window."""
    assert switch_boundary(["15m", "1h"], at(10, 41), pd.Timedelta("15min")) == at(11)
    assert switch_boundary(["15m", "1h"], at(10, 46), pd.Timedelta("15min")) == at(12)
    assert switch_boundary(["1h", "1d"], at(10, 41), pd.Timedelta(0)) == at(0, day=3)


def test_an_explicit_boundary_must_start_a_window() -> None:
    assert check_boundary("m", ["1h"], at(11)) == at(11)
    with pytest.raises(ValueError, match=r"'m'.*not.*2026-03-02T11:00:00\+00:00 or "
                                         r"2026-03-02T12:00:00\+00:00"):
        check_boundary("m", ["1h"], at(11, 30))
    with pytest.raises(ValueError, match="window boundary"):
        check_boundary("m", ["15m", "1h"], at(11, 15))


def test_the_lead_is_a_deployment_setting() -> None:
    assert switch_lead({}) == pd.Timedelta("15min")
    assert switch_lead({"MONITOR_SWITCH_LEAD": "30s"}) == pd.Timedelta("30s")
    with pytest.raises(ValueError, match=r"MONITOR_SWITCH_LEAD='soon'.*e\.g\."):
        switch_lead({"MONITOR_SWITCH_LEAD": "soon"})


def change(version: int, before: str | None, after: str, boundary: datetime | None = None,
           ) -> StageChange:
    return StageChange("m", version, before, after, at(9), "ana", "r", boundary)


def test_spans_follow_promotions_demotions_and_takeovers() -> None:
    history = [
        change(1, None, "research"), change(1, "research", "batch"),
        change(1, "batch", "streaming", at(11)),
        change(2, None, "research"),              # a new version in research: v1 goes on
        change(2, "research", "batch"),
        change(2, "batch", "streaming", at(14)),  # v2 takes over at 14:00
        change(2, "streaming", "batch", at(18)),  # and is demoted at 18:00
        change(2, "batch", "streaming", at(20)),  # and promoted again
    ]
    assert streaming_spans(history) == [
        StreamingSpan("m", 1, at(11), at(14)),
        StreamingSpan("m", 2, at(14), at(18)),
        StreamingSpan("m", 2, at(20), None),
    ]


def test_a_span_demoted_before_its_boundary_counts_nothing() -> None:
    history = [change(1, "batch", "streaming", at(11)), change(1, "streaming", "batch", at(11))]
    assert streaming_spans(history) == []
    span = StreamingSpan("m", 1, at(11), at(12))
    assert [span.covers(at(h)) for h in (10, 11, 12)] == [False, True, False]


def test_a_change_to_streaming_without_a_boundary_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"'m' version 1.*monitor db upgrade"):
        streaming_spans([change(1, "batch", "streaming")])
