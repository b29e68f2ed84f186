"""Where a metric's labels come from: the declaration a user writes, and what it resolves to.

    mon.stream("outcomes", table="outcomes", time="ts",
               schema={"prediction_id": "str", "clicked": "bool"})
    mon.metric("click_auc", "home", metrics.auc("clicked", "score"), window="1h",
               labels=Labels("outcomes", on="prediction_id", horizon="7d", mature_at=0.95))

``on`` names the id column of both streams, or a pair ``(prediction column, label
column)``. A prediction takes the label with its id stamped within ``horizon`` after it
(or up to ``early`` before it; by default the horizon), the earliest such label when
there are several (:mod:`monitor.label_join`). The registry checks a declaration against
both streams and resolves it to a :class:`LabelSource`; a problem is raised naming the
metric.

A window is *mature* once ``mature_at`` of its predictions are labelled, or once its
horizon has passed; alert rules wait for it (:mod:`monitor.label_maturity`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from monitor.label_join import JoinRule
from monitor.schema import FieldType, Schema
from monitor.spec import StreamSpec
from monitor.windows import parse_duration_ns

JOINABLE_ID_TYPES = ("str", "int")


@dataclass(frozen=True)
class Labels:
    """A metric's label source, as declared (see the module)."""

    stream: str | StreamSpec  # the label stream, by name or as mon.stream() returned it
    on: str | tuple[str, str]
    horizon: str = "7d"
    mature_at: float = 1.0
    early: str | None = None  # None: the horizon

    def id_columns(self) -> tuple[str, str]:
        """(prediction id column, label id column); ValueError when ``on`` is neither a
        column name nor a pair of them."""
        on = self.on
        if isinstance(on, str) and on:
            return on, on
        if (isinstance(on, tuple | list) and len(on) == 2
                and all(isinstance(c, str) and c for c in on)):
            return on[0], on[1]
        raise ValueError(f"on= must name the id column, or a pair (prediction column, label "
                         f"column), got {on!r}")

    def problem(self) -> str | None:
        """What is wrong with the declaration's own parameters, or None."""
        try:
            self.id_columns()
        except ValueError as err:
            return str(err)
        for name, text in (("horizon", self.horizon), ("early", self.early)):
            if text is None:
                continue
            try:
                ns = parse_duration_ns(text)
            except (TypeError, ValueError) as err:
                return f"labels {name}: {err}"
            if name == "horizon" and ns == 0:
                return (f"labels horizon {text!r} must be longer than zero: it is how long "
                        "after a prediction its label may come, e.g. '7d'")
        mature = self.mature_at
        if isinstance(mature, bool) or not isinstance(mature, int | float) or not 0 < mature <= 1:
            return (f"labels mature_at={mature!r}: give the share of labelled predictions "
                    "that makes a window mature, in (0, 1] (1: every prediction labelled)")
        return None


@dataclass(frozen=True)
class LabelSource:
    """A metric's label source resolved against its streams (see :class:`Labels`)."""

    stream: StreamSpec
    prediction_id: str
    label_id: str
    horizon: str
    early: str
    mature_at: float

    @cached_property
    def horizon_ns(self) -> int:
        return parse_duration_ns(self.horizon)

    @cached_property
    def early_ns(self) -> int:
        return parse_duration_ns(self.early)

    @property
    def value_columns(self) -> tuple[str, ...]:
        """The label stream's columns a joined prediction gains: all but its id and time."""
        return value_columns(self.stream.schema, self.label_id)

    def rule(self, prediction_time: str) -> JoinRule:
        return JoinRule(self.prediction_id, prediction_time, self.label_id, self.stream.time,
                        self.value_columns, self.horizon_ns, self.early_ns)

    def identity(self) -> dict[str, Any]:
        """What decides the joined values: the label schema and the join, not the stream's
        name or where it is found, nor ``mature_at`` (it decides alerts, not values)."""
        return {"time": self.stream.time, "schema": self.stream.schema.to_dict(),
                "on": [self.prediction_id, self.label_id], "horizon": self.horizon,
                "early": self.early}

    def to_dict(self) -> dict[str, Any]:
        return {**self.identity(), "stream": self.stream.name, "mature_at": self.mature_at}


def value_columns(schema: Schema, label_id: str) -> tuple[str, ...]:
    return tuple(f.name for f in schema.fields if f.name != label_id)


def resolve(labels: Labels, predictions: StreamSpec, streams: dict[str, StreamSpec]
            ) -> LabelSource:
    """The declaration checked against the prediction stream and the registered streams;
    a ValueError saying what is wrong and what to do (the registry names the metric)."""
    if not isinstance(labels, Labels):
        raise ValueError(f"labels= takes monitor.Labels(stream, on=..., horizon=...), "
                         f"not {labels!r}")
    if problem := labels.problem():
        raise ValueError(problem)
    name = labels.stream.name if isinstance(labels.stream, StreamSpec) else labels.stream
    if name not in streams:
        known = ", ".join(sorted(streams)) or "none registered"
        raise ValueError(f"unknown label stream {name!r}; declare it with "
                         f"mon.stream() first (known: {known})")
    stream = streams[name]
    if stream.name == predictions.name:
        raise ValueError(f"labels come from another stream than the predictions "
                         f"({predictions.name!r})")
    prediction_id, label_id = labels.id_columns()
    ids = []
    for column, side in ((prediction_id, predictions), (label_id, stream)):
        field = side.schema.field(column)
        if field is None:
            raise ValueError(f"id column {column!r} is not in the schema of stream "
                             f"{side.name!r} ({', '.join(side.schema.names)}); name it with "
                             "on= (or on=(prediction column, label column))")
        if field.type not in JOINABLE_ID_TYPES:
            raise ValueError(f"id column {column!r} of stream {side.name!r} is {field.type}; "
                             f"join on a {' or '.join(JOINABLE_ID_TYPES)} column")
        ids.append(field.type)
    if ids[0] != ids[1]:
        raise ValueError(f"id column {prediction_id!r} is {ids[0]} in stream "
                         f"{predictions.name!r} but {label_id!r} is {ids[1]} in stream "
                         f"{stream.name!r}; declare both the same type")
    carried = value_columns(stream.schema, label_id)
    if not carried:
        raise ValueError(f"label stream {stream.name!r} has no column besides its id and "
                         "time: add the label's value to its schema")
    clash = [c for c in carried if c in predictions.schema.names]
    if clash:
        raise ValueError(f"label column(s) {', '.join(map(repr, clash))} of stream "
                         f"{stream.name!r} have the same name as a column of stream "
                         f"{predictions.name!r}; rename them in one of the schemas")
    early = labels.early if labels.early is not None else labels.horizon
    return LabelSource(stream, prediction_id, label_id, labels.horizon, early,
                       float(labels.mature_at))


def joined_schema(predictions: Schema, source: LabelSource) -> Schema:
    """The schema of a joined prediction: its own fields and the label's value columns
    (nullable: a prediction may have no label yet)."""
    carried = tuple(FieldType(f.name, f.type, True) for f in source.stream.schema.fields
                    if f.name in source.value_columns)
    return Schema(predictions.time, predictions.fields + carried)
