"""A results store with the example app's metrics moved to the batch stage, and the
example events in their table: what the batch benchmarks (bench/batch.py,
bench/batch_breakdown.py, bench/batch_statements.py, bench/batch_scale.py) run."""

from __future__ import annotations

import gc
import time

import sqlalchemy as sa

from examples.music_home import mon, training_profile
from examples.music_home_events import (
    DEFAULT_EVENTS_PER_HOUR,
    DEFAULT_START,
    generate_events,
    generate_reference,
)
from monitor.batch.tables import load_events
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


def load_example_events(engine: sa.Engine, days: int, seed: int = 1,
                        events_per_hour: float = DEFAULT_EVENTS_PER_HOUR
                        ) -> tuple[int, float]:
    """The example homepage events of ``days`` days from ``DEFAULT_START`` loaded into
    their table at ``engine``: the rows loaded and the seconds the load took (generating
    them apart). The generated events (half a million Python lists for a week) die with
    this call: a batch run does not hold them, and alive they would be walked by every
    full collection of the garbage collector in a bench's timed runs."""
    events = generate_events(start=DEFAULT_START, days=days, seed=seed,
                             events_per_hour=events_per_hour)
    began = time.perf_counter()
    rows = load_events(engine, mon.streams["home"], events)
    seconds = time.perf_counter() - began
    del events
    gc.collect()
    return rows, seconds
