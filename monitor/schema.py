"""A stream's schema and the validation that splits raw events into clean rows and rejects.

Types are ``"float"``, ``"int"``, ``"bool"``, ``"str"`` and ``"list[str]"`` (a ranked list of
item ids; see :mod:`monitor.string_lists` for what is taken as one: a list, or a JSON array
as text); a trailing ``?`` makes the field nullable (it may be missing or null). The
event-time field is required and is ISO 8601 or epoch milliseconds. Validation is
vectorised (a column of lists is checked in one pass at C speed, and read one by one only
when it holds other shapes; see :mod:`monitor.string_lists`): each rejected row gets the
first reason that applies, and the clean rows come out typed (numbers as float64 / Int64,
booleans as pandas ``boolean``, lists as Python lists of str (or an Arrow ``list<string>``
column, when the source read them into one), event time as UTC
``datetime64[ns]``).

Null and NaN are different problems: a null (None, a missing field, SQL NULL) is "is
null" (and allowed in a nullable field), a NaN that the source held (JSON's ``NaN``, a
NaN in a Postgres, Parquet or CSV float column) is "is NaN" in any field, as infinity is
"is not finite". pandas writes a null as NaN, so a NaN in a frame is a null unless it is
:data:`SOURCE_NAN`, which the readers (:mod:`monitor.event_frames`) put where the source
had a NaN. A ``str`` field's bytes (a Parquet binary or SQL bytea column) are text when
they are UTF-8, and "is not UTF-8 text" otherwise.

>>> schema = Schema.parse({"latency_ms": "float", "country": "str?"}, time="ts")
>>> raw = pd.DataFrame({"ts": ["2026-01-01T00:00:00Z", "yesterday", 1767225600000],
...                     "latency_ms": [12.5, 3.0, "fast"], "country": ["SE", None, "DE"]})
>>> clean, rejects = schema.validate(raw)
>>> len(clean), list(rejects["reason"])
(1, ['unparseable timestamp in ts', "field 'latency_ms' is not a number"])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from metrics.arrow_lists import arrow_lists
from monitor.string_lists import (
    LIST_OF_STR,
    NOT_TEXT,
    PROBLEMS,
    arrow_list_problems,
    decoded_arrow_lists,
    parse_string_lists,
)

TYPES = ("float", "int", "bool", "str", LIST_OF_STR)
_TRUE = {"true", "1", "yes", "t"}
_FALSE = {"false", "0", "no", "f"}


@dataclass(frozen=True)
class FieldType:
    name: str
    type: str
    nullable: bool

    @property
    def spec(self) -> str:
        return self.type + ("?" if self.nullable else "")

    @property
    def is_numeric(self) -> bool:
        return self.type in ("float", "int", "bool")


@dataclass(frozen=True)
class Schema:
    time: str
    fields: tuple[FieldType, ...]

    @classmethod
    def parse(cls, spec: Mapping[str, str], time: str = "ts") -> Schema:
        """Build from ``{"column": "float?"}``; ValueError names a bad type."""
        fields = []
        for name, text in spec.items():
            if name == time:
                continue  # the event-time field is always there and always a timestamp
            if not isinstance(text, str) or text.rstrip("?") not in TYPES:
                raise ValueError(
                    f"field {name!r} has type {text!r}; use one of {', '.join(TYPES)} "
                    "with an optional trailing '?' for nullable"
                )
            fields.append(FieldType(name, text.rstrip("?"), text.endswith("?")))
        return cls(time, tuple(fields))

    def to_dict(self) -> dict[str, str]:
        return {f.name: f.spec for f in self.fields}

    def field(self, name: str) -> FieldType | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    @property
    def names(self) -> tuple[str, ...]:
        return (self.time, *(f.name for f in self.fields))

    def validate(
        self, raw: pd.DataFrame, max_time: pd.Timestamp | None = None
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Split ``raw`` into typed clean rows and rejects with columns ``row`` and ``reason``.

        ``row`` is the index label of the rejected row in ``raw``. Events later than
        ``max_time`` (when given) are rejected as from the future.
        """
        reasons = np.full(len(raw), None, dtype=object)
        rejected = np.zeros(len(raw), dtype=bool)

        def reject(mask: pd.Series | np.ndarray, reason: str) -> None:
            fresh = np.asarray(mask, dtype=bool) & ~rejected
            if fresh.any():
                reasons[fresh] = reason
                rejected[fresh] = True

        columns: dict[str, pd.Series] = {}
        if self.time not in raw.columns:
            reject(np.ones(len(raw), dtype=bool), f"missing field {self.time!r}")
            times = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
        else:
            times = parse_times(raw[self.time])
            nan = nan_mask(raw[self.time])
            reject(raw[self.time].isna().to_numpy() & ~nan, f"missing field {self.time!r}")
            reject(nan, f"field {self.time!r} is NaN")
            reject(times.isna(), f"unparseable timestamp in {self.time}")
            if max_time is not None:
                reject(times > max_time, f"timestamp in {self.time} is in the future")
        columns[self.time] = times

        for field in self.fields:
            if field.name not in raw.columns:
                if not field.nullable:
                    reject(np.ones(len(raw), dtype=bool), f"missing field {field.name!r}")
                columns[field.name] = _null_column(field, raw.index)
                continue
            values = raw[field.name]
            missing = values.isna()
            nan = nan_mask(values)
            if not field.nullable:
                reject(missing.to_numpy() & ~nan, f"field {field.name!r} is null")
            reject(nan, f"field {field.name!r} is NaN")
            if field.type == LIST_OF_STR:
                lists, problems = _string_lists(values, missing.to_numpy())
                for problem in PROBLEMS:
                    reject(problems == problem, f"field {field.name!r} {problem}")
                columns[field.name] = lists
                continue
            if field.type == "str" and values.dtype == object:
                values, undecodable = _decode_bytes(values)
                reject(undecodable, f"field {field.name!r} is not UTF-8 text")
            typed, mistyped = _coerce(field, values, missing)
            reject(mistyped, _type_error(field))
            if field.type in ("float", "int"):
                numbers = typed.to_numpy(dtype=np.float64, na_value=np.nan)
                reject(np.isinf(numbers), f"field {field.name!r} is not finite")
            if field.type == "int":
                # Int64 holds [-2**63, 2**63): a value outside (or infinite) made the cast
                # of the whole column raise, so one event stopped every other of its batch
                outside = np.isfinite(numbers) & ((numbers >= 2.0**63) | (numbers < -(2.0**63)))
                reject(outside, f"field {field.name!r} is outside the 64-bit integer range")
                typed = typed.where(np.isfinite(numbers) & ~outside)  # rejected rows only
            columns[field.name] = typed

        clean_mask = ~rejected
        # Replace the columns of a shallow copy: building a new frame from the columns
        # would consolidate (copy) every numeric column into one block.
        clean = raw.copy(deep=False)
        clean[self.time] = columns[self.time].astype("datetime64[ns, UTC]")
        for field in self.fields:
            clean[field.name] = _final_dtype(field, columns[field.name])
        if not clean_mask.all():
            clean = clean[clean_mask]
        clean = clean.reset_index(drop=True)
        rejects = pd.DataFrame(
            {"row": raw.index[rejected], "reason": reasons[rejected]}
        )
        return clean, rejects


