"""When a stage change reaches the streaming stage: at a window boundary stated when it is made.

A metric version moves into or out of streaming while workers run. For the switch to be
exactly-once — every window counted by one stage, none by two, none by neither — each such
change records ``effective_from``: the start of the first window it applies to, the first
window boundary at least the *switch lead* after the change. Streaming counts a version's
windows from the boundary of its promotion up to (not including) the boundary of its
demotion, or of a newer version's promotion, which takes over there; batch counts the
windows of a version that streaming does not.

Why a lead: a worker learns of a change by polling the catalog, and it must never have
absorbed an event of a window the change applies to before it learned of it. Events more
than ``--max-future`` ahead of the wall clock are dead letters, so with a lead of at least
that, every event a worker absorbed before the change was made is of a window before the
boundary. The lead is a deployment setting, ``MONITOR_SWITCH_LEAD`` (15 minutes by default,
the workers' default ``--max-future``); workers refuse a ``--max-future`` longer than it.

Pure: no database.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pandas as pd

from monitor.storage.records import StageChange
from monitor.times import to_utc
from monitor.windows import Windows, parse_duration_ns

STREAMING = "streaming"
# A boundary of every window. Streaming from it counts every window: for a topic no worker
# has read yet, e.g. a replay of history (tests, the benchmarks).
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SWITCH_LEAD_ENV = "MONITOR_SWITCH_LEAD"
DEFAULT_SWITCH_LEAD = "15m"


# A change into or out of streaming is committed within this long of the time it records
# (the store refuses a slower one), so a catalog read that started at K has seen every
# change recorded before K - COMMIT_WITHIN, each with a boundary at least the lead later:
# a worker's horizon is K + lead - COMMIT_WITHIN, not K + lead.
COMMIT_WITHIN = pd.Timedelta(seconds=2)


def switch_lead(environ: dict[str, str] | None = None) -> pd.Timedelta:
    """The deployment's switch lead (``MONITOR_SWITCH_LEAD``, e.g. ``15m`` or ``30s``)."""
    settings = os.environ if environ is None else environ
    text = settings.get(SWITCH_LEAD_ENV) or DEFAULT_SWITCH_LEAD
    try:
        return pd.Timedelta(parse_duration_ns(text), unit="ns")
    except ValueError as err:
        raise ValueError(f"{SWITCH_LEAD_ENV}={text!r}: {err}") from None


def touches_streaming(from_stage: str | None, to_stage: str) -> bool:
    return STREAMING in (from_stage, to_stage)


def switch_boundary(windows: Iterable[str], at: datetime, lead: pd.Timedelta) -> datetime:
    """The first instant at or after ``at + lead`` that starts a window of every width in
    ``windows`` (the metric's, and a version it takes over from: a takeover ends the old
    version's windows where the new one's begin, neither cut in two)."""
    width = _common_width(windows)
    earliest_ns = (pd.Timestamp(to_utc(at)) + lead).value
    start_ns = -(-earliest_ns // width) * width  # ceiling to a multiple of the width
    return pd.Timestamp(start_ns, unit="ns", tz="UTC").to_pydatetime()


def check_boundary(metric: str, windows: Iterable[str], boundary: datetime) -> datetime:
    """``boundary`` if it starts a window of every width in ``windows``, else ValueError
    naming the boundaries around it."""
    width = _common_width(windows)
    at = pd.Timestamp(to_utc(boundary))
    if at.value % width:
        before = pd.Timestamp(at.value // width * width, unit="ns", tz="UTC")
        after = before + pd.Timedelta(width, unit="ns")
        raise ValueError(f"metric {metric!r}: a switch must be at a window boundary; "
                         f"{at.isoformat()} is not (try {before.isoformat()} or "
                         f"{after.isoformat()})")
    return at.to_pydatetime()


def _common_width(windows: Iterable[str]) -> int:
    """The shortest width (ns) whose multiples start a window of every one of ``windows``."""
    widths = [Windows.parse(window).width_ns for window in windows]
    if not widths:
        raise ValueError("a switch boundary needs at least one window")
    return math.lcm(*widths)


@dataclass(frozen=True)
class StreamingSpan:
    """The windows streaming counts for one metric version: those starting in
    [start, end); ``end`` None while the version is still in streaming."""

    metric: str
    version: int
    start: datetime
    end: datetime | None = None

    def covers(self, window_start: datetime) -> bool:
        return self.start <= window_start and (self.end is None or window_start < self.end)


def streaming_spans(history: Sequence[StageChange]) -> list[StreamingSpan]:
    """The spans of one metric's stage history (oldest change first), by start.

    A promotion of a version to streaming opens its span at its boundary and ends any
    other version's open span there (the new version takes over); a change of a version
    out of streaming ends its span at that change's boundary. Spans that end before they
    start (demoted before the boundary came) are left out.
    """
    open_spans: dict[int, StreamingSpan] = {}
    closed: list[StreamingSpan] = []
    for change in history:
        if not touches_streaming(change.from_stage, change.to_stage):
            continue
        boundary = change.effective_from
        if boundary is None:
            raise ValueError(f"metric {change.metric!r} version {change.version}: a change "
                             f"to or from streaming without a boundary (run `monitor db "
                             f"upgrade`)")
        if change.to_stage == STREAMING:
            for version, span in list(open_spans.items()):
                if version != change.version:
                    closed.append(replace(span, end=max(boundary, span.start)))
                    del open_spans[version]
            open_spans.setdefault(change.version,
                                  StreamingSpan(change.metric, change.version, boundary))
        elif change.version in open_spans:
            span = open_spans.pop(change.version)
            closed.append(replace(span, end=max(boundary, span.start)))
    spans = [s for s in closed if s.end is None or s.end > s.start] + list(open_spans.values())
    return sorted(spans, key=lambda s: (s.start, s.version))


def open_versions(history: Sequence[StageChange]) -> list[int]:
    """The versions of one metric whose streaming span is still open (at most one)."""
    return [span.version for span in streaming_spans(history) if span.end is None]
