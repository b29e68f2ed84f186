"""Reference profiles by name, and binding them into the metrics that compare against them.

A drift metric names its reference (``reference="training"``); the profile itself is
fitted once from reference data and kept as JSON. Here a name is resolved to a profile:
one given directly, a profile JSON file, or a data file to fit it from (declared with
``mon.reference(name, path)`` or passed as ``--reference FILE``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from metrics.drift import ReferenceProfile
from metrics.drift.profile import fit_calibration
from metrics.estimation.calibration import ScoreCalibration
from monitor.errors import DefinitionError
from monitor.schema import FieldType, Schema
from monitor.sources.files import read_events
from monitor.spec import MetricSpec

# (score, label) column pairs to calibrate: see Aggregate.reference_calibrations.
Calibrations = tuple[tuple[str, str], ...]


class References:
    """Resolves reference names to fitted profiles.

    A data file is read once per name; a profile is fitted per set of columns a metric
    compares (and of score calibrations it reads), so an id column nobody compares is never
    profiled.
    """

    def __init__(
        self,
        profiles: Mapping[str, ReferenceProfile] | None = None,
        paths: Mapping[str, str | Path] | None = None,
    ) -> None:
        self._profiles = dict(profiles or {})
        self._paths = {name: Path(p) for name, p in (paths or {}).items()}
        self._events: dict[str, pd.DataFrame] = {}
        self._fitted: dict[tuple[str, tuple[str, ...], Calibrations], ReferenceProfile] = {}

    def profile(self, name: str, schema: Schema, columns: Sequence[str],
                calibrations: Calibrations = ()) -> ReferenceProfile:
        """The profile ``name``, covering at least ``columns``; fitted from data, it also
        holds the calibrations of the ``(score, label)`` pairs in ``calibrations``."""
        if name in self._profiles:
            return self._profiles[name]
        if name not in self._paths:
            raise LookupError(
                f"reference {name!r} is not available: pass --reference FILE, or declare it "
                f"with mon.reference({name!r}, 'path/to/profile.json or data file')"
            )
        path = self._paths[name]
        if not path.is_file():
            raise LookupError(
                f"reference {name!r} is declared at {path}, which does not exist; create it "
                "or pass --reference FILE"
            )
        if path.suffix.lower() == ".json" and _looks_like_profile(path):
            self._profiles[name] = ReferenceProfile.load(path)
            return self._profiles[name]
        key = (name, tuple(sorted(columns)), tuple(sorted(set(calibrations))))
        if key not in self._fitted:
            if name not in self._events:
                self._events[name] = read_events(path).events
            self._fitted[key] = fit_reference(self._events[name], schema, key[1], name, key[2])
        return self._fitted[key]



def fit_reference(
    events: pd.DataFrame,
    schema: Schema,
    columns: Sequence[str] | None = None,
    name: str = "reference",
    calibrations: Calibrations = (),
) -> ReferenceProfile:
    """Profile raw reference data: validate the schema fields it needs, then fit them.

    A reference is not a window, so it needs no event-time column (one that is there is
    ignored), and only the fields profiled (all, or ``columns``) are checked: a field
    nobody compares may be missing or malformed. A field to profile that the data lacks is
    named, as is the reason when every row is rejected. Each ``(score, label)`` pair in
    ``calibrations`` is calibrated on its own rows (see :func:`fit_calibrations`).
    """
    if len(events) == 0:
        raise ValueError(f"reference {name!r} has no rows to profile")
    fields = tuple(f for f in schema.fields if columns is None or f.name in columns)
    if missing := [f.name for f in fields if f.name not in events.columns]:
        present = ", ".join(str(c) for c in events.columns) or "none"
        raise ValueError(
            f"reference {name!r} has no column(s) {', '.join(map(repr, missing))} to profile "
            f"(its columns: {present}); a reference needs the columns its metrics compare, "
            f"and no time column"
        )
    untimed = events[[f.name for f in fields]].assign(**{schema.time: _ANY_TIME})
    clean, rejects = Schema(schema.time, fields).validate(untimed)
    if len(clean) == 0 and len(rejects):
        reasons = rejects["reason"].value_counts()
        shown = "; ".join(f"{n} {reason}" for reason, n in reasons.head(3).items())
        raise ValueError(
            f"reference {name!r}: all {len(rejects)} rows were rejected ({shown}); fix the "
            "reference data or the stream's schema"
        )
    profile = fit_profile(clean.drop(columns=schema.time), schema, columns, name)
    return profile.with_calibrations(fit_calibrations(events, schema, calibrations, name))


def fit_calibrations(events: pd.DataFrame, schema: Schema, calibrations: Calibrations,
                     name: str) -> list[ScoreCalibration]:
    """Calibrate each ``(score, label)`` pair on the reference rows whose score and label are
    both valid: the score as the stream's schema types it, the label as a nullable bool
    (predictions usually carry no label, so the stream's schema need not have one).
    Validated apart from the profiled columns, so a bad label does not drop a row from the
    drift profile; a missing column, or no valid row, is named."""
    fitted = []
    for score, label in calibrations:
        if missing := [c for c in (score, label) if c not in events.columns]:
            raise ValueError(
                f"reference {name!r} has no column(s) {', '.join(map(repr, missing))}: "
                f"estimating performance from score {score!r} needs reference data with the "
                f"score and the label {label!r} (its columns: "
                f"{', '.join(str(c) for c in events.columns) or 'none'})")
        fields = tuple(dataclasses.replace(f, nullable=True) for f in (
            schema.field(score) or FieldType(score, "float", True),
            schema.field(label) or FieldType(label, "bool", True)))
        rows = events[[score, label]].assign(**{schema.time: _ANY_TIME})
        clean, rejects = Schema(schema.time, fields).validate(rows)
        if len(clean) == 0 and len(rejects):
            shown = "; ".join(f"{n} {reason}" for reason, n in
                              rejects["reason"].value_counts().head(3).items())
            raise ValueError(f"reference {name!r}: no row has a valid score {score!r} and "
                             f"label {label!r} ({shown})")
        fitted.append(fit_calibration(clean, score, label, name))
    return fitted


# Reference rows are validated with this time in place of theirs: a reference has no windows.
_ANY_TIME = pd.Timestamp(0, tz="UTC")


def fit_profile(
    events: pd.DataFrame,
    schema: Schema,
    columns: Sequence[str] | None = None,
    name: str = "reference",
) -> ReferenceProfile:
    """Profile schema fields (all, or ``columns``) of rows the schema validated: numbers as
    numeric, the rest as categories. For raw reference data use :func:`fit_reference`."""
    wanted = [f for f in schema.fields if columns is None or f.name in columns]
    numeric = [f.name for f in wanted if f.type in ("float", "int")]
    categorical = [f.name for f in wanted if f.type in ("str", "bool")]
    frame = events[numeric + categorical].copy()
    for column in categorical:
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    for column in numeric:
        frame[column] = frame[column].astype("float64")
    return ReferenceProfile.fit(frame, name=name)


def _looks_like_profile(path: Path) -> bool:
    with path.open(encoding="utf-8") as handle:
        head = handle.read(1)
        rest = handle.readline()
    return head == "{" and '"columns"' in (head + rest + handle.read(4096))


def bind(metric: MetricSpec, references: References) -> MetricSpec:
    """The metric with its reference profile bound in, ready to compute."""
    name = metric.aggregate.reference_name()
    if name is None:
        return metric
    try:
        profile = references.profile(name, metric.stream.schema, list(metric.aggregate.columns()),
                                     metric.aggregate.reference_calibrations())
        aggregate = metric.aggregate.bind_reference(profile)
    except (LookupError, ValueError) as err:
        raise DefinitionError(f"metric {metric.name!r}", str(err).strip("'\"")) from None
    fields = aggregate.fields()
    for rule in metric.alerts:
        if rule.field not in fields:
            raise DefinitionError(
                f"metric {metric.name!r}",
                f"alert rule {rule.title} watches field {rule.field!r}, but against reference "
                f"{name!r} the fields are {', '.join(fields)}",
            )
    return dataclasses.replace(metric, aggregate=aggregate)
