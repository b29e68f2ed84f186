"""Field values as strict JSON: the same text in every stage for the same typed value.

An assertion keeps the fields of the events it samples, and a consistency check compares
a key's values, as canonical JSON text (:func:`metrics.base.canonical_json`): so a value
must spell the same whether it came from a DataFrame built from JSON, a SQL table or
Parquet — numpy and Python scalars alike, a NaN as null, an infinity as text.

>>> json_value(np.int64(3)), json_value(np.float64("nan")), json_value(["a", None])
(3, None, ['a', None])
>>> float_json(float("-inf")), float_from_json("-inf")
('-inf', -inf)
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["float_from_json", "float_json", "json_value"]


def json_value(value: Any) -> Any:
    """A field's value as JSON: the same text in every stage for the same typed value."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float_json(float(value))
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):  # pd.Timestamp too, to the nanosecond
        return value.isoformat()
    if isinstance(value, list | tuple | np.ndarray):
        return [json_value(item) for item in value]
    raise TypeError(f"cannot keep a {type(value).__name__} value ({value!r}) in a sample")


def float_json(value: float) -> float | str | None:
    """A float as strict JSON: NaN as null, the infinities as text."""
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def float_from_json(value: float | str | None) -> float:
    if value is None:
        return float("nan")
    return float(value)
