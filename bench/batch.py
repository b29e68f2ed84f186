"""Batch stage throughput: a Postgres table to stored values, against the bare reads.

    .venv/bin/python bench/batch.py [--days 7] [--events-per-hour 3000] [--repeats 3]

Loads the example homepage events into a table of a throwaway Postgres database (on
127.0.0.1:5432, or $MONITOR_BENCH_POSTGRES_URL's server), then times, interleaved and best
of a few repeats:

- ``columnar``: the fastest plain read of the same rows and columns we know, the time
  filter in SQL: ADBC's PostgreSQL driver (COPY in binary, decoded in C) into one Arrow
  table, no metrics and no pandas — the least any batch job over this table must spend;
- ``bare``: ``pd.read_sql`` of the same rows and columns, the read most pandas jobs do;
- ``read``: our source's chunks of the same rows (the columnar read, as the frames the
  row path gave) validated against the stream's schema, no metrics: what the batch stage
  spends before its metrics;
- ``ours``: ``BatchRunner.run_many`` over the example metrics for the same range (all but
  the one joined to click outcomes, which reads a second table): the columnar read in
  chunks (each day read while the day before is computed and stored), validation, every
  metric's states, values and states upserted, runs recorded;
- ``inline``: ``ours`` with each day read only once the day before is stored (no
  read-ahead), for a paired comparison in the same process.
  The stored results (alert states included) are deleted before each repeat so every
  run writes and evaluates its alert rules. Its first run
  is reported too: it alone simulates the drift tests' null distributions (once per
  reference column and window size, then kept in the process), a cost a one-shot
  ``monitor batch run`` pays and a scheduler pays once.

Targets: ours within 1.3x of the columnar read, and at most 1.5x the pandas read. The
last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import adbc_driver_postgresql.dbapi as adbc
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.example_store import example_batch_store, load_example_events
from bench.postgres import throwaway_database
from bench.server_cpu import postgres_cpu_seconds
from examples.music_home import mon
from examples.music_home_events import DEFAULT_START
from monitor.batch.postgres_columns import connection_uri, literal_sql
from monitor.batch.runner import BatchRunner
from monitor.batch.sources import TableSource
from monitor.batch.tables import events_table

TARGET_RATIO = 1.5  # ours / pd.read_sql
COLUMNAR_TARGET = 1.3  # ours / the columnar read
# what a run stores, deleted before each repeat: its alert states too, or a repeat would
# find every window evaluated already and skip the alert rules
RESULT_TABLES = ("metric_values", "metric_states", "batch_runs", "dead_letters",
                 "alert_deliveries", "alert_notifications", "alert_events", "alert_states")


def best_of(repeats: int, runs: dict[str, Callable[[], object]],
            before: dict[str, Callable[[], None]], cpu: dict[str, float] | None = None,
            server_cpu: dict[str, float] | None = None
            ) -> tuple[dict[str, float], dict[str, float]]:
    """The best and the first time of each run (and, into ``cpu``, the CPU seconds of the
    process, all threads, in each run's best; into ``server_cpu`` those of the local
    Postgres server's processes, when it is local)."""
    best = dict.fromkeys(runs, float("inf"))
    first: dict[str, float] = {}
    for _ in range(repeats):
        for name, run in runs.items():
            if name in before:
                before[name]()
            start_server = postgres_cpu_seconds()  # read before the clock starts: /proc
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            seconds = time.perf_counter() - start
            end_server = postgres_cpu_seconds()
            if seconds < best[name] and cpu is not None:
                cpu[name] = time.process_time() - start_cpu
            if seconds < best[name] and server_cpu is not None and start_server is not None \
                    and end_server is not None:
                server_cpu[name] = end_server - start_server
            best[name] = min(best[name], seconds)
            first.setdefault(name, seconds)
    return best, first


def cores_floor(client_cpu: float | None, server_cpu: float | None) -> float | None:
    """The least wall time a run could take on this machine's cores, were its CPU seconds
    and the local server's spread over them perfectly: a bound no scheduling beats (None
    without the server's figure)."""
    if client_cpu is None or server_cpu is None:
        return None
    return (client_cpu + server_cpu) / (os.cpu_count() or 1)


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
    stream = mon.streams["home"]
    engine = sa.create_engine(url)
    start = DEFAULT_START
    end = start + pd.Timedelta(days=args.days)
    rows, load_seconds = load_example_events(engine, args.days, args.seed,
                                             args.events_per_hour)
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE home_events"))

    store, targets = example_batch_store(url, "benchmark", args.seed, args.events_per_hour)
    runner = BatchRunner(store, lambda m: TableSource(engine, m.stream))
    inline_runner = BatchRunner(store, lambda m: TableSource(engine, m.stream),
                                read_ahead=False)

    table = events_table(stream)
    query = sa.select(*table.c).where(table.c.ts >= start.to_pydatetime(),
                                      table.c.ts < end.to_pydatetime())

    def bare() -> pd.DataFrame:
        with engine.connect() as conn:
            return pd.read_sql(query, conn)

    def columnar() -> pa.Table:
        with adbc.connect(connection_uri(engine.url), autocommit=True) as conn, \
                conn.cursor() as cursor:
            cursor.execute(literal_sql(engine, query))
            table = cursor.fetch_arrow_table()
        assert table.num_rows == rows
        return table

    source = TableSource(engine, stream)

    def read() -> None:
        kept = sum(len(stream.schema.validate(chunk)[0])
                   for day in range(args.days)
                   for chunk in source.chunks(start + pd.Timedelta(days=day),
                                              start + pd.Timedelta(days=day + 1)))
        assert kept == rows

    def ours() -> None:
        summaries = runner.run_many(targets, since=start, until=end)
        assert all(s.rows_read == rows for s in summaries)

    def inline() -> None:
        summaries = inline_runner.run_many(targets, since=start, until=end)
        assert all(s.rows_read == rows for s in summaries)

    def clear_results() -> None:
        with engine.begin() as conn:
            for name in RESULT_TABLES:
                conn.execute(sa.text(f"DELETE FROM {name}"))

    cpu: dict[str, float] = {}
    server_cpu: dict[str, float] = {}
    seconds, first = best_of(args.repeats, {"columnar": columnar, "bare": bare, "read": read,
                                            "ours": ours, "inline": inline},
                             {"ours": clear_results, "inline": clear_results}, cpu,
                             server_cpu)
    values = store.read_values(stage="batch", limit=None)
    ratio = seconds["ours"] / seconds["bare"]
    columnar_ratio = seconds["ours"] / seconds["columnar"]
    store.close()
    engine.dispose()

    print(f"batch stage: {rows:,} events ({args.days} days at {args.events_per_hour:g}/h) in "
          f"Postgres, {len(targets)} example metrics, {len(values):,} values stored")
    for name, what in (("columnar", "ADBC into Arrow, the same rows, no metrics"),
                       ("bare", "pd.read_sql of the same rows"),
                       ("read", "our chunks of them, validated, a day at a time"),
                       ("inline", "ours, each day read after the last is stored"),
                       ("ours", "read + validate + compute + upsert, the next day read "
                                "ahead")):
        print(f"  {name:9} {seconds[name]:7.2f} s  ({rows / seconds[name]:10,.0f} rows/s)  "
              f"{what}" + (f"  ({cpu[name]:.2f} CPU s)" if name in cpu else "")
              + (f"  (server {server_cpu[name]:.2f} CPU s)" if name in server_cpu else ""))
    print(f"  ours / columnar {columnar_ratio:6.2f}x  (target <= {COLUMNAR_TARGET}x): "
          f"{'met' if columnar_ratio <= COLUMNAR_TARGET else 'NOT met'}")
    print(f"  read / columnar {seconds['read'] / seconds['columnar']:6.2f}x  (what the batch "
          "stage reads before computing)")
    floor = cores_floor(cpu.get("ours"), server_cpu.get("ours"))
    if floor is not None:
        print(f"  ours' CPU, ours and the server's, spread over {os.cpu_count()} cores with "
              f"nothing else to do: at least {floor:.2f} s = "
              f"{floor / seconds['columnar']:.2f}x the columnar read")
    print(f"  ours, first run {first['ours']:7.2f} s  (a process's first run also simulates "
          "the drift tests' null distributions, once per column and window size)")
    print(f"  ours / pandas   {ratio:6.2f}x  (target <= {TARGET_RATIO}x): "
          f"{'met' if ratio <= TARGET_RATIO else 'NOT met'}")
    print(json.dumps({
        "benchmark": "batch_stage",
        "rows": rows,
        "metrics": len(targets),
        "values_stored": len(values),
        "columnar_seconds": seconds["columnar"],
        "bare_seconds": seconds["bare"],
        "read_seconds": seconds["read"],
        "our_seconds": seconds["ours"],
        "our_first_seconds": first["ours"],
        "our_cpu_seconds": cpu["ours"],
        "our_server_cpu_seconds": server_cpu.get("ours"),
        "columnar_server_cpu_seconds": server_cpu.get("columnar"),
        "columnar_cpu_seconds": cpu["columnar"],
        "our_cores_floor_seconds": floor,
        "inline_seconds": seconds["inline"],
        "inline_cpu_seconds": cpu["inline"],
        "columnar_rows_per_second": rows / seconds["columnar"],
        "bare_rows_per_second": rows / seconds["bare"],
        "read_rows_per_second": rows / seconds["read"],
        "our_rows_per_second": rows / seconds["ours"],
        "columnar_ratio": columnar_ratio,
        "columnar_target_ratio": COLUMNAR_TARGET,
        "columnar_met": columnar_ratio <= COLUMNAR_TARGET,
        "ratio": ratio,
        "target_ratio": TARGET_RATIO,
        "met": ratio <= TARGET_RATIO,
        "load_seconds": load_seconds,
        "repeats": args.repeats,
    }))


if __name__ == "__main__":
    main()
