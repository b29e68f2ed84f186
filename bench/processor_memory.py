"""Memory of a worker's processor process, forked against spawned, on batched events.

    .venv/bin/python bench/processor_memory.py [--events 2000000]

bench/stream.py measures a whole worker against a bare Faust agent; this isolates the
processor's process (streaming.processor_process), without Faust or Kafka, and compares
its two start methods side by side in one run. For each method: a throwaway Postgres
database with the 10 metrics x 3 segments of bench/stream_app.py in streaming, and a
fresh interpreter that imports the worker's modules as ``monitor stream worker`` does,
starts a processor (``fork``: the default, nothing else running; ``spawn``: forced by a
thread left running, see streaming.fork_start) and feeds it the batched events of
bench/stream.py (500 a message, in parts of 8 MB as the worker sends them, a tick after
each part). At every 500k events it reads, for the parent (the would-be worker) and the
child: VmRSS, PSS and the private pages (Private_Clean + Private_Dirty of
/proc/PID/smaps_rollup: what the process alone holds).

Progress goes to stderr; the last line on stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MARK_EVERY = 500_000


def rollup(pid: int) -> dict[str, float]:
    """Rss, Pss and Private (clean + dirty) of /proc/PID/smaps_rollup, in MB."""
    found = {"rss": 0.0, "pss": 0.0, "private": 0.0}
    with open(f"/proc/{pid}/smaps_rollup") as lines:
        for line in lines:
            key, _, rest = line.partition(":")
            kb = rest.split()[0] if rest.split() else "0"
            if key == "Rss":
                found["rss"] = int(kb) / 1024
            elif key == "Pss":
                found["pss"] = int(kb) / 1024
            elif key in ("Private_Clean", "Private_Dirty"):
                found["private"] += int(kb) / 1024
    return found


def inner(url: str, method: str, events: int) -> dict[str, Any]:
    """One processor, fed ``events`` batched events; its memory at the marks."""
    import os
    import threading

    import streaming.worker  # noqa: F401  the worker's imports, as when it forks
    from bench.stream import BATCH_EVENTS, PARTITIONS, event_bodies, messages
    from bench.stream_app import throughput
    from streaming.memory_bounds import TAKE_BYTES
    from streaming.messages import RawMessage
    from streaming.processor import StreamSettings
    from streaming.processor_process import ProcessorProcess, ProcessorSpec

    if method == "spawn":  # a Python thread running: fork is refused
        threading.Thread(target=threading.Event().wait, daemon=True, name="idle").start()
    stream = throughput.streams["events"]
    spec = ProcessorSpec(url, "bench.stream_app:throughput", stream, PARTITIONS,
                         tuple(throughput.metrics), StreamSettings(), None, 30)
    process = ProcessorProcess(spec)
    assert process.start_method == method, process.start_method
    child = process._process.pid
    assert child is not None  # started: it has a pid
    process.assign(list(range(PARTITIONS)))
    bodies = event_bodies(4096, seed=1)
    start_ms = (int(time.time()) // 3600 - 2) * 3600 * 1000
    offsets = [0] * PARTITIONS
    batch: list[RawMessage] = []
    marks: dict[str, Any] = {}
    fed = 0
    began = time.time()

    def feed(part: list[RawMessage]) -> None:
        for piece in by_size(part, TAKE_BYTES):  # as the worker's micro-batches are bounded
            process.prepare(piece, backlog=True)
            process.commit()
        process.tick()

    for partition, value in messages(events, BATCH_EVENTS, start_ms, 2_400_000, bodies):
        batch.append(RawMessage(partition, offsets[partition], value, None))
        offsets[partition] += 1
        fed += BATCH_EVENTS
        if len(batch) * BATCH_EVENTS >= 57_000:  # about what the worker takes at a time
            feed(batch)
            batch = []
        if fed % MARK_EVERY == 0:
            marks[f"{fed // 1000}k"] = {"parent": rollup(os.getpid()), "child": rollup(child)}
            print(f"  {method} {fed:,}: {marks[f'{fed // 1000}k']}", file=sys.stderr,
                  flush=True)
    if batch:
        feed(batch)
    seconds = time.time() - began
    process.store()
    process.close()
    return {"method": method, "events": fed, "seconds": seconds, "marks": marks}


def by_size(messages: list[Any], max_bytes: int) -> list[list[Any]]:
    """``messages`` in consecutive parts of at most ``max_bytes`` of values each (one
    message more than that alone is a part): what the worker's gathering (see
    streaming.micro_batches) hands the processor at most at a time."""
    parts: list[list[Any]] = [[]]
    size = 0
    for message in messages:
        length = len(message.value or b"")
        if parts[-1] and size + length > max_bytes:
            parts.append([])
            size = 0
        parts[-1].append(message)
        size += length
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--inner", nargs=2, metavar=("URL", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        print(json.dumps(inner(args.inner[0], args.inner[1], args.events)))
        return

    from bench.postgres import throwaway_database
    from bench.stream import promote_all
    from monitor.storage.migrate import upgrade

    results = {}
    for method in ("fork", "spawn"):
        # a database each: a processor skips the offsets another stored
        with throwaway_database("bench_procmem") as url:
            upgrade(url)
            promote_all(url)
            done = subprocess.run([sys.executable, __file__, "--events", str(args.events),
                                   "--inner", url, method], cwd=ROOT, stdout=subprocess.PIPE,
                                  text=True, check=True)
            results[method] = json.loads(done.stdout.splitlines()[-1])
    last = max(results["fork"]["marks"], key=lambda k: int(k[:-1]))
    for method in ("fork", "spawn"):
        figures = results[method]["marks"][last]
        print(f"{method:5} at {last}: child RSS {figures['child']['rss']:.0f} MB, PSS "
              f"{figures['child']['pss']:.0f} MB, private {figures['child']['private']:.0f} "
              f"MB; parent PSS {figures['parent']['pss']:.0f} MB; both PSS "
              f"{figures['child']['pss'] + figures['parent']['pss']:.0f} MB; "
              f"{results[method]['events'] / results[method]['seconds']:,.0f} events/s",
              file=sys.stderr)
    print(json.dumps({"benchmark": "processor_memory", "events": args.events, **results}))


if __name__ == "__main__":
    main()