def _string_lists(values: pd.Series, missing: np.ndarray) -> tuple[pd.Series, np.ndarray]:
    """A list field's values as the clean frame holds them, and each row's problem: an
    Arrow column stays in Arrow (:mod:`metrics.arrow_lists` reads it), anything else
    becomes Python lists (:mod:`monitor.string_lists`)."""
    held = arrow_lists(values)
    if held is None:
        return parse_string_lists(values, missing)
    problems = arrow_list_problems(held)
    if problems is not None:
        problems[missing] = None  # a null is the caller's to judge
        return values, problems
    decoded, undecodable = decoded_arrow_lists(held)  # bytes that are no text
    lists, problems = parse_string_lists(pd.Series(decoded, index=values.index, dtype=object),
                                         missing | undecodable)
    problems[undecodable & ~missing] = NOT_TEXT
    return lists, problems


class SourceNaN(float):
    """A NaN the source held, as opposed to the NaN pandas writes for a null. It is a
    float NaN to pandas and numpy (``isna`` is true, arithmetic gives NaN)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "nan"


SOURCE_NAN = SourceNaN("nan")


def nan_mask(values: pd.Series) -> np.ndarray:
    """Where ``values`` holds a NaN of the source's, as opposed to a null.

    >>> nan_mask(pd.Series([1.0, None, SOURCE_NAN, float("nan")], dtype=object)).tolist()
    [False, False, True, False]
    """
    if values.dtype == object:
        mask = np.zeros(len(values), dtype=bool)
        missing = np.flatnonzero(values.isna().to_numpy())
        if len(missing):
            found = values.to_numpy()[missing]
            mask[missing] = [isinstance(v, SourceNaN) for v in found]
        return mask
    return np.zeros(len(values), dtype=bool)


def parse_times(values: pd.Series) -> pd.Series:
    """UTC timestamps from ISO 8601 strings, epoch milliseconds or datetime objects (a
    column read from several files may mix them); NaT where unparseable."""
    if pd.api.types.is_datetime64_any_dtype(values):
        if getattr(values.dt, "tz", None) is None:
            return values.dt.tz_localize("UTC")
        return values.dt.tz_convert("UTC")
    if pd.api.types.is_string_dtype(values) and values.dtype != object:
        return pd.to_datetime(values, format="ISO8601", utc=True, errors="coerce").astype(
            "datetime64[ns, UTC]"
        )
    as_number = pd.to_numeric(values, errors="coerce")
    moments = None
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric:
        millis = as_number
    else:
        is_moment = values.map(lambda v: isinstance(v, datetime))
        if is_moment.any():
            moments = pd.to_datetime(values.where(is_moment), utc=True, errors="coerce")
        millis = as_number.where(~values.map(lambda v: isinstance(v, bool)) & ~is_moment)
    # Epoch milliseconds beyond year 9999 or NaN/inf are unparseable, not an overflow.
    finite = np.isfinite(millis.to_numpy(dtype=np.float64, na_value=np.nan))
    finite &= np.abs(millis.to_numpy(dtype=np.float64, na_value=np.nan)) < 2.5e14
    from_millis = pd.to_datetime(millis.where(finite), unit="ms", utc=True, errors="coerce")
    if numeric:  # no text to parse: the string test below was a fifth of decoding a batch
        return from_millis.astype("datetime64[ns, UTC]")
    text = values.where(~finite & values.map(lambda v: isinstance(v, str)))
    from_text = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    times = from_millis.fillna(from_text)
    if moments is not None:
        times = times.fillna(moments)
    return times.astype("datetime64[ns, UTC]")


def _coerce(field: FieldType, values: pd.Series, missing: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Typed values (null where missing or mistyped) and the mask of mistyped ones."""
    present = ~missing
    typed: pd.Series
    if field.type in ("float", "int"):
        if _is_plain_number(values):
            typed = values.astype("float64")
        elif pd.api.types.is_bool_dtype(values):
            typed = pd.Series(np.nan, index=values.index)
        else:
            typed = pd.to_numeric(values, errors="coerce").astype("float64")
            is_bool = values.map(lambda v: isinstance(v, bool | np.bool_))
            typed = typed.where(~is_bool)
        mistyped = present & typed.isna()
        if field.type == "int":
            arr = typed.to_numpy(dtype=np.float64, na_value=np.nan)
            with np.errstate(invalid="ignore"):
                fractional = np.isfinite(arr) & (arr != np.round(arr))
            mistyped |= fractional
            typed = typed.where(~fractional)
        return typed, mistyped
    if field.type == "bool":
        if pd.api.types.is_bool_dtype(values):
            typed = values.astype("boolean")
            return typed, pd.Series(False, index=values.index)
        as_text = values.map(lambda v: str(v).strip().lower() if v is not None else None)
        typed = pd.Series(pd.NA, index=values.index, dtype="boolean")
        typed[as_text.isin(_TRUE).to_numpy()] = True
        typed[as_text.isin(_FALSE).to_numpy()] = False
        return typed, present & typed.isna()
    # str: anything present is a string; containers (lists, dicts) are not
    if pd.api.types.is_string_dtype(values) and values.dtype != object:
        return values, pd.Series(False, index=values.index)
    is_container = values.map(lambda v: isinstance(v, list | dict | tuple))
    typed = values.where(missing | is_container, values.astype(str)).where(~is_container)
    return typed.astype(object).where(typed.notna(), None), present & is_container


