"""The explicit registry users declare their streams and metrics in.

There is no global registry: a user module builds a ``Monitor`` and the CLI loads it by
``module:attribute``. Registration validates everything it can without data and raises
:class:`DefinitionError` naming the metric and the problem.

>>> import metrics
>>> mon = Monitor()
>>> home = mon.stream("home", schema={"latency_ms": "float", "country": "str"})
>>> spec = mon.metric("latency", "home", metrics.quantiles("latency_ms"), segment_by=["country"])
>>> spec.segment_by
('country',)
>>> mon.metric("latency", "home", metrics.count())
Traceback (most recent call last):
...
monitor.errors.DefinitionError: metric 'latency': is already registered; pick another name
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np
import pandas as pd

from metrics.assertions import ID
from metrics.base import Aggregate
from metrics.labelled import Labelled
from monitor.alerts.fit import rule_problem
from monitor.alerts.routing import Route
from monitor.alerts.rules import Rule
from monitor.errors import DefinitionError
from monitor.expectations import register_expectations
from monitor.labels import Labels, joined_schema
from monitor.labels import resolve as resolve_labels
from monitor.per_event import check_per_event_result
from monitor.schema import FieldType, Schema
from monitor.spec import BATCH_ENGINES, MetricSpec, PerEvent, PerEventFunction, StreamSpec
from monitor.string_lists import LIST_OF_STR
from monitor.windows import Windows, parse_duration_ns

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]{0,127}$")
_SAMPLE_ROWS = 4
# what to do instead, when a column's type cannot serve an aggregate
_KIND_HINTS = {
    ("scalar", LIST_OF_STR): ("; drift compares one value per event: use metrics.ndcg, "
                              "hit_rate or catalogue_coverage on a ranked list, or a "
                              "per-event function that reduces the list to a value"),
    # an assertion samples its violations by id: every event must have one
    **{(ID, kind): "; every event must have its id: declare the field without '?'"
       for kind in ("str", "int")},
    **{(ID, kind): "; an id is a str or int field" for kind in ("float", "bool", LIST_OF_STR)},
}


class Monitor:
    """Streams, metrics and reference profiles of one application."""

    def __init__(self, name: str = "monitor") -> None:
        self.name = name
        self.streams: dict[str, StreamSpec] = {}
        self.metrics: dict[str, MetricSpec] = {}
        self.references: dict[str, Path] = {}
        self.routes: list[Route] = []

    # -- streams ------------------------------------------------------------------------

    def stream(
        self,
        name: str,
        *,
        schema: Mapping[str, str],
        time: str = "ts",
        topic: str | None = None,
        table: str | None = None,
        query: str | None = None,
        files: str | None = None,
        engine: str | None = None,
        master: str | None = None,
    ) -> StreamSpec:
        """Declare an event stream and where each stage finds it.

        ``schema`` maps each field to ``"float"``, ``"int"``, ``"bool"``, ``"str"`` or
        ``"list[str]"`` (a ranked list of item ids), with a trailing ``?`` when it may be
        missing; ``time`` names the event-time field. The
        batch stage reads ``table`` or ``query`` (a SELECT whose columns are the schema's),
        or ``files`` (a path or glob); streaming reads ``topic``. ``engine`` is where the
        batch stage computes it, ``"local"`` (this process) or ``"spark"`` on ``master``
        (``local[*]`` unless named), unless ``monitor batch run``/``schedule`` is told
        otherwise with ``--engine``/``--master``.
        """
        subject = f"stream {name!r}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise DefinitionError(
                subject, "names start with a letter and use letters, digits, _ . -"
            )
        if name in self.streams:
            raise DefinitionError(subject, "is already registered")
        try:
            parsed = Schema.parse(schema, time=time)
        except ValueError as err:
            raise DefinitionError(subject, str(err)) from None
        if table and query:
            raise DefinitionError(subject, "declare table= or query=, not both")
        if engine is not None and engine not in BATCH_ENGINES:
            raise DefinitionError(subject, f"engine={engine!r} is not one of "
                                           f"{', '.join(map(repr, BATCH_ENGINES))}")
        if master is not None and engine != "spark":
            raise DefinitionError(subject, "master= names a Spark master; it needs "
                                           "engine='spark'")
        spec = StreamSpec(name, parsed, topic=topic, table=table, query=query, files=files,
                          engine=engine, master=master)
        self.streams[name] = spec
        return spec

    # -- references ---------------------------------------------------------------------

    def reference(self, name: str, path: str | Path) -> None:
        """Declare where the reference profile ``name`` is kept: a profile JSON file, or a
        data file (JSON lines, CSV or Parquet) to fit it from."""
        if name in self.references:
            raise DefinitionError(f"reference {name!r}", "is already registered")
        self.references[name] = Path(path)

    # -- alert routing ------------------------------------------------------------------

    def route(
        self,
        channels: Sequence[str],
        *,
        metric: str | None = None,
        severity: str | Sequence[str] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Route:
        """Send matching alert notifications to ``channels`` ("slack", "email"; an empty
        list drops them). Routes are tried in the order declared, after any in
        ``MONITOR_ALERT_ROUTES``; the first that matches decides, and notifications no
        route matches go to every configured channel."""
        severities = (severity,) if isinstance(severity, str) else severity
        try:
            route = Route(tuple(channels), metric=metric,
                          severity=tuple(severities) if severities is not None else None,
                          labels=dict(labels or {}))
        except ValueError as err:
            raise DefinitionError(f"alert route to {list(channels)}", str(err)) from None
        self.routes.append(route)
        return route

    # -- metrics ------------------------------------------------------------------------

    @overload
    def metric(
        self,
        name: str,
        stream: str | StreamSpec,
        compute: Aggregate,
        *,
        window: str = ...,
        lateness: str = ...,
        segment_by: Sequence[str] = ...,
        alerts: Iterable[Rule] = ...,
        owner: str | None = ...,
        description: str = ...,
        schedule: str | None = ...,
        labels: Labels | None = ...,
    ) -> MetricSpec: ...

    @overload
    def metric(
        self,
        name: str,
        stream: str | StreamSpec,
        compute: None = None,
        *,
        aggregate: Aggregate,
        window: str = ...,
        lateness: str = ...,
        segment_by: Sequence[str] = ...,
        alerts: Iterable[Rule] = ...,
        owner: str | None = ...,
        description: str = ...,
        schedule: str | None = ...,
        labels: Labels | None = ...,
    ) -> Callable[[PerEventFunction], MetricSpec]: ...

    def metric(
        self,
        name: str,
        stream: str | StreamSpec,
        compute: Aggregate | None = None,
        *,
        aggregate: Aggregate | None = None,
        window: str = "1h",
        lateness: str = "0s",
        segment_by: Sequence[str] = (),
        alerts: Iterable[Rule] = (),
        owner: str | None = None,
        description: str = "",
        schedule: str | None = None,
        labels: Labels | None = None,
    ) -> MetricSpec | Callable[[PerEventFunction], MetricSpec]:
        """Register a metric, or (without ``compute``) return a decorator for a per-event
        function ``f(events: DataFrame) -> Series`` whose values ``aggregate`` aggregates.

        ``window`` is a tumbling window on event time (``"5m"``, ``"1h"``, ``"1d"``);
        ``lateness`` how long after its end a window still takes events; ``segment_by``
        the columns whose combinations get values of their own besides the overall one;
        ``schedule`` a cron expression (``"15 * * * *"``) for the batch stage, which
        otherwise runs as each window closes.

        ``labels`` joins the metric's predictions to a label stream
        (:class:`monitor.labels.Labels`): its aggregate then reads the labelled
        predictions, its windows stay those of the predictions' time, and its values gain
        ``label_coverage``, ``labelled`` and ``predictions``.
        """
        options = dict(
            window=window,
            lateness=lateness,
            segment_by=tuple(segment_by),
            alerts=tuple(alerts),
            owner=owner,
            description=description,
            schedule=schedule,
            labels=labels,
        )
        if compute is not None:
            if aggregate is not None:
                raise DefinitionError(
                    f"metric {name!r}", "pass either compute or aggregate=, not both"
                )
            return self._register(name, stream, compute, None, options)
        if aggregate is None:
            raise DefinitionError(
                f"metric {name!r}",
                "needs a compute aggregate, or aggregate= when used as a decorator",
            )

        def decorate(function: PerEventFunction) -> MetricSpec:
            if not callable(function):
                raise DefinitionError(f"metric {name!r}", "decorates a function")
            return self._register(name, stream, aggregate, function, options)

        return decorate

    def expectations(
        self,
        stream: str | StreamSpec,
        expectations: Sequence[Aggregate] | Mapping[str, Aggregate],
        *,
        prefix: str | None = None,
        window: str = "1h",
        lateness: str = "0s",
        segment_by: Sequence[str] = (),
        owner: str | None = None,
        severity: str = "warning",
        for_windows: int = 1,
        schedule: str | None = None,
    ) -> list[MetricSpec]:
        """Register data expectations (``metrics.expect_not_null``, ``expect_in_range``,
        ``expect_in_set``, ``expect_match``, ``expect_unique``,
        ``expect_no_unknown_fields``) on a stream: a metric each, named
        ``<prefix>.<kind>.<column>`` (``prefix`` defaults to the stream's name; pass a
        mapping to name them), with a default rule on its ``failure_rate``, and a
        validation summary ``<prefix>.expectations`` counting per window how many passed
        and failed (see :mod:`monitor.expectations`). Returns the specs, summary last.
        """
        return register_expectations(
            self, stream, expectations, prefix=prefix, severity=severity,
            for_windows=for_windows, window=window, lateness=lateness,
            segment_by=tuple(segment_by), owner=owner, schedule=schedule)

    def get(self, name: str) -> MetricSpec:
        try:
            return self.metrics[name]
        except KeyError:
            known = ", ".join(sorted(self.metrics)) or "none registered"
            raise KeyError(f"no metric named {name!r}; known metrics: {known}") from None

    def metrics_of(self, stream: str) -> list[MetricSpec]:
        return [m for m in self.metrics.values() if m.stream.name == stream]

    # -- validation ---------------------------------------------------------------------

    def _register(
        self,
        name: str,
        stream: str | StreamSpec,
        aggregate: Aggregate,
        function: PerEventFunction | None,
        options: dict[str, Any],
    ) -> MetricSpec:
        subject = f"metric {name!r}"

        def fail(problem: str) -> DefinitionError:
            return DefinitionError(subject, problem)

        if not isinstance(name, str) or not _NAME.match(name):
            raise fail("names start with a letter and use letters, digits, _ . - (max 128)")
        if name in self.metrics:
            raise fail("is already registered; pick another name")
        stream_spec = self._stream(stream, fail)
        label_source = None
        if options["labels"] is not None:
            try:
                label_source = resolve_labels(options["labels"], stream_spec, self.streams)
            except ValueError as err:
                raise fail(str(err)) from None
        options = {**options, "labels": label_source}
        # what the aggregate and a per-event function see: with labels, the joined rows
        schema = (stream_spec.schema if label_source is None
                  else joined_schema(stream_spec.schema, label_source))
        if not isinstance(aggregate, Aggregate):
            raise fail(f"compute must be a metrics aggregate (e.g. metrics.mean(...)), "
                       f"not {type(aggregate).__name__}")
        aggregate = aggregate.bind_schema(schema.names)
        try:
            Windows.parse(options["window"])
        except ValueError as err:
            raise fail(f"window: {err}") from None
        try:
            parse_duration_ns(options["lateness"])
        except ValueError as err:
            raise fail(f"lateness: {err}") from None

        if options["schedule"] is not None:
            problem = cron_problem(options["schedule"])
            if problem:
                raise fail(f"schedule: {problem}")

        for column in options["segment_by"]:
            field = stream_spec.schema.field(column)
            if field is None and label_source and column in label_source.value_columns:
                raise fail(f"segment column {column!r} comes from the label stream; a "
                           "prediction without a label yet has no segment: segment by a "
                           f"column of stream {stream_spec.name!r}")
            if field is None:
                raise fail(f"segment column {column!r} is not in the schema of stream "
                           f"{stream_spec.name!r} ({', '.join(schema.names)})")
            if field.type == "float":
                raise fail(f"segment column {column!r} is a float; segment by a category")
            if field.type == LIST_OF_STR:
                raise fail(f"segment column {column!r} is a list; segment by a category")

        per_event = None
        if function is not None:
            if not aggregate.unbound_column():
                raise fail(
                    f"the aggregate of a per-event function must not name a column "
                    f"(got {aggregate.to_dict()}); write e.g. metrics.quantiles()"
                )
            try:
                aggregate = aggregate.with_column(name)
            except TypeError as err:
                raise fail(str(err)) from None
            per_event = PerEvent.of(function)
            _try_per_event(subject, function, schema, aggregate.columns()[name])
        elif aggregate.unbound_column():
            raise fail(f"{aggregate.kind} needs an input column, e.g. "
                       f"metrics.{aggregate.kind}('latency_ms')")

        for column, kind in aggregate.columns().items():
            if per_event is not None and column == name:
                continue
            field = schema.field(column)
            if field is None and column == schema.time and kind == "any":
                continue  # the event time, which every event has (an assertion keeps it)
            if field is None:
                raise fail(f"unknown column {column!r}: stream {stream_spec.name!r} has "
                           f"{', '.join(stream_spec.schema.names)}"
                           + (f" and label stream {label_source.stream.name!r} adds "
                              f"{', '.join(label_source.value_columns)}"
                              if label_source else ""))
            if not _kind_fits(kind, field):
                raise fail(f"column {column!r} is {field.type} but {aggregate.kind} needs a "
                           f"{kind} column{_KIND_HINTS.get((kind, field.type), '')}")
        if label_source is not None:
            read = set(aggregate.columns()) & set(label_source.value_columns)
            if not read and per_event is None:
                raise fail(f"joins labels from stream {label_source.stream.name!r} but its "
                           f"{aggregate.kind} reads none of its columns "
                           f"({', '.join(label_source.value_columns)}); read the label, or "
                           "drop labels=")
            try:
                aggregate = Labelled(aggregate)
            except ValueError as err:
                raise fail(str(err)) from None

        rules = tuple(self._resolve_rule(rule, aggregate, fail) for rule in options["alerts"])
        for rule in rules:
            if problem := rule_problem(rule, aggregate, options["window"]):
                raise fail(problem)
        titles = [rule.title for rule in rules]
        if len(set(titles)) != len(titles):
            raise fail("two alert rules have the same name; give them name=")
        spec = MetricSpec(
            name=name,
            stream=stream_spec,
            aggregate=aggregate,
            per_event=per_event,
            **{**options, "alerts": rules},
        )
        self.metrics[name] = spec
        return spec

    def _stream(self, stream: str | StreamSpec, fail: Callable[[str], Exception]) -> StreamSpec:
        key = stream.name if isinstance(stream, StreamSpec) else stream
        if key not in self.streams:
            known = ", ".join(sorted(self.streams)) or "none registered"
            raise fail(f"unknown stream {key!r}; declare it with mon.stream() first "
                       f"(known: {known})")
        return self.streams[key]

    @staticmethod
    def _resolve_rule(rule: Rule, aggregate: Aggregate, fail: Callable[[str], Exception]) -> Rule:
        if not isinstance(rule, Rule):
            raise fail(f"alerts must be rules (Threshold, Change, Anomaly), not {rule!r}")
        fields = known_fields(aggregate)
        # a labelled metric's own field is the default, not its coverage fields
        core = aggregate.inner if isinstance(aggregate, Labelled) else aggregate
        if fields is None:  # e.g. drift(method="auto"): fields follow the reference profile
            if rule.field is None:
                raise fail(f"alert rule {rule.describe()} must name field=; this aggregate's "
                           "fields depend on its reference profile")
            return rule  # checked when the profile is bound (monitor.references.bind)
        if rule.field is None:
            defaults = known_fields(core) or fields
            if len(defaults) != 1:
                raise fail(f"alert rule {rule.describe()} must name field= (one of "
                           f"{', '.join(fields)})")
            return rule.for_field(defaults[0])
        if rule.field not in fields:
            raise fail(f"alert rule on unknown field {rule.field!r}; fields are "
                       f"{', '.join(fields)}")
        return rule


def cron_problem(expression: str) -> str | None:
    """What is wrong with a five-field cron expression, or None when it looks right.

    Only the shape is checked here (the registry stays free of scheduler imports); the
    scheduler parses it fully when it starts.
    """
    if not isinstance(expression, str) or len(expression.split()) != 5:
        return (f"{expression!r} is not a cron expression; use five fields: minute hour "
                "day-of-month month day-of-week, e.g. '15 * * * *'")
    if not re.fullmatch(r"[\w\s*/,\-?#LW]+", expression):
        return f"{expression!r} has characters a cron expression cannot have"
    return None


def known_fields(aggregate: Aggregate) -> tuple[str, ...] | None:
    """The aggregate's fields, or None while they depend on a reference not yet bound."""
    try:
        return aggregate.fields()
    except ValueError:
        if aggregate.reference_name() is None:
            raise
        return None


def _kind_fits(kind: str, field: FieldType) -> bool:
    if kind == "numeric":
        return field.is_numeric
    if kind == "bool":
        return field.type in ("bool", "int")
    if kind == "category":
        return field.type in ("str", "int", "bool")
    if kind == "str":
        return field.type == "str"
    if kind == LIST_OF_STR:
        return field.type == LIST_OF_STR
    if kind == "scalar":
        return field.type != LIST_OF_STR
    if kind == ID:
        return field.type in ("str", "int") and not field.nullable
    return True


def sample_events(schema: Schema, rows: int = _SAMPLE_ROWS) -> pd.DataFrame:
    """A few typed, plausible events of a schema, to try a per-event function on."""
    start = pd.Timestamp("2026-01-01T00:00:00Z")
    data: dict[str, Any] = {schema.time: pd.date_range(start, periods=rows, freq="min")}
    for field in schema.fields:
        if field.type == "float":
            data[field.name] = np.linspace(1.0, 2.0, rows)
        elif field.type == "int":
            data[field.name] = pd.array(range(1, rows + 1), dtype="Int64")
        elif field.type == "bool":
            data[field.name] = pd.array([i % 2 == 0 for i in range(rows)], dtype="boolean")
        elif field.type == LIST_OF_STR:
            data[field.name] = [[f"{field.name}-{i}", f"{field.name}-{i + 1}"]
                                for i in range(rows)]
        else:
            data[field.name] = [f"{field.name}-{i}" for i in range(rows)]
    return pd.DataFrame(data)


def _try_per_event(subject: str, function: PerEventFunction, schema: Schema, kind: str) -> None:
    """Run the function on sample events so a wrong return fails at registration."""
    sample = sample_events(schema)
    try:
        result = function(sample.copy())
    except Exception as err:  # the user's code: report whatever it raised
        raise DefinitionError(
            subject,
            f"per-event function failed on sample events with {type(err).__name__}: {err} "
            f"(it receives a DataFrame with columns {', '.join(sample.columns)})",
        ) from err
    check_per_event_result(subject, result, len(sample), kind)
