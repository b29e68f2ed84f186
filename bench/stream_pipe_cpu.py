"""CPU per micro-batch of the worker's two processes, without Kafka or Faust.

    PYTHONPATH=$PWD .venv/bin/python bench/stream_pipe_cpu.py [BATCHES [HEAD_SHARE]]

This process decodes the head of each micro-batch of 115 messages x 500 events (8 MB, the
batched shape of bench/stream.py; HEAD_SHARE of its bytes, default
streaming.split_decode.HEAD_SHARE) as streaming.pre_decode does, and hands it to a real
:class:`streaming.processor_process.ProcessorProcess` (prepare_decoded, commit, a tick
every 0.25 s) over a throwaway Postgres database, with the 10 metrics x 3 segments of
bench/stream_app.py. Prints this process's CPU per batch (the decoding apart) and the
processor process's (from /proc, 10 ms ticks), median and mean over the batches after
the first five. CPU seconds, not the wall clock: steadier on a shared machine, and what
the hand-over between the processes costs shows in both.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from bench.postgres import throwaway_database  # noqa: E402
from bench.stream import PARTITIONS, event_bodies, messages, promote_all  # noqa: E402
from bench.stream_app import throughput  # noqa: E402
from monitor.storage.migrate import upgrade  # noqa: E402
from streaming.messages import RawMessage, decode_part  # noqa: E402
from streaming.processor import StreamSettings  # noqa: E402
from streaming.processor_process import ProcessorProcess, ProcessorSpec  # noqa: E402
from streaming.split_decode import HEAD_SHARE, HeadDecoded, head_length  # noqa: E402

MESSAGES_PER_BATCH = 115
EVENTS_PER_MESSAGE = 500
WARM_UP = 5


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(batches: int, share: float) -> None:
    stream = dataclasses.replace(throughput.streams["events"], topic="pipe-cpu")
    with throwaway_database("bench_stream") as url:
        upgrade(url)
        promote_all(url)
        spec = ProcessorSpec(url, "bench.stream_app:throughput", stream, PARTITIONS,
                             tuple(throughput.metrics), StreamSettings(), None,
                             logging.WARNING)
        processor = ProcessorProcess(spec)
        processor.assign(range(PARTITIONS))
        child = processor._process.pid
        assert child is not None
        start_ms = (int(time.time()) // 3600 - 2) * 3600 * 1000
        offsets = [0] * PARTITIONS
        raw = []
        for partition, value in messages(batches * MESSAGES_PER_BATCH * EVENTS_PER_MESSAGE,
                                         EVENTS_PER_MESSAGE, start_ms, 2_400_000,
                                         event_bodies(4096, seed=2)):
            raw.append(RawMessage(partition, offsets[partition], value))
            offsets[partition] += 1
        rows = []
        last_tick = time.perf_counter()
        for b in range(batches):
            batch = raw[b * MESSAGES_PER_BATCH:(b + 1) * MESSAGES_PER_BATCH]
            p0, c0 = time.process_time(), process_cpu(child)
            max_time = pd.Timestamp.now(tz="UTC") + pd.Timedelta(seconds=900)
            through = head_length(batch, share)
            head = HeadDecoded(decode_part(batch[:through], stream.schema, max_time=max_time),
                               through, max_time, True)
            p1 = time.process_time()
            processor.prepare_decoded(batch, head, False)
            del head
            processor.commit()
            if time.perf_counter() - last_tick >= 0.25:
                processor.tick()
                last_tick = time.perf_counter()
            p2, c2 = time.process_time(), process_cpu(child)
            rows.append((p1 - p0, p2 - p1, c2 - c0))
        processor.close()
    rows = rows[WARM_UP:]
    for i, name in enumerate(("worker: decoding", "worker: the rest", "processor")):
        ms = sorted(row[i] * 1000 for row in rows)
        print(f"{name:18} ms/batch: median {ms[len(ms) // 2]:6.1f} "
              f"mean {sum(ms) / len(ms):6.1f}")
    print(f"events per batch: {MESSAGES_PER_BATCH * EVENTS_PER_MESSAGE}")


if __name__ == "__main__":  # the processor may be spawned: it imports this module again
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40,
         float(sys.argv[2]) if len(sys.argv) > 2 else HEAD_SHARE)