def _decode_bytes(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """``values`` with UTF-8 bytes decoded to text, and where bytes were not UTF-8."""
    items = values.to_numpy()
    positions = [i for i, v in enumerate(items) if isinstance(v, bytes | bytearray)]
    undecodable = np.zeros(len(values), dtype=bool)
    if not positions:
        return values, undecodable
    items = items.copy()
    for i in positions:
        try:
            items[i] = bytes(items[i]).decode("utf-8")
        except UnicodeDecodeError:
            items[i], undecodable[i] = None, True
    return pd.Series(items, index=values.index, dtype=object), undecodable


def _is_plain_number(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _type_error(field: FieldType) -> str:
    kinds = {"float": "a number", "int": "an integer", "bool": "a boolean", "str": "a string"}
    return f"field {field.name!r} is not {kinds[field.type]}"


def _null_column(field: FieldType, index: pd.Index) -> pd.Series:
    return pd.Series(None, index=index, dtype=object)


def _final_dtype(field: FieldType, values: pd.Series) -> pd.Series:
    if field.type == LIST_OF_STR and isinstance(values.dtype, pd.ArrowDtype):
        return values  # lists of strings in Arrow, nulls as nulls (see _string_lists)
    if field.type == "float":
        return values.astype("float64")
    if field.type == "int":
        return values.astype("float64").astype("Int64")
    if field.type == "bool":
        return values.astype("boolean")
    if values.dtype == object or isinstance(values.dtype, pd.StringDtype):
        return values  # already strings (nulls as None or NA); no need to convert
    return values.astype(object).where(values.notna(), None)
