"""Recording a research run through the store's port: whole or not at all, and the values
stored are the ones the research computation returned."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

import metrics
from metrics.drift import ReferenceProfile
from monitor.research import run
from monitor.research_record import record_run
from monitor.spec import MetricSpec
from monitor.storage import results
from monitor.storage.ports import WriteRefused
from monitor.storage.store import SqlStore
from tests.storage.helpers import STREAM


def drift_run(reference_scale: float = 1.0) -> tuple[MetricSpec, ReferenceProfile, pd.DataFrame]:
    rng = np.random.default_rng(7)
    events = pd.DataFrame({
        "ts": pd.Timestamp("2026-03-01T00:00Z") + pd.to_timedelta(rng.integers(0, 7200, 500),
                                                                  unit="s"),
        "latency_ms": rng.lognormal(3, 1, 500), "country": rng.choice(["SE", "US"], 500)})
    profile = ReferenceProfile.fit(
        pd.DataFrame({"latency_ms": rng.lognormal(3, 1, 2000) * reference_scale}),
        name="training")
    spec = MetricSpec("latency_psi", STREAM, metrics.psi("latency_ms", "training"),
                      window="1h", segment_by=("country",))
    return spec, profile, events


def test_a_recorded_run_stores_the_values_research_returned(store: SqlStore) -> None:
    spec, profile, events = drift_run()
    result = run(spec, events, profile)
    recorded = record_run(store, result, profile, by="ana")

    assert recorded is not None and recorded.previous is None
    assert (recorded.definition.version, recorded.definition.stage) == (1, "research")
    assert recorded.latest_profile_id == profile.id == store.load_profile("training").id
    stored = store.read_values(metric=spec.name, stage="research", limit=None)
    assert recorded.values_written == len(stored) == len(result.values) == 6 * len(
        result.metric.aggregate.fields())
    pd.testing.assert_frame_equal(stored, result.values, check_exact=True)

    refitted = drift_run(reference_scale=2.0)[1]
    again = record_run(store, run(spec, events, refitted), refitted, by="ana")
    assert again is not None and again.previous == recorded.definition
    assert again.definition.version == 2  # the profile is part of the definition


def test_a_refused_value_records_nothing(store: SqlStore,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    spec, profile, events = drift_run()

    def refuse(*args: object, **kwargs: object) -> int:
        raise sa.exc.DataError("INSERT INTO metric_values ...", {}, Exception(
            "text fields cannot contain NUL (0x00) bytes\nDETAIL: ..."))

    monkeypatch.setattr(results, "write_windows", refuse)
    with pytest.raises(WriteRefused) as refused:
        record_run(store, run(spec, events, profile), profile, by="ana")
    assert refused.value.problem == "text fields cannot contain NUL (0x00) bytes"
    assert store.current_definition(spec.name) is None  # the definition was rolled back,
    with pytest.raises(LookupError):
        store.load_profile("training")  # and the profile


def test_a_run_with_no_window_records_nothing(store: SqlStore) -> None:
    spec, profile, events = drift_run()
    assert record_run(store, run(spec, events.iloc[:0], profile), profile, by="ana") is None
    assert store.current_definition(spec.name) is None
