"""monitor.windows.utc_from_ns: a whole microsecond takes a shortcut past pandas, which
must give the very same datetime (value, type and time zone) as pandas does."""

from __future__ import annotations

import warnings

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from monitor.windows import utc_from_ns

# pandas' nanosecond range, in whole microseconds and not
LOW, HIGH = pd.Timestamp.min.value + 1000, pd.Timestamp.max.value - 1000


@given(st.integers(LOW // 1000, HIGH // 1000), st.integers(0, 999))
def test_the_same_datetime_as_pandas(micros: int, nanos: int) -> None:
    ns = micros * 1000 + nanos
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas warns when it drops nanoseconds
        expected = pd.Timestamp(ns, unit="ns", tz="UTC").to_pydatetime()
        got = utc_from_ns(ns)
    assert got == expected
    assert type(got) is type(expected) and repr(got) == repr(expected)
    assert got.utcoffset() == expected.utcoffset()
