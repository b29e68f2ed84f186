"""Event-time tumbling windows aligned to UTC.

A window string is a whole number and a unit: ``"30s"``, ``"5m"``, ``"1h"``, ``"1d"``.
Windows are ``[start, start + width)`` with ``start`` a multiple of the width since the
Unix epoch, so an hourly window starts on the hour and a daily one at UTC midnight.

>>> w = Windows.parse("1h")
>>> w.start_of(pd.Timestamp("2026-03-01T10:42:00Z"))
Timestamp('2026-03-01 10:00:00+0000', tz='UTC')
>>> w.width
Timedelta('0 days 01:00:00')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

_UNITS_NS = {
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
    "d": 86400 * 1_000_000_000,
}
_PATTERN = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")


def parse_duration_ns(text: str) -> int:
    """Nanoseconds in a duration string such as ``"15m"``; ValueError says what is accepted."""
    match = _PATTERN.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"bad duration {text!r}: use a whole number and one of s, m, h, d, e.g. '5m' or '1h'"
        )
    return int(match.group(1)) * _UNITS_NS[match.group(2)]


@dataclass(frozen=True)
class Windows:
    """Tumbling windows of a fixed width (nanoseconds)."""

    width_ns: int

    def __post_init__(self) -> None:
        if self.width_ns <= 0:
            raise ValueError("a window must be longer than zero")
        if _UNITS_NS["d"] % self.width_ns and self.width_ns % _UNITS_NS["d"]:
            # Alignment to UTC needs widths that tile a day (or whole days).
            raise ValueError(
                f"window of {pd.Timedelta(self.width_ns)} does not divide a day evenly; "
                "pick e.g. 5m, 15m, 1h, 6h or 1d"
            )

    @classmethod
    def parse(cls, text: str) -> Windows:
        width = parse_duration_ns(text)
        if width == 0:
            raise ValueError(f"bad window {text!r}: a window must be longer than zero")
        return cls(width)

    @property
    def width(self) -> pd.Timedelta:
        return pd.Timedelta(self.width_ns, unit="ns")

    def starts_ns(self, times_ns: np.ndarray) -> np.ndarray:
        """Window start (ns since epoch) of each event time (ns since epoch), vectorised."""
        return (times_ns // self.width_ns) * self.width_ns

    def start_of(self, when: pd.Timestamp) -> pd.Timestamp:
        start = (when.value // self.width_ns) * self.width_ns
        return pd.Timestamp(start, unit="ns", tz="UTC")

    def closed_before(self, watermark_ns: int, lateness_ns: int = 0) -> int:
        """The start of the first window still open at ``watermark_ns`` given the lateness.

        Every window starting before the returned value is final.
        """
        return ((watermark_ns - lateness_ns) // self.width_ns) * self.width_ns


def utc_from_ns(ns: int) -> datetime:
    """A time in ns since the epoch (how the engine keys windows) as a UTC datetime."""
    if ns % 1000 == 0:  # a whole microsecond (every window bound): 1.6 us, not pandas' 11
        return _EPOCH + timedelta(microseconds=ns // 1000)
    return pd.Timestamp(ns, unit="ns", tz="UTC").to_pydatetime()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
