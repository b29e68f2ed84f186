"""The canonical JSON text of some rows of a column, built a column at a time.

An assertion's sample keeps each violating event as canonical JSON (sorted keys, no
spaces, NaN as null, the infinities as text: :func:`metrics.json_values.json_value`), and
the stages must agree on it byte for byte. Encoding one row at a time through a dict and
``json.JSONEncoder`` cost about 20 µs an event, more than everything else the assertion
does, since every violation of a group whose sample is not yet full is kept. Here each
column's values are spelled at once for its dtype — the text ``json`` would write for the
value ``json_value`` gives — and other dtypes (lists, objects) go through ``json_value``
itself. A test holds the two to the same text on every dtype a schema makes. The rows
can also be taken first and spelled later (:func:`take_column`, :class:`Taken`): an
assertion takes a chunk's candidates and spells only those its sample keeps.

>>> frame = pd.DataFrame({"score": [0.5, np.nan, np.inf], "user": ["ann", None, "é"]})
>>> column_texts(frame["score"], np.array([0, 1, 2]))
['0.5', 'null', '"inf"']
>>> column_texts(frame["user"], np.array([2, 1]))
['"\\\\u00e9"', 'null']
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa

from metrics.arrow_strings import arrow_strings_at
from metrics.frame_columns import series_values
from metrics.json_values import float_json, json_value

__all__ = ["CANONICAL", "Taken", "as_is", "column_texts", "float_json", "float_texts", "json_value",
           "object_array", "quote", "quoted", "take_column"]

# canonical JSON's settings, built once: json.dumps makes an encoder per call otherwise
CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False)
# how the encoder spells a string (ensure_ascii): quoted, escaped, ASCII only
quote: Callable[[str], str] = json.encoder.encode_basestring_ascii


def float_texts(values: np.ndarray) -> list[str]:
    """The JSON text of each float64 of ``values`` (as :func:`float_json` spells it)."""
    texts = list(map(float.__repr__, values.tolist()))  # what json writes for a float
    if not np.isfinite(values).all():
        for i in np.flatnonzero(~np.isfinite(values)).tolist():
            texts[i] = CANONICAL.encode(float_json(float(values[i])))
    return texts


class Taken(NamedTuple):
    """Some rows of a column, taken out of it, and what spells them as JSON text:
    ``spell(values)``. Cheap to take (numpy indexing, a few strings), so an assertion can
    keep the rows it may sample as arrays and spell only those it ends up keeping; the
    rows of dtypes without a cheap form are spelled at once (``spell`` is then
    :func:`as_is`)."""

    spell: Callable[[np.ndarray], list[str]]
    values: np.ndarray

    def texts(self) -> list[str]:
        return self.spell(self.values)


def column_texts(column: pd.Series | Any, rows: np.ndarray) -> list[str]:
    """The canonical JSON text of ``column``'s values at positions ``rows``: a Series, or
    the values a frame stores for a column (:func:`metrics.frame_columns.column_values`)."""
    return take_column(column, rows).texts()


def take_column(column: pd.Series | Any, rows: np.ndarray) -> Taken:
    """``column``'s values at positions ``rows``, to spell later (:func:`column_texts`:
    the same text, whenever it is spelled)."""
    values = series_values(column) if isinstance(column, pd.Series) else column
    if isinstance(values, np.ndarray) and values.dtype.kind not in "fiubO":
        values = pd.array(values)  # times as a plain array: spelled as pandas gives them
    dtype = values.dtype
    if isinstance(values, np.ndarray):  # a numpy column: its rows without pandas' overhead
        if dtype.kind in "fiub":
            return Taken(_numpy_texts, values[rows])
        return _spelled(_texts(values[rows].tolist()))  # objects
    if isinstance(dtype, np.dtype):  # naive times and durations: as pandas gives them
        return _spelled(_texts(values.take(rows).tolist()))
    if isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC":
        return Taken(_utc_texts, np.asarray(values.asi8)[rows])
    if isinstance(dtype, pd.StringDtype):
        if dtype.storage == "pyarrow":
            # read from the Arrow buffers (Python strings, so the taken rows do not hold
            # the chunk's buffers; None for a null): in the engine, between its other
            # work on a micro-batch, ~35 µs for 40 rows against ~50 µs for pyarrow's take
            strings = arrow_strings_at(values, rows)
            if strings is not None:
                return Taken(quoted, object_array(strings))
            # pyarrow's take without pandas' wrapping (several chunks, string views),
            # with the rows as an Arrow array, as pyarrow converts numpy indices slowly
            return Taken(quoted, values.__arrow_array__().take(pa.array(rows)).to_numpy(
                zero_copy_only=False))
        strings = values.take(rows).to_numpy(dtype=object, na_value=None).tolist()
        return Taken(quoted, object_array(strings))
    taken = values.take(rows)
    numpy_dtype = getattr(dtype, "numpy_dtype", None)  # masked and Arrow numbers, booleans
    if isinstance(numpy_dtype, np.dtype) and numpy_dtype.kind in "fiub":
        missing = np.asarray(taken.isna(), dtype=bool)
        fill = False if numpy_dtype.kind == "b" else 0
        plain = np.asarray(taken.to_numpy(dtype=numpy_dtype, na_value=fill))
        return _spelled(_with_nulls(_numpy_texts(plain), missing))
    return _spelled(_texts(taken.tolist()))


def object_array(values: list[Any]) -> np.ndarray:
    """Python objects as a 1-d numpy object array (``np.array`` would make fixed-width
    strings of texts, and nest lists)."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def as_is(texts: np.ndarray) -> list[str]:
    """The spelling of values that are JSON text already."""
    return texts.tolist()


