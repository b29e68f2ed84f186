"""The catalog as a worker reads it (streaming.lifecycle_poll), on Postgres: the plan only
when the stage history changed, each version bound to its own reference profile, and a
version whose definition is not the worker's code named with what to do."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import pandas as pd

import metrics
from monitor.lifecycle import bind_stored_reference
from monitor.stage_switch import EPOCH
from monitor.storage.store import SqlStore
from streaming.lifecycle_poll import CatalogPlan
from tests.streaming.switch_app import mon, profile

BOUNDARY = pd.Timestamp("2026-06-01T12:00:00Z")
EPOCH_NS = pd.Timestamp(EPOCH).value


def streaming(store: SqlStore, name: str, version: int, effective_from: datetime | None = EPOCH
              ) -> None:
    for stage in ("batch", "streaming"):
        store.record_stage_change(name, version, stage, by="test", reason="poll test",
                                  effective_from=effective_from if stage == "streaming" else None)


def test_the_plan_is_read_again_only_when_the_history_changed(store: SqlStore) -> None:
    store.save_profile(profile(1))
    for name in ("latency", "latency_psi"):
        store.register_metric(bind_stored_reference(mon.get(name), store))
    catalog = CatalogPlan(store.database, list(mon.metrics.values()))
    assert catalog.read() == []
    assert catalog.read() is None  # nothing changed
    streaming(store, "latency_psi", 1)
    store.save_profile(profile(2, 1.3))
    assert store.register_metric(bind_stored_reference(mon.get("latency_psi"), store)
                                 ).version == 2
    store.record_stage_change("latency_psi", 2, "batch", by="test", reason="refit")
    store.record_stage_change("latency_psi", 2, "streaming", by="test", reason="refit",
                              effective_from=BOUNDARY)
    first, second = catalog.read() or []
    assert catalog.read() is None
    assert (first.ident, first.spans) == (("latency_psi", 1), ((EPOCH_NS, BOUNDARY.value),))
    assert (second.ident, second.spans) == (("latency_psi", 2), ((BOUNDARY.value, None),))
    assert first.metric is not None and second.metric is not None
    assert first.metric.id != second.metric.id  # each against its own profile
    assert first.metric.to_dict()["aggregate"]["profile_id"] == profile(1).id
    assert second.metric.to_dict()["aggregate"]["profile_id"] == profile(2, 1.3).id


def test_a_version_whose_code_is_not_the_workers_is_named_with_what_to_do(
    store: SqlStore
) -> None:
    edited = dataclasses.replace(
        mon.get("latency"), aggregate=metrics.quantiles("latency_ms", ps=(0.5, 0.9, 0.99)))
    store.register_metric(mon.get("latency"))
    assert store.register_metric(edited).version == 2
    streaming(store, "latency", 2)
    [planned] = CatalogPlan(store.database, [mon.get("latency")]).read() or []
    assert planned.metric is None
    assert planned.problem is not None
    assert planned.problem.startswith("metric 'latency' version 2 is in streaming, but this "
                                      "worker's code defines it otherwise")
    assert planned.problem.endswith("restart the worker with the code of version 2")

