"""A reference profile: per-column bins and counts fitted once on reference data, stored as JSON.

Drift compares a current window against the profile alone, so the raw reference data is
not needed after fitting. A profile may also hold score calibrations (a score column
against a label column, :mod:`metrics.estimation.calibration`), which performance
estimation reads. The profile's ``id`` is a hash of its canonical JSON: drift
aggregates put it in their parameters, so refitting the reference gives new aggregate
ids and stored results never mix two references.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from metrics.base import canonical_json
from metrics.classification import binary_column
from metrics.drift.columns import (
    CategoricalProfile,
    ColumnProfile,
    NumericProfile,
    column_from_dict,
)
from metrics.estimation.calibration import ScoreCalibration

__all__ = ["FORMAT", "ProfileColumnError", "ReferenceProfile", "fit_calibration"]

FORMAT = 1  # bumped when the JSON layout changes, so an old file fails loudly
DEFAULT_BINS = 100
DEFAULT_MAX_CATEGORIES = 10_000


class ProfileColumnError(ValueError, KeyError):
    """A column that the reference profile does not have (a ValueError and a KeyError)."""

    __str__ = ValueError.__str__  # KeyError would quote the message


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """Reference bins per column, fitted once; equal profiles have equal ``id``.

    >>> ref = pd.DataFrame({"latency": [10.0, 20.0, 30.0, 40.0], "device": list("aabb")})
    >>> profile = ReferenceProfile.fit(ref, name="training", bins=2)
    >>> profile.column("latency").edges
    (10.0, 25.0, 40.0)
    >>> profile.column("device").categories
    ('a', 'b')
    >>> ReferenceProfile.from_json(profile.to_json()) == profile
    True
    >>> try:
    ...     profile.column("country")
    ... except ValueError as err:
    ...     print(err)  # doctest: +ELLIPSIS
    reference profile 'training' (...) has no column 'country'; it has: device, latency
    """

    name: str
    columns: Mapping[str, ColumnProfile]
    calibrations: Mapping[tuple[str, str], ScoreCalibration] = field(default_factory=dict)
    _id: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a reference profile needs a name, e.g. 'training'")
        if not self.columns:
            raise ValueError(f"reference profile {self.name!r} has no columns")
        object.__setattr__(self, "columns", dict(self.columns))
        object.__setattr__(self, "calibrations", dict(sorted(self.calibrations.items())))
        for (score, label), calibration in self.calibrations.items():
            if (calibration.score, calibration.label) != (score, label):
                raise ValueError(f"reference profile {self.name!r}: the calibration filed "
                                 f"under {(score, label)} is of "
                                 f"{(calibration.score, calibration.label)}")
        digest = hashlib.sha256(canonical_json(self._content()).encode()).hexdigest()
        object.__setattr__(self, "_id", digest[:16])

    # -- fitting ----------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        df: pd.DataFrame,
        columns: Sequence[str] | None = None,
        bins: int = DEFAULT_BINS,
        *,
        name: str = "reference",
        categorical: Iterable[str] = (),
        numeric: Iterable[str] = (),
        max_categories: int = DEFAULT_MAX_CATEGORIES,
        calibrations: Iterable[tuple[str, str]] = (),
    ) -> ReferenceProfile:
        """Fit bins on reference data.

        ``columns`` defaults to every column except datetime and timedelta ones. A column
        is numeric when its dtype is (bool counts as categorical) and categorical
        otherwise; ``categorical`` and ``numeric`` override that per column. Numeric
        columns get ``bins`` quantile bins (fewer when quantiles repeat), and a bin of its
        own for every value of a column with at most ``bins`` distinct values and for any
        value holding at least ``1/bins`` of the reference (see
        :mod:`metrics.drift.columns`); categorical ones
        may have at most ``max_categories`` distinct values, so an id column fails
        instead of making a huge profile. Each ``(score, label)`` pair of ``calibrations``
        gets a score calibration fitted on the rows where both are known.
        """
        if not isinstance(bins, int) or isinstance(bins, bool) or bins < 1:
            raise ValueError(f"bins must be a positive integer, got {bins!r}")
        as_categorical, as_numeric = set(categorical), set(numeric)
        if both := sorted(as_categorical & as_numeric):
            raise ValueError(f"columns {both} are asked to be both categorical and numeric")
        if columns is None:
            columns = [
                str(c) for c in df.columns
                if not (pd.api.types.is_datetime64_any_dtype(df[c].dtype)
                        or pd.api.types.is_timedelta64_dtype(df[c].dtype))
            ]
        columns = list(columns)
        if len(set(columns)) != len(columns):
            raise ValueError(f"columns repeat: {columns}")
        missing = [c for c in [*columns, *sorted(as_categorical | as_numeric)] if c not in df]
        if missing:
            raise ValueError(f"the reference frame has no column(s) {sorted(set(missing))}")
        if stray := sorted((as_categorical | as_numeric) - set(columns)):
            raise ValueError(f"type overrides name columns that are not profiled: {stray}")

        fitted: dict[str, ColumnProfile] = {}
        for column in columns:
            series = df[column]
            if column in as_numeric or (column not in as_categorical and _is_numeric(series)):
                fitted[column] = _fit_numeric(column, series, bins)
            else:
                fitted[column] = _fit_categorical(column, series, max_categories)
        return cls(name=name, columns=fitted).with_calibrations(
            fit_calibration(df, score, label, name) for score, label in calibrations)

    def with_calibrations(self, calibrations: Iterable[ScoreCalibration]) -> ReferenceProfile:
        """This profile with ``calibrations`` added (replacing any of the same columns)."""
        added = {(c.score, c.label): c for c in calibrations}
        return ReferenceProfile(self.name, self.columns, {**self.calibrations, **added})

    # -- lookup -----------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The first 16 hex digits of the sha256 of the profile's canonical JSON."""
        return self._id

    def column(self, name: str) -> ColumnProfile:
        try:
            return self.columns[name]
        except KeyError:
            raise ProfileColumnError(
                f"reference profile {self.name!r} ({self.id}) has no column {name!r}; "
                f"it has: {', '.join(sorted(self.columns))}"
            ) from None

    def numeric_column(self, name: str) -> NumericProfile:
        """The column's profile, which must be numeric."""
        column = self.column(name)
        if not isinstance(column, NumericProfile):
            raise ValueError(
                f"column {name!r} is categorical in reference profile {self.name!r} "
                f"({self.id}); this needs a numeric column"
            )
        return column

    def calibration(self, score: str, label: str) -> ScoreCalibration:
        """The calibration of ``score`` against ``label``; ValueError saying how to fit it."""
        try:
            return self.calibrations[(score, label)]
        except KeyError:
            held = ", ".join(f"{s!r} against {lab!r}" for s, lab in self.calibrations) or "none"
            raise ProfileColumnError(
                f"reference profile {self.name!r} ({self.id}) has no calibration of score "
                f"{score!r} against label {label!r} (it has: {held}); fit it from labelled "
                f"reference data with ReferenceProfile.fit(..., calibrations=[({score!r}, "
                f"{label!r})]), or declare the data file with mon.reference()"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ReferenceProfile) and self._id == other._id

    def __hash__(self) -> int:
        return hash(self._id)

    def __repr__(self) -> str:
        return f"ReferenceProfile(name={self.name!r}, id={self.id!r}, columns={list(self.columns)})"

    # -- serialization ----------------------------------------------------------------

    def _content(self) -> dict[str, Any]:
        content: dict[str, Any] = {
            "format": FORMAT,
            "name": self.name,
            "columns": {name: col.to_dict() for name, col in self.columns.items()},
        }
        if self.calibrations:  # only then: profiles without keep the ids they had
            content["calibrations"] = [c.to_dict() for c in self.calibrations.values()]
        return content

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready content plus the id, which :meth:`from_dict` checks."""
        return {**self._content(), "id": self.id}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        if data.get("format") != FORMAT:
            raise ValueError(
                f"reference profile format {data.get('format')!r} is not supported "
                f"(this version reads format {FORMAT})"
            )
        profile = cls(
            name=data["name"],
            columns={name: column_from_dict(col) for name, col in data["columns"].items()},
            calibrations={(c["score"], c["label"]): ScoreCalibration.from_dict(c)
                          for c in data.get("calibrations", ())},
        )
        stored = data.get("id")
        if stored is not None and stored != profile.id:
            raise ValueError(
                f"reference profile {profile.name!r} says its id is {stored} but its content "
                f"hashes to {profile.id}: the file was edited or damaged"
            )
        return profile

    def to_json(self, indent: int | None = None) -> str:
        """JSON text; floats are written with repr, so they read back bit-exact."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> ReferenceProfile:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | os.PathLike[str]) -> None:
        with open(path, "w", encoding="utf-8") as file:
            file.write(self.to_json(indent=1))
            file.write("\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ReferenceProfile:
        with open(path, encoding="utf-8") as file:
            return cls.from_json(file.read())


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(
        series.dtype
    )


def _fit_numeric(column: str, series: pd.Series, bins: int) -> NumericProfile:
    try:
        values = series.to_numpy(dtype="float64", na_value=float("nan"))
    except (TypeError, ValueError):
        raise ValueError(
            f"column {column!r} of dtype {series.dtype} cannot be profiled as numeric"
        ) from None
    try:
        return NumericProfile.fit(values, bins)
    except ValueError as err:
        raise ValueError(f"column {column!r}: {err}") from None


def _fit_categorical(column: str, series: pd.Series, max_categories: int) -> CategoricalProfile:
    if pd.api.types.is_float_dtype(series.dtype):
        values = series.dropna()
        if not (values == values.round()).all():
            raise ValueError(
                f"column {column!r} has non-integral floats; only str, int and bool columns "
                "can be categorical"
            )
    distinct = series.nunique(dropna=True)
    if distinct > max_categories:
        raise ValueError(
            f"column {column!r} has {distinct} distinct values, more than max_categories="
            f"{max_categories}; leave it out of the profile or raise the limit"
        )
    try:
        return CategoricalProfile.fit(series)
    except ValueError as err:
        raise ValueError(f"column {column!r}: {err}") from None


def fit_calibration(df: pd.DataFrame, score: str, label: str, name: str = "reference"
                    ) -> ScoreCalibration:
    """The calibration of ``score`` against ``label`` in reference frame ``df``; a
    ValueError names a missing or mistyped column."""
    if missing := [c for c in (score, label) if c not in df]:
        raise ValueError(f"reference {name!r} has no column(s) {missing}: calibrating score "
                         f"{score!r} needs the score and the label {label!r}")
    try:
        scores = df[score].to_numpy(dtype="float64", na_value=float("nan"))
    except (TypeError, ValueError):
        raise ValueError(f"reference {name!r}: score column {score!r} of dtype "
                         f"{df[score].dtype} is not numeric") from None
    try:
        labels = binary_column(df, label)
    except ValueError as err:
        raise ValueError(f"reference {name!r}: {err}") from None
    try:
        return ScoreCalibration.fit(scores, labels, score, label)
    except ValueError as err:
        raise ValueError(f"reference {name!r}: {err}") from None
