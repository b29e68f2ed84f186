"""A clock the processor tests move by hand: monotonic seconds and the wall clock."""

from __future__ import annotations

import pandas as pd


class Clock:
    def __init__(self, wall: pd.Timestamp | None = None) -> None:
        self.monotonic = 0.0
        self.wall = pd.Timestamp.now(tz="UTC") if wall is None else wall

    def later(self, seconds: float) -> None:
        self.monotonic += seconds
        self.wall += pd.Timedelta(seconds=seconds)
