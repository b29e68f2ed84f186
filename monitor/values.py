"""Metric values as plain records, and the values CSV format of the platform.

One row per field: ``metric,stage,segment,window_start,window_end,field,value,count``,
timestamps ISO 8601 in UTC. Floats are written with Python's shortest round-trip
representation, so a values file read back gives the same bits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from operator import attrgetter
from pathlib import Path
from typing import TextIO

import pandas as pd

COLUMNS = ["metric", "stage", "segment", "window_start", "window_end", "field", "value", "count"]
STAGES = ("research", "batch", "streaming")


@dataclass(frozen=True)
class MetricValue:
    metric: str
    stage: str
    segment: str
    window_start: pd.Timestamp
    window_end: pd.Timestamp
    field: str
    value: float
    count: int


# Not dataclasses.astuple, which deep-copies every field: 70% of the time of a frame of
# 24k values, their timestamps copied one by one.
_as_row = attrgetter(*(f.name for f in fields(MetricValue)))


def values_frame(values: Iterable[MetricValue]) -> pd.DataFrame:
    """Values as a DataFrame in the values-file column order, sorted for stable output."""
    frame = pd.DataFrame(map(_as_row, values), columns=COLUMNS)
    if frame.empty:
        return frame.astype({"value": "float64", "count": "int64"})
    # Python datetimes would make microsecond columns and engine timestamps nanosecond
    # ones; one unit keeps frames from different stages comparable.
    for column in ("window_start", "window_end"):
        frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[ns, UTC]")
    return frame.sort_values(["metric", "stage", "segment", "window_start", "field"],
                             kind="stable").reset_index(drop=True)


def iso(ts: pd.Timestamp) -> str:
    return ts.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def write_values_csv(frame: pd.DataFrame, path: str | Path | TextIO) -> None:
    out = frame.copy()
    for column in ("window_start", "window_end"):
        out[column] = [iso(t) for t in out[column]]
    out["value"] = [repr(float(v)) for v in out["value"]]
    out.to_csv(path, index=False, columns=COLUMNS)


def read_values_csv(path: str | Path | TextIO) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype={"segment": str, "field": str}, keep_default_na=False)
    for column in ("window_start", "window_end"):
        frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[ns, UTC]")
    frame["value"] = frame["value"].astype("float64")
    return frame
