"""Where the streaming worker spends its time, without Kafka: StreamProcessor alone.

    .venv/bin/python bench/stream_processor.py [--profile [--profile-sort cumulative]]
        [--sizes 1x100,1x1000,500x20]

Drives ``streaming.processor.StreamProcessor`` (the code the Faust agent runs per
micro-batch: prepare = decode + validate + lateness, absorb = engine updates, store =
partials and checkpoints upserted) with the 10 metrics x 3 segments of
bench/stream_app.py, against a throwaway Postgres database, for micro-batches of
``EVENTS_PER_MESSAGE x MESSAGES`` (e.g. ``1x1000``: 1000 single-event messages). Prints
the time per micro-batch split into prepare / absorb / store / tick, the events/s this
processor alone can reach at that batch shape, and with ``--profile`` a cProfile of
each shape (top functions by own time). ``--behind`` tells the processor it is behind
before each micro-batch, as the worker does when they are full; ``--cpu`` times by this
process's CPU seconds, steadier than the wall clock on a shared machine. Last line: one
JSON object.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import secrets
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.postgres import throwaway_database  # noqa: E402
from bench.stream import PARTITIONS, event_bodies, messages, promote_all  # noqa: E402
from bench.stream_app import throughput  # noqa: E402
from monitor.storage.migrate import upgrade  # noqa: E402
from monitor.storage.store import SqlStore  # noqa: E402
from monitor.targets import batch_targets  # noqa: E402
from streaming.messages import RawMessage  # noqa: E402
from streaming.processor import StreamProcessor  # noqa: E402
from streaming.sql_store import SqlStreamStore  # noqa: E402


def shape_run(store: SqlStore, per_message: int, count: int, batches: int,
              profile: bool, sort: str = "tottime", top: int = 18,
              behind: bool = False) -> dict[str, Any]:
    stream = throughput.streams["events"]
    topic = f"proc-{per_message}x{count}-{secrets.token_hex(3)}"
    targets = batch_targets(throughput, store, stages=("streaming",))
    processor = StreamProcessor(SqlStreamStore(store.database), stream, topic, PARTITIONS, targets)
    processor.assign(range(PARTITIONS))
    bodies = event_bodies(4096, seed=2)
    total_events = per_message * count * batches
    start_ms = (int(time.time()) // 3600 - 2) * 3600 * 1000
    offsets = [0] * PARTITIONS
    raw = []
    for partition, value in messages(total_events, per_message, start_ms, 2_400_000, bodies):
        raw.append(RawMessage(partition, offsets[partition], value))
        offsets[partition] += 1
    split = {"prepare": 0.0, "absorb": 0.0, "store": 0.0, "tick": 0.0}
    profiler = cProfile.Profile() if profile else None
    began = last_tick = time.perf_counter()
    for b in range(batches):
        batch = raw[b * count:(b + 1) * count]
        if profiler:
            profiler.enable()
        t0 = time.perf_counter()
        if behind:  # as the worker says when its micro-batch was full
            processor.note_backlog()
        prepared = processor.prepare(batch)
        t1 = time.perf_counter()
        processor.absorb(prepared)
        t2 = time.perf_counter()
        processor.store_or_reload(prepared)
        t3 = time.perf_counter()
        if t3 - last_tick >= 0.25 or b == batches - 1:  # the worker's timer: every 0.25 s
            processor.tick()
            last_tick = t3
        t4 = time.perf_counter()
        if profiler:
            profiler.disable()
        split["prepare"] += t1 - t0
        split["absorb"] += t2 - t1
        split["store"] += t3 - t2
        split["tick"] += t4 - t3
    seconds = time.perf_counter() - began
    result: dict[str, Any] = {
        "shape": f"{per_message}x{count}", "batches": batches, "events": total_events,
        "seconds": seconds, "events_per_second": total_events / seconds,
        "ms_per_batch": {k: 1000 * v / batches for k, v in split.items()},
        "ms_per_batch_total": 1000 * seconds / batches,
    }
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(sort).print_stats(top)
        result["profile_top"] = out.getvalue()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1x1,1x10,1x100,1x1000,500x1,500x20,500x200",
                        help="comma-separated EVENTS_PER_MESSAGExMESSAGES micro-batch shapes")
    parser.add_argument("--events", type=int, default=400_000,
                        help="about this many events per shape (at least 3 batches)")
    parser.add_argument("--max-batches", type=int, default=60)
    parser.add_argument("--behind", action="store_true",
                        help="tell the processor it is behind before each micro-batch, as "
                             "the worker does when its micro-batches are full (a backlog)")
    parser.add_argument("--cpu", action="store_true",
                        help="time by this process's CPU seconds instead of the wall clock "
                             "(steadier on a loaded machine; Postgres' own time not counted)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--profile-sort", default="tottime",
                        help="cProfile order: tottime (own time) or cumulative")
    parser.add_argument("--profile-top", type=int, default=18)
    args = parser.parse_args()
    if args.cpu:
        time.perf_counter = time.process_time
    results = []
    with throwaway_database("bench_stream") as url:
        upgrade(url)
        promote_all(url)
        with SqlStore.open(url) as store:
            for size in args.sizes.split(","):
                per_message, count = (int(x) for x in size.split("x"))
                batches = max(3, min(args.max_batches, args.events // (per_message * count)))
                r = shape_run(store, per_message, count, batches, args.profile,
                              args.profile_sort, args.profile_top, args.behind)
                ms = r["ms_per_batch"]
                print(f"{r['shape']:>8} x {batches:5} batches: {r['events_per_second']:>10,.0f} "
                      f"events/s; per batch {r['ms_per_batch_total']:7.2f} ms = prepare "
                      f"{ms['prepare']:.2f} + absorb {ms['absorb']:.2f} + store "
                      f"{ms['store']:.2f} + tick {ms['tick']:.2f}", file=sys.stderr, flush=True)
                if args.profile:
                    print(r["profile_top"], file=sys.stderr)
                results.append({k: v for k, v in r.items() if k != "profile_top"})
    print(json.dumps({"benchmark": "stream_processor", "metrics": len(throughput.metrics),
                      "results": results}))


if __name__ == "__main__":
    main()
