"""An event source for tests: a DataFrame in memory, served like a table by event time."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd


class FrameSource:
    """Events held in memory, served like a table: by event time, in one chunk a slice.

    Rows whose time does not parse belong to no range, as in a table."""

    def __init__(self, events: pd.DataFrame) -> None:
        self.events = events
        self.times = pd.to_datetime(events["ts"], utc=True, errors="coerce")

    def check(self) -> None:
        pass

    def earliest(self) -> pd.Timestamp | None:
        return self.times.min()

    def chunks(self, since: pd.Timestamp, until: pd.Timestamp) -> Iterator[pd.DataFrame]:
        yield self.events[(self.times >= since) & (self.times < until)]
