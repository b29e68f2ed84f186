"""Raw events as a DataFrame, with a NaN of the source's kept apart from a null.

pandas writes a null in a float column as NaN, so a frame built the usual way cannot tell
a field that was null (JSON ``null``, a missing key, SQL NULL) from one that was NaN
(JSON's ``NaN``, a NaN stored in a Postgres or Parquet float column), and schema
validation would call both "is null". These builders hand a column that holds a NaN of
the source's over as objects: None for a null, :data:`~monitor.schema.SOURCE_NAN` for a
NaN (see :func:`monitor.schema.nan_mask`). Every other column is what pandas makes of it;
only columns with missing values are looked at again, and only at those rows.

>>> from monitor.schema import nan_mask
>>> frame = frame_from_records([{"x": 1.5}, {"x": None}, {"x": float("nan")}, {}])
>>> frame["x"].tolist(), nan_mask(frame["x"]).tolist()
([1.5, None, nan, None], [False, False, True, False])
>>> frame_from_records([(1.5,), (None,)], columns=["x"])["x"].dtype  # no NaN: as usual
dtype('float64')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from monitor.schema import SOURCE_NAN


def frame_from_records(records: Sequence[Any], columns: Sequence[str] | None = None
                       ) -> pd.DataFrame:
    """``pd.DataFrame.from_records(records, columns=columns)``, NaN apart from null.

    ``records`` are dicts (a missing key is a null) or tuples in ``columns`` order.
    """
    frame = pd.DataFrame.from_records(records, columns=None if columns is None else list(columns))
    if not len(records):
        return frame
    by_name = isinstance(records[0], Mapping)
    for position, name in enumerate(frame.columns):
        column = frame.iloc[:, position]
        missing = np.flatnonzero(column.isna().to_numpy())
        if not len(missing):
            continue
        if by_name:
            found = [records[row].get(name) for row in missing.tolist()]
        else:
            found = [records[row][position] for row in missing.tolist()]
        is_nan = np.array([isinstance(v, float | np.floating) and v != v for v in found],
                          dtype=bool)
        if is_nan.any():
            _set_nan_apart(frame, position, column, missing, is_nan)
    return frame


def frame_from_arrow(table: pa.Table) -> pd.DataFrame:
    """``table.to_pandas()``, NaN apart from null in floating-point columns."""
    frame = table.to_pandas()
    for position, column in enumerate(table.columns):
        if not pa.types.is_floating(column.type) or column.null_count == len(column):
            continue
        nan = pc.fill_null(pc.is_nan(column), False).to_numpy()
        if not nan.any():
            continue
        missing = np.flatnonzero(nan | column.is_null().to_numpy())
        _set_nan_apart(frame, position, frame.iloc[:, position], missing, nan[missing])
    return frame


def _set_nan_apart(frame: pd.DataFrame, position: int, column: pd.Series,
                   missing: np.ndarray, is_nan: np.ndarray) -> None:
    """Set ``frame``'s column at ``position`` to ``column`` as objects: None at the
    ``missing`` rows, SOURCE_NAN where ``is_nan``.

    Set as a Series of dtype object, not an object array: pandas 3 infers its string
    dtype from an array of strings set into a frame, which would turn SOURCE_NAN back into
    a null (a JSON event ``{"ts": NaN}`` framed with string times was then "missing",
    alone it was "NaN")."""
    values = column.astype(object).to_numpy(copy=True)
    values[missing] = None
    values[missing[is_nan]] = SOURCE_NAN
    as_objects = pd.Series(values, index=column.index, dtype=object, name=column.name)
    frame.isetitem(position, as_objects)  # type: ignore[arg-type]  # stubs omit Series
