"""An estimate of a click model's performance in the seeded database, beside the AUC and
accuracy realized from labels that arrive hours later (the later windows are partly
labelled, the last ones not yet), all stored as batch values — what the performance page
draws (:mod:`tests.performance_data` makes the data: a covariate shift half-way)."""

from __future__ import annotations

import pandas as pd

from monitor.research import ResearchResult, run
from monitor.storage.store import SqlStore
from tests.performance_data import (
    HOURS,
    START,
    labels_as_of,
    performance_app,
    predictions,
    reference_profile,
)

ESTIMATE = "click_estimate"
REALIZED = ("click_auc", "click_accuracy")
AS_OF = START + pd.Timedelta(hours=HOURS - 4)  # labels so far: none for the last 4 hours


def seed_performance(store: SqlStore) -> dict[str, ResearchResult]:
    """Register the metrics, store their values as batch; what each computed, by name."""
    mon = performance_app()
    preds = predictions()
    labels = labels_as_of(preds, AS_OF)
    unlabelled = preds.drop(columns="clicked")
    profile = reference_profile()
    store.save_profile(profile, fitted_at=START.to_pydatetime())
    results = {}
    for name, metric in mon.metrics.items():
        result = run(metric, unlabelled, profile, as_of=AS_OF,
                     labels=labels if metric.labels is not None else None)
        version = store.register_metric(result.metric, by="seed").version
        store.record_stage_change(name, version, "batch", by="seed",
                                  reason="labels joined over the example day")
        store.write_windows(name, version, "batch", result.windows)
        results[name] = result
    return results
