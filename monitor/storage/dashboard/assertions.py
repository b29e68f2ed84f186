"""What the assertions page lists: the stored states of an assertion's newest windows,
whose samples hold the violating events to show."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from monitor.storage import results
from monitor.storage.dashboard.read_only import ReadOnly
from monitor.storage.dashboard.records import TimeRange
from monitor.storage.records import StoredState
from monitor.storage.types import to_utc


class AssertionQueries:
    """Stored states of assertions, newest windows first."""

    def __init__(self, read: ReadOnly) -> None:
        self._read = read

    def latest_states(self, metric: str, version: int, stage: str, span: TimeRange,
                      segments: Sequence[str], windows: int) -> list[StoredState]:
        """The states of ``segments`` in the newest ``windows`` window starts of ``span``
        that have any, by window start then segment (as the export reads them)."""
        if not segments or windows < 1:
            return []
        s = results.STATES.c
        where = (s.metric == metric, s.metric_version == version, s.stage == stage,
                 s.segment.in_(list(segments)), s.window_start >= to_utc(span.since),
                 s.window_start < to_utc(span.until))
        with self._read.session() as conn:
            starts = list(conn.execute(select(s.window_start).where(*where).distinct()
                                       .order_by(s.window_start.desc()).limit(windows))
                          .scalars())
            if not starts:
                return []
            found = results.read_states(conn, metric, version, stage, to_utc(min(starts)),
                                        span.until)
        return [state for state in found if state.segment in set(segments)]
