"""A results store with the example app's metrics moved to the batch stage: what the
batch benchmarks (bench/batch.py, bench/batch_breakdown.py, bench/batch_scale.py) run."""

from __future__ import annotations

from examples.music_home import mon, training_profile
from examples.music_home_events import (
    DEFAULT_EVENTS_PER_HOUR,
    DEFAULT_START,
    generate_reference,
)
from monitor.lifecycle import bind_stored_reference
from monitor.storage.migrate import upgrade
from monitor.storage.store import SqlStore
from monitor.targets import Target, batch_targets


def example_batch_store(store_url: str, reason: str, seed: int = 1,
                        events_per_hour: float = DEFAULT_EVENTS_PER_HOUR
                        ) -> tuple[SqlStore, list[Target]]:
    """The store at ``store_url`` (migrated) with the training profile saved and every
    example metric but the label-joined registered and moved to batch, and their batch
    targets (reading the stream's table)."""
    upgrade(store_url)
    store = SqlStore.open(store_url)
    store.save_profile(training_profile(generate_reference(
        start=DEFAULT_START, seed=seed, events_per_hour=events_per_hour)))
    names = [name for name, spec in mon.metrics.items() if spec.labels is None]
    for name in names:
        version = store.register_metric(bind_stored_reference(mon.get(name), store)).version
        store.record_stage_change(name, version, "batch", by="bench", reason=reason)
    return store, batch_targets(mon, store, names)
