"""Which windows of a metric version batch computes: those no streaming span covers.

A window belongs to one stage. Streaming counts a version's windows in its spans
(:func:`monitor.stage_switch.streaming_spans`: from the boundary of its promotion to that
of its demotion, or of a newer version's takeover); batch counts the others, before the
first span and after a demotion. So a run over ``[since, until)`` computes that range
less the version's spans, and says which parts it left to streaming; a backfill
(``monitor batch run --since --until``) follows the same rule. The stage that computes a
window announces its alerts.

Pure: no database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from monitor.stage_switch import StreamingSpan

Range = tuple[pd.Timestamp, pd.Timestamp]


@dataclass(frozen=True)
class Split:
    """``[since, until)`` cut between the stages: ``batch`` the ranges batch computes,
    ``streamed`` the ranges it leaves to streaming, both in time order."""

    batch: list[Range]
    streamed: list[Range]


def split(spans: Iterable[StreamingSpan], since: pd.Timestamp, until: pd.Timestamp) -> Split:
    """``[since, until)`` less the windows ``spans`` (of one version) give to streaming.

    Spans start and end at window boundaries of the version, so with ``since`` and
    ``until`` on window boundaries too every range is whole windows.
    """
    streamed: list[Range] = []
    for span in sorted(spans, key=lambda s: s.start):
        start = max(since, pd.Timestamp(span.start))
        end = until if span.end is None else min(until, pd.Timestamp(span.end))
        if start < end:
            streamed.append((start, end))
    batch: list[Range] = []
    at = since
    for start, end in streamed:
        if at < start:
            batch.append((at, start))
        at = max(at, end)
    if at < until:
        batch.append((at, until))
    return Split(batch, streamed)


def handed_over_at(spans: Iterable[StreamingSpan], until: pd.Timestamp) -> pd.Timestamp | None:
    """The boundary from which streaming counts every window of the version, when a run
    that reaches ``until`` has computed every batch window before it; else None (no span
    is open, or its boundary is still ahead of ``until``)."""
    for span in spans:
        start = pd.Timestamp(span.start)
        if span.end is None and start <= until:
            return start
    return None


def whole_windows(width: pd.Timedelta, ranges: Iterable[Range]) -> list[Range]:
    """``ranges`` shrunk to the whole windows of ``width`` inside them (a rollup into
    coarser windows takes a coarse window only when every fine window of it is there)."""
    shrunk = []
    for start, end in ranges:
        low, high = start.ceil(width), end.floor(width)
        if low < high:
            shrunk.append((low, high))
    return shrunk


def describe(ranges: Iterable[Range]) -> str:
    return ", ".join(f"[{start.isoformat()}, {end.isoformat()})" for start, end in ranges)
