"""Batch stage throughput: a Postgres table to stored values, against a bare pandas read.

    .venv/bin/python bench/batch.py [--days 7] [--events-per-hour 3000] [--repeats 3]

Loads the example homepage events into a table of a throwaway Postgres database (on
127.0.0.1:5432, or $MONITOR_BENCH_POSTGRES_URL's server), then times, interleaved and best
of a few repeats:

- ``bare``: ``pd.read_sql`` of the same rows and columns (the time filter in SQL) — the
  least any batch job over this table must spend;
- ``ours``: ``BatchRunner.run_many`` over the example metrics for the same range (all but
  the one joined to click outcomes, which reads a second table):
  chunked read, validation, every metric's states, values and states upserted, runs
  recorded. The stored results are deleted before each repeat so every run writes.

Target: ours adds at most 50% to the bare read (ratio <= 1.5). The last line printed is
one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.postgres import throwaway_database
from examples.music_home import mon, training_profile
from examples.music_home_events import DEFAULT_START, generate_events, generate_reference
from monitor.batch.runner import BatchRunner
from monitor.batch.sources import TableSource
from monitor.batch.tables import events_table, load_events
from monitor.lifecycle import bind_stored_reference
from monitor.storage.migrate import upgrade
from monitor.storage.store import SqlStore
from monitor.targets import batch_targets

TARGET_RATIO = 1.5
RESULT_TABLES = ("metric_values", "metric_states", "batch_runs", "dead_letters")


def best_of(repeats: int, runs: dict[str, Callable[[], object]],
            before: dict[str, Callable[[], None]]) -> dict[str, float]:
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, run in runs.items():
            if name in before:
                before[name]()
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--events-per-hour", type=float, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    with throwaway_database("monitor_bench") as url:
        run(url, args)


def run(url: str, args: argparse.Namespace) -> None:
    upgrade(url)
    stream = mon.streams["home"]
    engine = sa.create_engine(url)
    start = DEFAULT_START
    end = start + pd.Timedelta(days=args.days)
    events = generate_events(start=start, days=args.days, seed=args.seed,
                             events_per_hour=args.events_per_hour)
    load_seconds = time.perf_counter()
    rows = load_events(engine, stream, events)
    load_seconds = time.perf_counter() - load_seconds
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE home_events"))

    store = SqlStore.open(url)
    reference = generate_reference(start=start, seed=args.seed,
                                   events_per_hour=args.events_per_hour)
    store.save_profile(training_profile(reference))
    unlabelled = [spec for spec in mon.metrics.values() if spec.labels is None]
    for spec in unlabelled:
        definition = store.register_metric(bind_stored_reference(spec, store))
        store.record_stage_change(spec.name, definition.version, "batch", by="bench",
                                  reason="benchmark")
    targets = batch_targets(mon, store, [spec.name for spec in unlabelled])
    runner = BatchRunner(store, lambda m: TableSource(engine, m.stream))

    table = events_table(stream)
    query = sa.select(*table.c).where(table.c.ts >= start.to_pydatetime(),
                                      table.c.ts < end.to_pydatetime())

    def bare() -> pd.DataFrame:
        with engine.connect() as conn:
            return pd.read_sql(query, conn)

    def ours() -> None:
        summaries = runner.run_many(targets, since=start, until=end)
        assert all(s.rows_read == rows for s in summaries)

    def clear_results() -> None:
        with engine.begin() as conn:
            for name in RESULT_TABLES:
                conn.execute(sa.text(f"DELETE FROM {name}"))

    seconds = best_of(args.repeats, {"bare": bare, "ours": ours}, {"ours": clear_results})
    values = store.read_values(stage="batch", limit=None)
    ratio = seconds["ours"] / seconds["bare"]
    store.close()
    engine.dispose()

    print(f"batch stage: {rows:,} events ({args.days} days at {args.events_per_hour:g}/h) in "
          f"Postgres, {len(targets)} example metrics, {len(values):,} values stored")
    print(f"  bare read  {seconds['bare']:7.2f} s  ({rows / seconds['bare']:10,.0f} rows/s)  "
          "pd.read_sql of the same rows")
    print(f"  ours       {seconds['ours']:7.2f} s  ({rows / seconds['ours']:10,.0f} rows/s)  "
          "read + validate + compute + upsert")
    print(f"  ratio      {ratio:7.2f}x  (target <= {TARGET_RATIO}x): "
          f"{'met' if ratio <= TARGET_RATIO else 'NOT met'}")
    print(json.dumps({
        "benchmark": "batch_stage",
        "rows": rows,
        "metrics": len(targets),
        "values_stored": len(values),
        "bare_seconds": seconds["bare"],
        "our_seconds": seconds["ours"],
        "bare_rows_per_second": rows / seconds["bare"],
        "our_rows_per_second": rows / seconds["ours"],
        "ratio": ratio,
        "target_ratio": TARGET_RATIO,
        "met": ratio <= TARGET_RATIO,
        "load_seconds": load_seconds,
        "repeats": args.repeats,
    }))


if __name__ == "__main__":
    main()
