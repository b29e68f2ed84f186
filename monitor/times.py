"""Times as the store keeps them: tz-aware UTC datetimes with microseconds.

Pure, so the alert evaluation and the stage runners can normalise times without
importing the SQL column types (:mod:`monitor.storage.types` uses these too).

>>> import pandas as pd
>>> to_utc(pd.Timestamp("2026-03-01T12:00+01:00")).isoformat()
'2026-03-01T11:00:00+00:00'
"""

from __future__ import annotations

from datetime import UTC, datetime


def to_utc(value: object) -> datetime:
    """A tz-aware time as a plain ``datetime`` in UTC; naive times are refused, not guessed."""
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__} {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"naive datetime {value.isoformat()} given to the store: pass a tz-aware "
            "time (e.g. pd.Timestamp(..., tz='UTC')); it would be ambiguous otherwise"
        )
    if getattr(value, "nanosecond", 0):
        raise ValueError(f"{value} has nanoseconds; the store keeps microseconds")
    utc = value.astimezone(UTC)
    if type(utc) is not datetime:  # e.g. a pd.Timestamp: give the driver a plain datetime
        utc = datetime(utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second,
                       utc.microsecond, tzinfo=UTC)
    return utc


def utc_now() -> datetime:
    return datetime.now(UTC)
