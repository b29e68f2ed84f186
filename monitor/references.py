"""Reference profiles by name, and binding them into the metrics that compare against them.

A drift metric names its reference (``reference="training"``); the profile itself is
fitted once from reference data and kept as JSON. Here a name is resolved to a profile:
one given directly, a profile JSON file, or a data file to fit it from (declared with
``mon.reference(name, path)`` or passed as ``--reference FILE``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from metrics.drift import ReferenceProfile
from monitor.errors import DefinitionError
from monitor.schema import Schema
from monitor.sources.files import read_events
from monitor.spec import MetricSpec


class References:
    """Resolves reference names to fitted profiles, fitting each data file at most once."""

    def __init__(
        self,
        profiles: Mapping[str, ReferenceProfile] | None = None,
        paths: Mapping[str, str | Path] | None = None,
    ) -> None:
        self._profiles = dict(profiles or {})
        self._paths = {name: Path(p) for name, p in (paths or {}).items()}

    def profile(self, name: str, schema: Schema) -> ReferenceProfile:
        if name in self._profiles:
            return self._profiles[name]
        if name not in self._paths:
            raise LookupError(
                f"reference {name!r} is not available: pass --reference FILE, or declare it "
                f"with mon.reference({name!r}, 'path/to/profile.json or data file')"
            )
        profile = load_or_fit(self._paths[name], schema)
        self._profiles[name] = profile
        return profile


def load_or_fit(path: Path, schema: Schema) -> ReferenceProfile:
    """A profile JSON file as is, or a profile fitted on a data file's valid events."""
    if path.suffix.lower() == ".json" and _looks_like_profile(path):
        return ReferenceProfile.load(path)
    raw = read_events(path).events
    clean, _ = schema.validate(raw)
    return fit_profile(clean, schema)


def fit_profile(events: pd.DataFrame, schema: Schema) -> ReferenceProfile:
    """Profile every schema field: numbers as numeric, strings and booleans as categories."""
    numeric = [f.name for f in schema.fields if f.type in ("float", "int")]
    categorical = [f.name for f in schema.fields if f.type in ("str", "bool")]
    frame = events[numeric + categorical].copy()
    for name in categorical:
        frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    for name in numeric:
        frame[name] = frame[name].astype("float64")
    return ReferenceProfile.fit(frame)


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
        profile = references.profile(name, metric.stream.schema)
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
