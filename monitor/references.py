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
from monitor.errors import DefinitionError
from monitor.schema import Schema
from monitor.sources.files import read_events
from monitor.spec import MetricSpec


class References:
    """Resolves reference names to fitted profiles.

    A data file is read once per name; a profile is fitted per set of columns a metric
    compares, so an id column nobody compares is never profiled.
    """

    def __init__(
        self,
        profiles: Mapping[str, ReferenceProfile] | None = None,
        paths: Mapping[str, str | Path] | None = None,
    ) -> None:
        self._profiles = dict(profiles or {})
        self._paths = {name: Path(p) for name, p in (paths or {}).items()}
        self._events: dict[str, pd.DataFrame] = {}
        self._fitted: dict[tuple[str, tuple[str, ...]], ReferenceProfile] = {}

    def profile(self, name: str, schema: Schema, columns: Sequence[str]) -> ReferenceProfile:
        """The profile ``name``, covering at least ``columns``."""
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
        key = (name, tuple(sorted(columns)))
        if key not in self._fitted:
            if name not in self._events:
                clean, _ = schema.validate(read_events(path).events)
                self._events[name] = clean
            self._fitted[key] = fit_profile(self._events[name], schema, key[1], name)
        return self._fitted[key]


def fit_profile(
    events: pd.DataFrame,
    schema: Schema,
    columns: Sequence[str] | None = None,
    name: str = "reference",
) -> ReferenceProfile:
    """Profile schema fields (all, or ``columns``): numbers as numeric, the rest as categories."""
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
        profile = references.profile(name, metric.stream.schema, list(metric.aggregate.columns()))
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
