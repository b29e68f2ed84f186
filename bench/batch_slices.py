"""Whether a single-process batch run slows down as its stored history grows.

    .venv/bin/python bench/batch_slices.py [--days 30] [--events-per-hour 2000]

Generates the example homepage events once under ``out/batch_slices/RATE/`` (a Parquet
file a day, kept for later runs), then runs the example's metrics (all but the one joined
to click outcomes) through ``BatchRunner`` over every day in one run, storing into a
fresh SQLite file (``--store URL`` for another database), as ``bench/batch_scale.py``'s
single process does. Each day is one slice; its time is read back from the runs the
stage records (first metric's start to last metric's end), so the run is timed as it is,
without hooks. Every slice reads, computes and stores about the same number of rows, so a
slice whose time grows with its index is paying for the history stored before it (alert
history reads, upserts, run queries). The first slice also pays the process's one-off
costs (the drift tests' null distributions).

Reported: each slice's seconds, the mean of each tenth of the run, and the ratio of the
last tenth's mean to the second's (the first holds the one-off costs); ~1 means flat. The
last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.batch_scale import example_targets  # noqa: E402
from examples.music_home import mon  # noqa: E402
from examples.music_home_events import (  # noqa: E402
    DEFAULT_START,
    generate_events,
)
from monitor.batch.engines import BatchEngine  # noqa: E402
from monitor.batch.runner import BatchRunner  # noqa: E402
from monitor.storage.store import SqlStore  # noqa: E402


def generate(days: int, per_hour: float, folder: Path) -> str:
    """A Parquet file a day of example events (each generated once); their glob."""
    folder.mkdir(parents=True, exist_ok=True)
    for day in range(days):
        path = folder / f"home-{day:04d}.parquet"
        if not path.exists():
            events = generate_events(start=DEFAULT_START + pd.Timedelta(days=day), days=1,
                                     seed=day, events_per_hour=per_hour)
            pq.write_table(pa.Table.from_pandas(events, preserve_index=False), path)
    return str(folder / "home-*.parquet")


def run(files: str, days: int, url: str) -> float:
    """One batch run of the example metrics over ``days`` days; its seconds."""
    store, targets = example_targets(files, url, "history")
    sources = BatchEngine("local", "local[1]").sources(None)
    start = time.perf_counter()
    BatchRunner(store, lambda m: sources(m.stream)).run_many(
        targets, since=DEFAULT_START, until=DEFAULT_START + pd.Timedelta(days=days))
    seconds = time.perf_counter() - start
    store.close()
    return seconds


def slice_seconds(url: str, days: int) -> list[float]:
    """Each slice's seconds, in slice order, from the runs recorded: the first start of
    any metric's run of the slice to the last end."""
    store = SqlStore.open(url)
    spans: dict[datetime, list[datetime]] = defaultdict(list)
    for recorded in store.recent_runs(limit=days * len(mon.metrics) * 2):
        if recorded.status == "succeeded" and recorded.finished_at is not None:
            spans[recorded.window_start] += [recorded.started_at, recorded.finished_at]
    store.close()
    return [round((max(times) - min(times)).total_seconds(), 3)
            for _, times in sorted(spans.items())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--events-per-hour", type=float, default=2000.0)
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "batch_slices")
    parser.add_argument("--store", help="database URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    if args.days < 10:
        parser.error("--days must be at least 10 (the run is compared by tenths)")
    files = generate(args.days, args.events_per_hour,
                     args.out / f"{args.events_per_hour:g}")
    url = args.store
    if url is None:
        path = args.out / "run.sqlite"
        path.unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    total = run(files, args.days, url)
    seconds = slice_seconds(url, args.days)
    tenth = len(seconds) // 10
    means = [round(sum(part) / len(part), 3)
             for part in (seconds[i * tenth:(i + 1) * tenth] for i in range(10))]
    print(f"slice seconds: {seconds}", file=sys.stderr)
    print(json.dumps({"days": args.days, "events_per_hour": args.events_per_hour,
                      "seconds": round(total, 2), "slices": len(seconds),
                      "tenth_means": means,
                      "last_vs_second_tenth": round(means[-1] / means[1], 2)}))


if __name__ == "__main__":
    main()
