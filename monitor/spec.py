"""Frozen, serializable definitions of streams and metrics.

A :class:`MetricSpec` is everything that decides a metric's values: its stream, its
aggregate, its window, its segments, its per-event function (by import path and a hash of
its source) and its alert rules. Its ``id`` hashes all of that, so changing any of it
gives a new id — the later stages use this to keep values of two definitions apart.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pandas as pd

from metrics.base import Aggregate, canonical_json
from monitor.alerts.rules import Rule
from monitor.schema import Schema
from monitor.windows import Windows, parse_duration_ns

OVERALL = "*"  # the segment that holds every event

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
        }


@dataclass(frozen=True)
class PerEvent:
    """A vectorised per-event function ``f(events) -> Series``, named by import path."""

    function: PerEventFunction = field(compare=False)
    path: str
    source_hash: str

    @classmethod
    def of(cls, function: PerEventFunction) -> PerEvent:
        path = f"{function.__module__}:{function.__qualname__}"
        try:
            source = inspect.getsource(function)
        except (OSError, TypeError):
            source = path  # e.g. defined in a REPL: the path is all we can hash
        return cls(function, path, hashlib.sha256(source.encode()).hexdigest()[:16])

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
        return {
            "name": self.name,
            "stream": self.stream.to_dict(),
            "aggregate": self.aggregate.to_dict(),
            "window": self.window,
            "lateness": self.lateness,
            "segment_by": list(self.segment_by),
            "alerts": [rule.to_dict() for rule in self.alerts],
            "per_event": self.per_event.to_dict() if self.per_event else None,
        }

    @property
    def id(self) -> str:
        """A stable hash of everything that decides the metric's values and alerts.

        Owner, description and schedule are left out: editing them does not change a value.
        """
        return hashlib.sha256(canonical_json(self.to_dict()).encode()).hexdigest()[:16]
