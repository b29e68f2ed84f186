"""What a drift page redraws its histograms from: a segment's stored states over a span,
and the reference profile its metric compares against."""

from __future__ import annotations

from metrics.drift import ReferenceProfile
from monitor.storage import profiles, results
from monitor.storage.dashboard.read_only import ReadOnly
from monitor.storage.dashboard.records import TimeRange
from monitor.storage.records import StoredState


class DriftQueries:
    """Stored states and reference profiles."""

    def __init__(self, read: ReadOnly) -> None:
        self._read = read

    def states(self, metric: str, version: int, stage: str, span: TimeRange,
               segment: str, limit: int = 2_000) -> list[StoredState]:
        """Stored states of one segment over ``span`` (at most ``limit``, the newest)."""
        with self._read.session() as conn:
            found = results.read_states(conn, metric, version, stage, span.since, span.until,
                                        segment)
        return found[-limit:]

    def profile(self, name: str, profile_id: str | None) -> ReferenceProfile | None:
        with self._read.session() as conn:
            try:
                return profiles.load_profile(conn, name, profile_id)
            except LookupError:
                return None