def _spelled(texts: list[str]) -> Taken:
    return Taken(as_is, object_array(texts))


def quoted(strings: np.ndarray) -> list[str]:
    return [quote(s) if isinstance(s, str) else "null" for s in strings.tolist()]


def _numpy_texts(values: np.ndarray) -> list[str]:
    """The JSON text of each of a numpy array of floats, integers or booleans."""
    kind = values.dtype.kind
    if kind == "f":
        return float_texts(values.astype(np.float64, copy=False))
    if kind == "b":
        return np.where(values, "true", "false").tolist()
    return values.astype(str).tolist()


def _texts(values: list[Any]) -> list[str]:
    return [CANONICAL.encode(json_value(value)) for value in values]


def _with_nulls(texts: list[str], missing: np.ndarray) -> list[str]:
    for i in np.flatnonzero(missing).tolist():
        texts[i] = "null"
    return texts


_NAT = int(np.iinfo(np.int64).min)  # NaT's ns (np.iinfo costs ~2 µs a call)


def _utc_texts(ns: np.ndarray) -> list[str]:
    """The JSON text of UTC times given as ns since the epoch: null for NaT, else
    pd.Timestamp.isoformat() quoted: seconds, then six digits for a whole microsecond or
    nine for a nanosecond, none for a whole second.

    numpy spells every time to the microsecond at once, as bytes (``astype``: twice as
    fast as ``datetime_as_string``); they are joined, decoded, stripped of a whole
    second's ``.000000`` and split again by the C string methods, which for the few
    dozen times an assertion spells a chunk cost less than any Python loop over them;
    the few times with nanoseconds gain three digits."""
    if not len(ns):
        return []
    missing = None
    if ns.min() == _NAT:  # one reduction: a NaT is rare
        missing = ns == _NAT
        ns = np.where(missing, 0, ns)
    micro, nano = np.divmod(ns, 1000)
    spelled = micro.view("datetime64[us]").astype("S26").tolist()  # "...T12:00:00.000000"
    joined = b'+00:00" "'.join(spelled).decode("ascii")  # ISO times hold no space
    texts = f'"{joined}+00:00"'.replace(".000000+", "+").split(" ")
    if nano.any():
        for i in np.flatnonzero(nano).tolist():
            texts[i] = f'"{spelled[i].decode("ascii")}{nano[i]:03d}+00:00"'
    return texts if missing is None else _with_nulls(texts, missing)
