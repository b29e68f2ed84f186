"""Column types that give the same bits back on SQLite and on Postgres.

- :class:`UTCDateTime`: refuses naive datetimes, stores UTC, returns tz-aware UTC
  (``timestamptz`` on Postgres; ISO text in UTC on SQLite, which has no time zones).
- :class:`Float64`: an IEEE double, NaN stored as NULL and NULL read back as NaN (SQLite
  turns NaN into NULL, so both databases do the same). On SQLite the column has no type
  affinity: in a REAL column SQLite stores whole-number doubles as integers and ``-0.0``
  comes back as ``0.0``; without affinity a double is kept as it was written.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Double
from sqlalchemy.dialects.postgresql import DOUBLE_PRECISION
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine, UserDefinedType

from monitor.times import to_utc, utc_now

# to_utc and utc_now live in monitor.times (pure); many storage modules take them from here
__all__ = ["Float64", "SqliteFloat64", "UTCDateTime", "to_utc", "utc_now"]


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        utc = to_utc(value)
        if dialect.name == "sqlite":
            return utc.replace(tzinfo=None)
        return utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite: stored in UTC without a zone
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class SqliteFloat64(UserDefinedType[float]):
    """A SQLite column type name with no affinity ("BLOB" wins over "FLOAT" in the rules)."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "FLOAT64_BLOB"


class Float64(TypeDecorator[float]):
    impl = Double
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(SqliteFloat64())
        if dialect.name == "postgresql":
            return dialect.type_descriptor(DOUBLE_PRECISION())
        return dialect.type_descriptor(Double())

    def process_bind_param(self, value: Any, dialect: Dialect) -> float | None:
        if value is None:
            return None
        number = float(value)
        return None if math.isnan(number) else number

    def process_result_value(self, value: Any, dialect: Dialect) -> float:
        return math.nan if value is None else float(value)
