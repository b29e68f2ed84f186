"""Frozen, serializable definitions of streams and metrics.

A :class:`MetricSpec` is a metric's whole definition: its stream, its aggregate, its
window, its segments, its per-event function, its alert rules, its owner. Its ``id``
hashes only what decides its values (:meth:`MetricSpec.identity`), so a change to any of
that gives a new id — the catalog keeps values of two definitions apart by it — while
editing the owner, the description or the alert rules, moving the per-event function to
another module, or pointing the stream at another topic or table keeps it.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import pandas as pd

from metrics.base import Aggregate, canonical_json
from monitor.alerts.rules import Rule
from monitor.function_code import code_text
from monitor.schema import Schema
from monitor.windows import Windows, parse_duration_ns

if TYPE_CHECKING:
    from monitor.labels import LabelSource

OVERALL = "*"  # the segment that holds every event
BATCH_ENGINES = ("local", "spark")  # where the batch stage computes a stream

PerEventFunction = Callable[[pd.DataFrame], "pd.Series[Any]"]


@dataclass(frozen=True)
class StreamSpec:
    """Where a stream's events are found in each stage, and what they look like."""

    name: str
    schema: Schema
    topic: str | None = None
    table: str | None = None
    query: str | None = None
    files: str | None = None
    # Where the batch stage computes it, "local" or "spark", and Spark's master (None:
    # local, local[*]); the command line's --engine/--master override both. Like table=
    # or files=, not part of any metric's identity: every engine gives the same values.
    engine: str | None = None
    master: str | None = None

    @property
    def time(self) -> str:
        return self.schema.time

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "time": self.schema.time,
            "schema": self.schema.to_dict(),
            "topic": self.topic,
            "table": self.table,
            "query": self.query,
            "files": self.files,
            # only when named: what a stream without them holds cannot change (legacy_id)
            **({"engine": self.engine} if self.engine else {}),
            **({"master": self.master} if self.master else {}),
        }


@dataclass(frozen=True)
class PerEvent:
    """A vectorised per-event function ``f(events) -> Series``.

    ``code_hash`` hashes its code without decorators, name or module
    (:func:`monitor.function_code.code_text`): it is what the metric's id holds. ``path``
    (where it is defined) and ``source_hash`` (of its source as ``inspect`` gives it,
    decorators included) are kept in the stored definition, as before ids left them out.
    """

    function: PerEventFunction = field(compare=False)
    path: str
    source_hash: str
    code_hash: str

    @classmethod
    def of(cls, function: PerEventFunction) -> PerEvent:
        path = f"{function.__module__}:{function.__qualname__}"
        try:
            source = inspect.getsource(function)
        except (OSError, TypeError):
            source = path  # e.g. defined in a REPL: hashed as it always was (legacy_id)
        return cls(function, path, _hash(source), _hash(code_text(function)))

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "source_hash": self.source_hash}


@dataclass(frozen=True)
class MetricSpec:
    name: str
    stream: StreamSpec
    aggregate: Aggregate
    window: str = "1h"
    lateness: str = "0s"
    segment_by: tuple[str, ...] = ()
    alerts: tuple[Rule, ...] = ()
    per_event: PerEvent | None = None
    owner: str | None = None
    description: str = ""
    schedule: str | None = None  # a cron expression for the batch stage; None: every window
    labels: LabelSource | None = None  # where its labels come from (monitor.labels)

    @cached_property  # parsed once: the engine asks for it per chunk and per metric
    def windows(self) -> Windows:
        return Windows.parse(self.window)

    @cached_property
    def lateness_ns(self) -> int:
        return parse_duration_ns(self.lateness)

    @property
    def fields(self) -> tuple[str, ...] | None:
        """The value fields; None while they depend on a reference profile not yet bound."""
        try:
            return self.aggregate.fields()
        except ValueError:
            if self.aggregate.reference_name() is None:
                raise
            return None

    def to_dict(self) -> dict[str, Any]:
        """The whole definition, as the catalog stores it."""
        return {
            "name": self.name,
            "stream": self.stream.to_dict(),
            "aggregate": self.aggregate.to_dict(),
            "window": self.window,
            "lateness": self.lateness,
            "segment_by": list(self.segment_by),
            "alerts": [rule.to_dict() for rule in self.alerts],
            "per_event": self.per_event.to_dict() if self.per_event else None,
            # only when there are labels: what a metric without them holds cannot change
            **({"labels": self.labels.to_dict()} if self.labels else {}),
        }

    def identity(self) -> dict[str, Any]:
        """What decides the metric's values, under the name the user gave it.

        The per-event function's code (not where it is defined, nor its decorators), the
        aggregate's parameters, the window, the lateness, the segments and the stream's
        schema. The whole schema, not only the columns the metric names: every stage keeps
        only the events valid against all of it, and a per-event function sees every
        field. Left out: where the stream is found (its name, topic, table, query or
        files), the alert rules (they decide alerts, not values; evaluation uses the
        app's rules of the day), owner, description and schedule. A metric joined to
        labels adds its label source's identity (:meth:`monitor.labels.LabelSource.identity`).
        """
        return {
            "name": self.name,
            "time": self.stream.time,
            "schema": self.stream.schema.to_dict(),
            "aggregate": self.aggregate.to_dict(),
            "window": self.window,
            "lateness": self.lateness,
            "segment_by": list(self.segment_by),
            "per_event": self.per_event.code_hash if self.per_event else None,
            **({"labels": self.labels.identity()} if self.labels else {}),
        }

    @property
    def id(self) -> str:
        """A stable hash of :meth:`identity`: a new id is a new version of the metric."""
        return _hash(canonical_json(self.identity()))

    @property
    def legacy_id(self) -> str:
        """The id this definition had before ids held only what decides values: a hash of
        all of :meth:`to_dict`. A catalog version stored under it is this definition, and
        the catalog adopts it under :attr:`id` (``monitor.storage.definitions``), so an
        upgrade makes no metric a new version. It must stay the old formula: what
        :meth:`to_dict` holds cannot change."""
        return _hash(canonical_json(self.to_dict()))


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
