"""What a metric's per-event function must return: one value per event, of the kind its
aggregate reads.

Registration checks it on sample events (:mod:`monitor.registry`) so a wrong return fails
before any data is seen; the engine checks it again on every chunk, since real events can
take a path the samples did not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from monitor.errors import DefinitionError


def check_per_event_result(subject: str, result: Any, rows: int, kind: str) -> pd.Series:
    """The per-event result as a Series, or a DefinitionError saying what is wrong."""
    if isinstance(result, np.ndarray) and result.ndim == 1:
        result = pd.Series(result)
    if not isinstance(result, pd.Series):
        raise DefinitionError(
            subject, f"per-event function must return a pandas Series, not {type(result).__name__}"
        )
    if len(result) != rows:
        raise DefinitionError(
            subject, f"per-event function returned {len(result)} values for {rows} events; "
            "it must return one value per event"
        )
    numeric = pd.api.types.is_numeric_dtype(result) or pd.api.types.is_bool_dtype(result)
    if kind in ("numeric", "bool") and not numeric:
        raise DefinitionError(
            subject, f"per-event function returned {result.dtype} values; its aggregate needs "
            f"{kind} values"
        )
    return result
