"""The batch stage on Spark against one process, on example events in Parquet.

    .venv/bin/python bench/batch_scale.py [--rows 50000000] [--master local[2]]

Generates the example homepage events once under ``out/batch_scale/ROWS/`` (a Parquet
file per day over 10 days, kept for later runs), then, at a fifth of the rows (the first
two days: 10M of the default 50M) and at all of them, runs the example's metrics (all but
the one joined to click outcomes) through the batch stage over the files twice, each run
in a process of its own storing into a fresh SQLite file:

- ``single``: ``monitor batch run`` in this process (``FileSource``);
- ``spark``: ``monitor batch run --engine spark --master local[2]``: states on Spark's
  executors, merged there, the driver storing them.

For each it reports rows per second (wall clock of the run, Spark's start-up included)
and the driver's peak memory: the resident set of the run's Python process plus, for
Spark, its JVM (in ``local[N]`` the executors' threads live in that JVM too; the Python
workers of the tasks are not counted), sampled every 50 ms. The target is Spark's driver
memory at the full size within +10% of its memory at a fifth (only states reach the
driver). The last line printed is one JSON object with the figures.

On a shared 2-core machine the default 50M rows take long; try ``--rows 2000000`` first.
The single process reads its stream's Parquet files through ``FileSource``, which scans
them with ``pyarrow.dataset`` (:mod:`monitor.batch.parquet_scan`): each day's slice reads
only the row groups its time range can hold, so it no longer holds every file of the glob
in pandas (50M rows: README's Scale table).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DAYS = 10
PART = 5  # the smaller size is a fifth of the rows: the first DAYS // PART days


def generate(rows: int, folder: Path) -> Path:
    """A Parquet file a day of example events, ``rows`` in all (generated once)."""
    import pandas as pd

    from examples.music_home_events import DEFAULT_START, generate_events

    done = folder / "complete"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    per_hour = rows / (DAYS * 24)
    for day in range(DAYS):
        events = generate_events(start=DEFAULT_START + pd.Timedelta(days=day), days=1,
                                 seed=day, events_per_hour=per_hour)
        pq.write_table(pa.Table.from_pandas(events, preserve_index=False),
                       folder / f"home-{day:02d}.parquet", row_group_size=500_000)
        print(f"generated day {day}: {len(events):,} rows", file=sys.stderr)
    done.write_text("ok")
    return folder


def _first_days(folder: Path, days: int) -> str:
    """A glob of the first ``days`` files only (links in a folder of their own): both
    engines read exactly the rows of the size measured."""
    linked = folder / f"first-{days}d"
    linked.mkdir(exist_ok=True)
    for day in range(days):
        link = linked / f"home-{day:02d}.parquet"
        if not link.exists():
            link.symlink_to(folder / f"home-{day:02d}.parquet")
    return str(linked / "home-*.parquet")


def example_targets(files: str, store_url: str, reason: str) -> tuple[Any, list[Any]]:
    """A store at ``store_url`` with the example metrics (all but the label-joined) moved
    to batch, and their batch targets reading ``files``: what a bench runs over."""
    import dataclasses

    from bench.example_store import example_batch_store

    store, table_targets = example_batch_store(store_url, reason)
    targets = [dataclasses.replace(t, metric=dataclasses.replace(
        t.metric, stream=dataclasses.replace(t.metric.stream, files=files)))
        for t in table_targets]
    return store, targets


def run_one(engine: str, master: str, files: str, days: int, store_url: str) -> None:
    """One batch run (in a process of its own): the example metrics, ``days`` days."""
    import pandas as pd

    from examples.music_home_events import DEFAULT_START
    from monitor.batch.engines import BatchEngine
    from monitor.batch.runner import BatchRunner

    store, targets = example_targets(files, store_url, "scale")
    computing = BatchEngine(engine, master)
    sources = computing.sources(None)
    start = time.perf_counter()
    summaries = BatchRunner(store, lambda m: sources(m.stream)).run_many(
        targets, since=DEFAULT_START, until=DEFAULT_START + pd.Timedelta(days=days))
    seconds = time.perf_counter() - start
    computing.stop()
    print(json.dumps({"rows": summaries[0].rows_read, "seconds": seconds}))


def _tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and its Java child (the driver's JVM)."""
    total = _rss(root)
    try:
        children = Path(f"/proc/{root}/task/{root}/children").read_text().split()
    except OSError:
        return total
    for child in children:
        try:
            if b"java" in Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")[0]:
                total += _rss(int(child))
        except OSError:
            continue
    return total


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def measure(engine: str, master: str, files: str, days: int, folder: Path) -> dict[str, float]:
    store = folder / f"{engine}-{days}d.sqlite"
    store.unlink(missing_ok=True)
    command = [sys.executable, __file__, "--run", engine, "--master", master,
               "--files", files, "--days", str(days), "--store", f"sqlite:///{store}"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(process.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = process.communicate()
    stop.set()
    sampler.join()
    if process.returncode:
        raise SystemExit(f"{engine} run failed ({process.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    return {"rows": result["rows"], "seconds": round(result["seconds"], 2),
            "rows_per_s": round(result["rows"] / result["seconds"]),
            "driver_rss_mb": round(peak / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "batch_scale")
    parser.add_argument("--run", choices=["local", "spark"], help=argparse.SUPPRESS)
    parser.add_argument("--files", help=argparse.SUPPRESS)
    parser.add_argument("--days", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run_one(args.run, args.master, args.files, args.days, args.store)
        return
    folder = generate(args.rows, args.out / str(args.rows))
    results: dict[str, dict[str, dict[str, float]]] = {"single": {}, "spark": {}}
    for days in (DAYS // PART, DAYS):
        files = _first_days(folder, days)
        for engine, key in (("local", "single"), ("spark", "spark")):
            figures = measure(engine, args.master, files, days, args.out)
            results[key][f"{days}d"] = figures
            print(f"{key} {days} days: {figures}", file=sys.stderr)
    small, full = f"{DAYS // PART}d", f"{DAYS}d"
    spark = results["spark"]
    print(json.dumps({
        "rows": args.rows, "master": args.master, **results,
        "spark_vs_single_rows_per_s": {
            size: round(spark[size]["rows_per_s"] / results["single"][size]["rows_per_s"], 2)
            for size in (small, full)},
        "spark_driver_growth": round(spark[full]["driver_rss_mb"]
                                     / spark[small]["driver_rss_mb"] - 1, 3),
        "target_driver_growth": 0.10,
    }))


if __name__ == "__main__":
    main()
