"""Which metrics a stage runs: targets, bound to their stored versions and reference profiles.

A metric runs in batch once it has been promoted there (or on to streaming), and in
streaming once promoted there. Batch runs the current (newest) version when it is in batch
or streaming, and computes only the windows of it that no streaming span of that version
covers (:mod:`monitor.batch.handover`): before its promotion's boundary, and from its
demotion's on. Older versions are not run: a version a newer one took over from keeps the
windows it had. Both stages compare drift metrics against the reference
profile stored in the database that the registered version was computed with — not against
whatever file is around or was fitted since — so a run next month computes what it
computes today.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from monitor.errors import DefinitionError, MonitorError
from monitor.lifecycle import CatalogAndProfiles, as_registered, bind_stored_reference
from monitor.registry import Monitor
from monitor.spec import MetricSpec
from monitor.stage_switch import StreamingSpan, streaming_spans

log = logging.getLogger(__name__)

BATCH_STAGES = ("batch", "streaming")


@dataclass(frozen=True)
class Target:
    """A metric to run, bound to its reference, with its stored version and the spans of
    that version's windows that streaming counts (batch leaves those out)."""

    metric: MetricSpec
    version: int
    streamed: tuple[StreamingSpan, ...] = ()


class NotInBatch(DefinitionError):
    """The metric is not (or, after a change to its definition, no longer) in batch."""


class StoreForBatch(CatalogAndProfiles, Protocol):
    """The catalog and profiles a batch run looks metrics up in."""


def target(app_metric: MetricSpec, store: StoreForBatch,
           stages: tuple[str, ...] = BATCH_STAGES) -> Target:
    """The stored version of ``app_metric`` to run in a stage that runs metrics in
    ``stages`` (batch runs those in batch or beyond), or NotInBatch saying why."""
    definition = store.current_definition(app_metric.name)
    if definition is None:
        bound = bind_stored_reference(app_metric, store)  # a missing profile says so first
        raise NotInBatch(f"metric {bound.name!r}",
                         f"is not registered yet; try it with `monitor research run "
                         f"{bound.name} --data FILE`, then `monitor promote {bound.name} "
                         "--to batch`")
    definition, bound = as_registered(app_metric, store, definition)
    if definition.spec_id != bound.id:
        raise NotInBatch(f"metric {bound.name!r}",
                         f"its definition changed since version {definition.version} was "
                         f"registered (spec {definition.spec_id} -> {bound.id}); check the new "
                         "definition in research and promote it again")
    if definition.stage not in stages:
        raise NotInBatch(f"metric {bound.name!r}",
                         f"is in {definition.stage}; promote it with `monitor promote "
                         f"{bound.name} --to {stages[0]} --reason ...`")
    spans = streaming_spans(store.stage_history(bound.name))
    return Target(bound, definition.version,
                  tuple(s for s in spans if s.version == definition.version))


def batch_targets(app: Monitor, store: StoreForBatch, names: Iterable[str] = (),
                  stages: tuple[str, ...] = BATCH_STAGES) -> list[Target]:
    """The metrics to run: the ``names`` asked for (each must be in one of ``stages``), or
    every metric of the app that is (the others are skipped with a log line)."""
    wanted = list(names)
    if wanted:
        return [target(app.get(name), store, stages) for name in wanted]
    targets = []
    for metric in app.metrics.values():
        try:
            targets.append(target(metric, store, stages))
        except NotInBatch as err:
            log.info("skipping %s", err)
        except MonitorError as err:  # in batch but cannot run: say so, run the others
            log.warning("skipping %s", err)
    return targets
