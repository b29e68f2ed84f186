"""The baseline of bench/stream.py: a bare Faust agent that only parses and counts.

    .venv/bin/python bench/bare_faust_agent.py --bootstrap HOST:PORT --topic T \
        --group G --expect EVENTS --out result.json

Same Faust settings as ``streaming.worker.build_app`` (memory store, raw serializers,
session timeout 10 s, ``stream_wait_empty``, no web server), and one agent iterating
``async for value in stream``: ``json.loads`` of each message, counting its events (an
array's length, or 1). Once ``--expect`` events are counted it writes a JSON object to
``--out`` and exits at once (``os._exit``: the bench does not need a clean leave).

Also its memory (VmRSS, its resident pages counted once and its PSS: bench/memory.py) as
it passes 1M, 2M, 5M, 10M (and every 5M more) events, to compare with the worker's: what
Faust itself holds.

Rate: the events counted after the count first reached ``--warmup`` over the time from
then to the last, the same window bench/stream.py applies to our worker's stored
checkpoints (see its docstring for why a warm-up and not the first message).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import faust

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.memory import distinct_mb, pss_mb, rss_mb
from streaming.worker import WorkerSettings, faust_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--expect", type=int, required=True, help="events to count")
    parser.add_argument("--out", required=True)
    parser.add_argument("--session-timeout", type=float, default=10.0)
    parser.add_argument("--warmup", type=int, default=0,
                        help="events counted before the clock starts")
    args = parser.parse_args()

    # The worker's own Faust settings, so the two differ only in what the agent does.
    app = faust_app(WorkerSettings(args.bootstrap, args.group,
                                   session_timeout_s=args.session_timeout))
    source = app.topic(args.topic, value_serializer="raw", key_serializer="raw")
    counts = {"messages": 0, "events": 0}
    marks: dict[str, float] = {}
    rss_marks = [1_000_000, 2_000_000, 5_000_000,
                 *range(10_000_000, args.expect + 1, 5_000_000)]
    rss: dict[str, float | None] = {}
    distinct: dict[str, float | None] = {}
    pss: dict[str, float | None] = {}
    me = os.getpid()

    async def count(stream: Any) -> None:
        async for value in stream:
            parsed = json.loads(value)
            n = len(parsed) if isinstance(parsed, list) else 1
            counts["messages"] += 1
            counts["events"] += n
            while rss_marks and counts["events"] >= rss_marks[0]:
                mark = f"{rss_marks.pop(0) // 1_000_000}M"
                rss[mark] = rss_mb(me)
                distinct[mark] = distinct_mb(me)
                pss[mark] = pss_mb(me)
            if counts["messages"] == 1:
                marks["first"] = time.time()
            if "warm" not in marks and counts["events"] >= args.warmup:
                marks["warm_cpu"] = _cpu_seconds()
                marks["warm"] = time.time()
                marks["warm_events"] = counts["events"]
                marks["warm_messages"] = counts["messages"]
            if counts["events"] >= args.expect:
                done = time.time()
                cpu = _cpu_seconds() - marks["warm_cpu"]
                seconds = done - marks["warm"]
                steady = counts["events"] - marks["warm_events"]
                with open(args.out + ".tmp", "w") as out:
                    json.dump({"messages": counts["messages"], "events": counts["events"],
                               "first_at": marks["first"], "warm_at": marks["warm"],
                               "warm_events": marks["warm_events"], "last_at": done,
                               "seconds": seconds, "cpu_seconds": cpu,
                               "events_per_cpu_second": steady / cpu if cpu > 0 else None,
                               "events_per_second": steady / seconds if seconds > 0 else None,
                               "messages_per_second":
                                   (counts["messages"] - marks["warm_messages"]) / seconds
                               if seconds > 0 else None,
                               "rss_mb": rss, "distinct_mb": distinct, "pss_mb": pss,
                               "peak_rss_mb": rss_mb(me, "VmHWM")}, out)
                os.replace(args.out + ".tmp", args.out)
                logging.shutdown()
                os._exit(0)

    count.__name__ = "bare_count"
    app.agent(source, name="bench.bare")(count)
    faust.Worker(app, loglevel="warn", quiet=True).execute_from_commandline()


def _cpu_seconds() -> float:
    """User + system CPU time of this process, every thread's (Faust's consumer too)."""
    times = os.times()
    return times.user + times.system


if __name__ == "__main__":
    main()
