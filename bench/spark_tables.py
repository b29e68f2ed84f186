"""The batch stage from a Postgres table: one process against Spark (its JDBC source).

    .venv/bin/python bench/spark_tables.py [--days 2] [--events-per-hour 3000] [--repeats 2]
                                           [--master local[2]]

Loads the example homepage events into a table of a throwaway Postgres database (ranked
lists as ``text[]``), then runs the example's metrics (all but the one joined to click
outcomes) over it, alternately in this process (``TableSource``, the columnar read) and
on Spark (``SparkTableSource``), each run storing into a fresh SQLite file, and checks
that both stored the same values. Spark's start-up is timed apart (once per process);
each run's time is its wall clock, best of ``--repeats``. The last line printed is one
JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.example_store import example_batch_store  # noqa: E402
from bench.postgres import throwaway_database  # noqa: E402
from examples.music_home import mon  # noqa: E402
from examples.music_home_events import DEFAULT_START, generate_events  # noqa: E402
from monitor.batch.runner import BatchRunner  # noqa: E402
from monitor.batch.slice_states import StateSource  # noqa: E402
from monitor.batch.sources import EventSource, TableSource  # noqa: E402
from monitor.batch.spark_session import spark_session  # noqa: E402
from monitor.batch.spark_tables import SparkTableSource  # noqa: E402
from monitor.batch.tables import load_events  # noqa: E402
from monitor.spec import MetricSpec, StreamSpec  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--events-per-hour", type=float, default=3000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args()
    with throwaway_database("monitor_bench_spark") as url:
        run(url, args)


def run(url: str, args: argparse.Namespace) -> None:
    database = sa.create_engine(url)
    start = DEFAULT_START
    end = start + pd.Timedelta(days=args.days)
    events = generate_events(start=start, days=args.days, events_per_hour=args.events_per_hour)
    rows = load_events(database, mon.streams["home"], events)
    with database.begin() as connection:
        connection.execute(sa.text("ANALYZE home_events"))

    started = time.perf_counter()
    spark = spark_session(args.master, {"spark.ui.enabled": "false"})
    start_up = time.perf_counter() - started
    engines: dict[str, Callable[[StreamSpec], EventSource | StateSource]] = {
        "single": lambda stream: TableSource(database, stream),
        "spark": lambda stream: SparkTableSource(spark, stream, database),
    }
    best = dict.fromkeys(engines, float("inf"))
    stored: dict[str, pd.DataFrame] = {}
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            for name, source in engines.items():
                store_url = f"sqlite:///{Path(folder) / f'{name}-{repeat}.sqlite'}"
                store, targets = example_batch_store(store_url, "benchmark")

                def source_of(metric: MetricSpec,
                              source: Callable[[StreamSpec], EventSource | StateSource] = source
                              ) -> EventSource | StateSource:
                    return source(metric.stream)

                runner = BatchRunner(store, source_of)
                began = time.perf_counter()
                summaries = runner.run_many(targets, since=start, until=end)
                best[name] = min(best[name], time.perf_counter() - began)
                assert all(s.rows_read == rows for s in summaries)
                stored[name] = store.read_values(stage="batch", limit=None)
                store.close()
                print(f"{name} run {repeat + 1}: {best[name]:.1f} s best so far", flush=True)
    pd.testing.assert_frame_equal(stored["spark"], stored["single"], check_exact=True)
    spark.stop()
    database.dispose()
    figures = {"rows": rows, "days": args.days, "master": args.master,
               "spark_start_s": round(start_up, 2),
               **{f"{name}_s": round(seconds, 2) for name, seconds in best.items()},
               **{f"{name}_rows_per_s": round(rows / seconds) for name, seconds in best.items()},
               "values_identical": True}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
