"""The metric lifecycle: research → batch → streaming, one stage at a time.

A metric moves forward one stage at a time and back (a demotion) to any earlier stage.
Every move names who made it and why, and is kept in the metric's stage history.

Promotion works on the definition the app has *now*: the app's spec, bound to the
reference profile stored under its reference's name (what the batch stage computes
against), must be the current stored version. When it is not, the definition changed;
a research run of the new definition registers it as a new version, and that version
is the one to promote. Going to batch needs, besides, the stored reference profile (for
a metric that compares against one) and a recorded research run of the version: values
of stage "research" stored for it by ``monitor research run`` or ``backtest``.

Demotion is always allowed (stopping is safe), with a reason; it moves the current
stored version whatever the app's definition is now.

A change into or out of streaming applies from a window boundary (see
:mod:`monitor.stage_switch`): by default the first one after the switch lead, which no
worker can have read past. One given earlier (``--from``) is refused when a streaming
checkpoint of the metric's topics has absorbed an event at or after it: the worker has
counted windows from there already, and they would be counted twice or by neither.

Pure logic over the storage ports: the database is the caller's business.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import pandas as pd

from metrics.base import canonical_json
from monitor.errors import MonitorError
from monitor.references import References, bind
from monitor.spec import MetricSpec
from monitor.stage_switch import streaming_spans, switch_boundary, touches_streaming
from monitor.storage.ports import MetricCatalog, ProfileStore, StreamProgress, ValueReader
from monitor.storage.records import MetricDefinition, StageChange
from monitor.times import to_utc
from monitor.values import STAGES

FIRST_STAGE = STAGES[0]


class CatalogAndProfiles(MetricCatalog, ProfileStore, Protocol):
    """The catalog and the reference profiles its versions were computed with."""


class LifecycleStore(CatalogAndProfiles, ValueReader, StreamProgress, Protocol):
    """What the lifecycle reads and writes: the catalog, the profiles, the values and how
    far streaming has read."""


class StageChangeRefused(MonitorError, ValueError):
    """A stage change the lifecycle does not allow; the message says what to run instead."""

    def __init__(self, metric: str, problem: str) -> None:
        self.metric = metric
        self.problem = problem
        super().__init__(f"metric {metric!r}: {problem}")


@dataclass(frozen=True)
class MetricStatus:
    """Where a metric of the app stands in the catalog.

    ``definition`` is the current stored version (None: never registered). ``current``
    says whether the app's definition is that version: False when it changed since, and
    also when it cannot be bound to a stored reference profile.
    """

    name: str
    definition: MetricDefinition | None
    current: bool
    last_change: StageChange | None
    # the boundary from which streaming counts the stored version's windows, while it does
    streaming_from: datetime | None = None

    @property
    def stage(self) -> str | None:
        return None if self.definition is None else self.definition.stage


def change_stage(metric: MetricSpec, to_stage: str, store: LifecycleStore, *, by: str,
                 reason: str, effective_from: datetime | None = None) -> StageChange:
    """Move ``metric`` to ``to_stage``, or raise :class:`StageChangeRefused` saying why not.

    ``metric`` is the app's definition, reference unbound (as the app declares it).
    ``effective_from``: for a change into or out of streaming, the window boundary it
    applies from (see the module); by default the first after the switch lead.
    """
    if to_stage not in STAGES:
        raise ValueError(f"unknown stage {to_stage!r}; stages are {', '.join(STAGES)}")
    name = metric.name
    if not reason or not reason.strip():
        raise StageChangeRefused(name, "a stage change needs a reason: say why with --reason")
    if not by or not by.strip():
        raise StageChangeRefused(name, "a stage change needs to say who made it: pass --by")
    definition = store.current_definition(name)
    from_stage = FIRST_STAGE if definition is None else definition.stage
    step = STAGES.index(to_stage) - STAGES.index(from_stage)
    if definition is not None and step < 0:
        return _record(metric, definition, to_stage, store, by, reason, effective_from)
    if step > 1:
        following = STAGES[STAGES.index(from_stage) + 1]
        raise StageChangeRefused(
            name, f"is in {from_stage} and cannot skip {following}: stages go "
                  f"{' -> '.join(STAGES)}; promote it to {following} first with `monitor "
                  f"promote {name} --to {following} --reason ...`")
    if definition is None:
        bind_stored_reference(metric, store)  # a missing profile is the first thing to say
        raise StageChangeRefused(
            name, f"is not registered yet: record a research run with `monitor research run "
                  f"{name} --data FILE` (it registers the metric), then promote it")
    definition, bound = as_registered(metric, store, definition)
    if definition.spec_id != bound.id:
        raise StageChangeRefused(
            name, f"its definition changed since version {definition.version} was "
                  f"registered ({describe_change(definition.spec, bound)}); record a research "
                  f"run of the new definition with `monitor research run {name} --data FILE`, "
                  f"which registers it as version {definition.version + 1}, then promote that")
    if step == 0:
        raise StageChangeRefused(name, f"version {definition.version} is already in {to_stage}")
    if to_stage == "batch" and not has_research_run(store, name, definition.version):
        raise StageChangeRefused(
            name, f"no research run is recorded for version {definition.version}; run "
                  f"`monitor research run {name} --data FILE` (or `monitor research backtest "
                  f"{name} --data FILE`) to record one, then promote it")
    return _record(metric, definition, to_stage, store, by, reason, effective_from)


def _record(metric: MetricSpec, definition: MetricDefinition, to_stage: str,
            store: LifecycleStore, by: str, reason: str,
            effective_from: datetime | None) -> StageChange:
    """The change stored, once its boundary is checked: unread by streaming here, a
    window boundary (of this version and the one it takes over from) by the store."""
    _check_unread(metric, definition.stage, to_stage, store, effective_from)
    try:
        return store.record_stage_change(metric.name, definition.version, to_stage, by=by,
                                         reason=reason, effective_from=effective_from)
    except ValueError as err:  # e.g. not a window boundary
        raise StageChangeRefused(metric.name,
                                 str(err).removeprefix(f"metric {metric.name!r}: ")) from None


def stream_topics(metric: MetricSpec) -> list[str]:
    """The topics streaming reads for ``metric``: its stream's, and its labels' if joined."""
    streams = [metric.stream] + ([metric.labels.stream] if metric.labels is not None else [])
    return [s.topic for s in streams if s.topic is not None]


def _check_unread(metric: MetricSpec, from_stage: str, to_stage: str, store: StreamProgress,
                  effective_from: datetime | None) -> None:
    """Refuse a boundary some streaming worker has read past (see the module)."""
    if effective_from is None or not touches_streaming(from_stage, to_stage):
        return
    boundary = to_utc(effective_from)
    past = [read for read in store.partition_reads(stream_topics(metric))
            if read.latest_event is not None and read.latest_event >= boundary]
    if not past:
        return
    latest = max(past, key=lambda read: read.latest_event or boundary)
    assert latest.latest_event is not None
    after = switch_boundary([metric.window], latest.latest_event + timedelta(microseconds=1),
                            pd.Timedelta(0))
    read = ", ".join(f"topic {r.topic!r} partition {r.partition} up to {_iso(r.latest_event)}"
                     for r in past)
    raise StageChangeRefused(
        metric.name, f"cannot switch {to_stage if to_stage == 'streaming' else from_stage} "
                     f"from {_iso(boundary)}: streaming has read {read}, so windows from "
                     f"{_iso(boundary)} on are counted already; give a later --from "
                     f"(from {_iso(after)}), or leave --from out for the first boundary "
                     "after the switch lead")


def _iso(at: datetime | None) -> str:
    return "-" if at is None else to_utc(at).isoformat().replace("+00:00", "Z")


def as_registered(metric: MetricSpec, store: CatalogAndProfiles,
                  definition: MetricDefinition) -> tuple[MetricDefinition, MetricSpec]:
    """``metric`` bound as the stored version ``definition`` computes it, and that version
    brought up to date with it when it is the same definition (see
    :meth:`MetricCatalog.refresh_definition`): compare the two ids to know whether it is.

    Promotion, status, batch and streaming meet the app's definition here (a research run
    in ``register_metric``, which does the same), so edits outside the id (owner,
    description, alert rules, where the stream is found) reach the catalog, and a version
    stored under the id an older release gave it is adopted, not left behind.
    """
    bound = bind_stored_reference(metric, store, definition)
    return store.refresh_definition(bound, definition.version), bound


def bind_stored_reference(
    metric: MetricSpec, profiles: ProfileStore, definition: MetricDefinition | None = None
) -> MetricSpec:
    """``metric`` compared against a stored reference profile.

    The profile is the one ``definition`` (a registered version) was computed with, so a
    later refit under the same name does not silently change what a promoted metric
    compares against; without a definition, the latest profile stored under the name.
    The batch stage binds the same way, so what is promoted is what batch runs.
    """
    name = metric.aggregate.reference_name()
    if name is None:
        return metric
    pinned = registered_profile_id(definition) if definition is not None else None
    try:
        profile = profiles.load_profile(name, pinned)
    except LookupError:
        raise StageChangeRefused(
            metric.name, f"no reference profile {name!r} is stored; run `monitor research run "
                         f"{metric.name} --data FILE --reference FILE` to fit and store it",
        ) from None
    return bind(metric, References(profiles={name: profile}))


def registered_profile_id(definition: MetricDefinition) -> str | None:
    """The id of the reference profile a registered version was computed with, if any."""
    aggregate = definition.spec.get("aggregate")
    profile_id = aggregate.get("profile_id") if isinstance(aggregate, Mapping) else None
    return profile_id if isinstance(profile_id, str) else None


def has_research_run(values: ValueReader, metric: str, version: int) -> bool:
    """Whether research values are stored for that version of ``metric``."""
    return not values.read_values(metric=metric, stage="research", version=version,
                                  limit=1).empty


def metric_status(metric: MetricSpec, store: LifecycleStore) -> MetricStatus:
    """The stored version of ``metric``, whether it is the app's definition, and the last
    change in its history."""
    definition = store.current_definition(metric.name)
    if definition is None:
        return MetricStatus(metric.name, None, False, None)
    try:
        definition, bound = as_registered(metric, store, definition)
    except MonitorError:  # no stored profile, or one that cannot serve the metric
        current = False
    else:
        current = bound.id == definition.spec_id
    history = store.stage_history(metric.name)
    streaming_from = next((span.start for span in streaming_spans(history)
                           if span.version == definition.version and span.end is None), None)
    return MetricStatus(metric.name, definition, current, history[-1] if history else None,
                        streaming_from)


def describe_change(stored: Mapping[str, Any], metric: MetricSpec) -> str:
    """What differs between a stored spec (its JSON) and ``metric``, in a few words."""
    now = json.loads(canonical_json(metric.to_dict()))
    changed = _differing(stored, now)
    if changed == ["aggregate"]:
        before, after = stored["aggregate"], now["aggregate"]
        inner = _differing(before, after)
        if inner == ["profile_id"]:
            return (f"its reference profile was refitted: {before['profile_id']} -> "
                    f"{after['profile_id']}")
        return f"aggregate {', '.join(inner)} changed"
    return f"{', '.join(changed) or 'spec'} changed"


def _differing(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    return [key for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]
