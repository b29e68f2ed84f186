"""Where the batch stage's time goes: the read, each metric's compute, the store.

    .venv/bin/python bench/batch_breakdown.py [--days 2] [--events-per-hour 3000] [--repeats 2]

The same table and metrics as bench/batch.py, taken apart a day-long slice at a time as
the batch stage runs it, beside the columnar read of the same rows (ADBC into Arrow, no
metrics) in the same run:

- ``read``: our source's chunks (``chunks``) and their validation (``validate``);
- ``update``: every metric's states in one engine (as the stage runs them), and each
  metric alone in an engine of its own (its share; the shared window and segment codes
  are counted in each);
- ``values``: each metric's values and serialized states (``window_results``: drift
  tests, quantiles, a consistency check's keys as JSON);
- ``store``: the slice's runs started, then every metric's values, states, alert
  evaluation and run's end in one transaction (``start_runs``, ``write_slices``), as the
  stage stores a slice.

The first pass warms the process (the drift tests' null distributions) and is not
counted; the figures are the mean of the passes after. The last line printed is one JSON
object with them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import adbc_driver_postgresql.dbapi as adbc
import pandas as pd
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.batch import RESULT_TABLES
from bench.example_store import example_batch_store, load_example_events
from bench.postgres import throwaway_database
from examples.music_home import mon
from examples.music_home_events import DEFAULT_START
from monitor.batch.postgres_columns import connection_uri, literal_sql
from monitor.batch.sources import TableSource
from monitor.batch.tables import events_table
from monitor.engine import Engine
from monitor.storage.records import MetricSlice, window_results
from monitor.storage.store import SqlStore
from monitor.targets import Target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--events-per-hour", type=float, default=3000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with throwaway_database("monitor_bench") as url:
        run(url, args)


def run(url: str, args: argparse.Namespace) -> None:
    stream = mon.streams["home"]
    engine = sa.create_engine(url)
    start = DEFAULT_START
    rows, _ = load_example_events(engine, args.days, args.seed, args.events_per_hour)
    store, targets = example_batch_store(url, "benchmark", args.seed, args.events_per_hour)
    table = events_table(stream)
    query = sa.select(*table.c).where(
        table.c.ts >= start.to_pydatetime(),
        table.c.ts < (start + pd.Timedelta(days=args.days)).to_pydatetime())

    seconds: defaultdict[str, float] = defaultdict(float)
    for repeat in range(args.repeats + 1):
        if repeat == 1:
            seconds.clear()  # the first pass warms the process
        with engine.begin() as conn:
            for name in RESULT_TABLES:
                conn.execute(sa.text(f"DELETE FROM {name}"))
        begin = time.perf_counter()
        with adbc.connect(connection_uri(engine.url), autocommit=True) as conn, \
                conn.cursor() as cursor:
            cursor.execute(literal_sql(engine, query))
            assert cursor.fetch_arrow_table().num_rows == rows
        seconds["columnar read (ADBC into Arrow)"] += time.perf_counter() - begin
        source = TableSource(engine, stream)
        for day in range(args.days):
            low = start + pd.Timedelta(days=day)
            one_slice(seconds, source, targets, store, low, low + pd.Timedelta(days=1))
    figures = {name: total / args.repeats for name, total in seconds.items()}
    store.close()
    engine.dispose()
    print_figures(figures, rows, args, len(targets))


def one_slice(seconds: defaultdict[str, float], source: TableSource, targets: list[Target],
              store: SqlStore, low: pd.Timestamp, high: pd.Timestamp) -> None:
    schema = source.stream.schema
    clean_chunks = []
    chunks = source.chunks(low, high)
    while True:
        begin = time.perf_counter()
        chunk = next(chunks, None)
        seconds["read: chunks"] += time.perf_counter() - begin
        if chunk is None:
            break
        begin = time.perf_counter()
        clean_chunks.append(schema.validate(chunk)[0])
        seconds["read: validate"] += time.perf_counter() - begin
    together = Engine([t.metric for t in targets])
    begin = time.perf_counter()
    for clean in clean_chunks:
        together.update(clean)
    seconds["update: every metric in one engine"] += time.perf_counter() - begin
    results = {}
    for target in targets:
        metric = target.metric
        alone = Engine([metric])
        begin = time.perf_counter()
        for clean in clean_chunks:
            alone.update(clean)
        seconds[f"update: {metric.name}"] += time.perf_counter() - begin
        begin = time.perf_counter()
        results[metric.name] = window_results(metric, together.partials)
        took = time.perf_counter() - begin
        seconds[f"values: {metric.name}"] += took
        seconds["values: every metric"] += took
    begin = time.perf_counter()
    run_ids = store.start_runs([(t.metric.name, t.version) for t in targets],
                               low.to_pydatetime(), high.to_pydatetime())
    store.write_slices("batch", [MetricSlice(t.metric, t.version, results[t.metric.name], run_id)
                                 for t, run_id in zip(targets, run_ids, strict=True)],
                       rows_read=sum(len(c) for c in clean_chunks), rejected=[],
                       evaluate_at=pd.Timestamp.now(tz="UTC").to_pydatetime())
    seconds["store: every metric"] += time.perf_counter() - begin


def print_figures(figures: dict[str, float], rows: int, args: argparse.Namespace,
                  metrics: int) -> None:
    columnar = figures["columnar read (ADBC into Arrow)"]
    parts = {
        "read": figures["read: chunks"] + figures["read: validate"],
        "compute": figures["update: every metric in one engine"]
                   + figures["values: every metric"],
        "store": figures["store: every metric"],
    }
    print(f"batch stage taken apart: {rows:,} events ({args.days} days at "
          f"{args.events_per_hour:g}/h), {metrics} example metrics; seconds, mean of "
          f"{args.repeats} passes after a warm one")
    for name, value in sorted(figures.items(), key=lambda item: -item[1]):
        print(f"  {value:7.3f}  {value / columnar:5.2f}x columnar  {name}")
    for name, value in parts.items():
        print(f"  {name:8} {value:7.3f} s  {value / columnar:5.2f}x the columnar read")
    print(f"  all      {sum(parts.values()):7.3f} s  "
          f"{sum(parts.values()) / columnar:5.2f}x the columnar read")
    print(json.dumps({"benchmark": "batch_breakdown", "rows": rows, "metrics": metrics,
                      "seconds": figures, "parts": parts,
                      "ratios_to_columnar": {k: v / columnar for k, v in parts.items()}}))


if __name__ == "__main__":
    main()
