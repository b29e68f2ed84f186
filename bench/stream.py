"""Streaming stage throughput, window-close delay and worker memory, against a bare Faust agent.

    .venv/bin/python bench/stream.py            # the full run, about 6 minutes
    .venv/bin/python bench/stream.py --quick    # a smoke run, about 2 minutes

Starts the embedded broker (Tansu) and a throwaway Postgres database (127.0.0.1:5432, or
$MONITOR_BENCH_POSTGRES_URL's server), registers the 10 metrics x 3 segments of
bench/stream_app.py and promotes them to the streaming stage, pre-fills two topics of 4
partitions (100k single-event messages; 10M events in messages of 500, as the Emitter
sends by default; epoch-millisecond ``ts`` rising over 10 and 40 minutes of past event
time, so the one-minute windows close as the worker goes), and then runs, one at a time,
alternating which goes first, ``--rounds`` times:

- ``ours``: ``monitor stream worker`` (a subprocess, a consumer group of its own) from the
  topic to stored partial states, events counted by ``stream_checkpoints.events`` (their
  sum, polled every 50 ms). Its state is cleared before each run.
- ``bare``: bench/bare_faust_agent.py, the same Faust settings with an agent that only
  ``json.loads`` each message and counts its events.

Both are timed over the same window: events/s = the events counted after the count first
reached the warm-up (``--warmup-share`` of the run's events, 20% by default) over the time
from then to the count holding every event. Timed from the first message (the bare
agent) or the first checkpoint (ours), as before, each clock started at a different
point of its start-up: the bare agent's with up to 8 MB of messages (57k events of 500)
already fetched ahead and the broker's first fetches still coming in, over runs of 2M
events that lasted under 4 s; the same bare agent measured 2.4x apart in two quiet
sessions. A common warm-up in events excludes the group join, the first fetches and the
first micro-batch alike, so the two rates are over the same messages in the same steady
state; runs of a few seconds stay noisy, so prefer more events (``--batched-events``,
``--repeat-batched-events``) when the ratio matters.

The first round reads the whole batched topic, and the worker's memory (VmRSS of its
processes together) is read as it passes 1M, 2M, 5M, 10M (and every 5M more) absorbed
events; later rounds read its first ``--repeat-batched-events`` (2M) events, bare and ours
alike. Rates reported are the best run of each (``runs`` has every run, with the worker's
CPU share). Then live traffic (ts = now, 3,000 events/s through
``streaming.emitter.Emitter`` keyed over 4 partitions) with 5 s windows and no lateness
for 2 minutes: per window stored, delay = the latest ``computed_at`` of its values -
(window end + lateness).

Targets (issue 4): single-event messages >= 0.8x the bare agent; batched >= 100,000
events/s per worker; worker memory flat from 1M to 10M. Issue 16: batched >= 0.6x the
bare agent; worker memory <= 1.5x the bare agent's at the same absorbed events (both the
VmRSS sum of the two processes, their resident pages counted once and their PSS summed
are reported, see bench/memory.py); window-close delay p99 <= 1 s.
The machine has 2 cores shared with whatever else runs: compare bare and ours of the
same run, not figures across runs. Other processes' load shifts even that ratio (each
side gets what share of the cores it can), so the batched runs also report events per
CPU second (user + system time of the worker's processes, or the agent's, over the same
window; the broker's and Postgres' not counted): how much work each does per event,
which load changes much less. bench/stream_processor.py times the processor alone.
Progress goes to stderr; the last line on stdout is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.memory import (  # noqa: E402
    distinct_mb,
    family,
    own_pss_mb,
    pss_mb,
    rss_mb,
    status_mb,
)
from bench.postgres import throwaway_database  # noqa: E402
from bench.stream_app import COUNTRIES, DEVICES, live, throughput  # noqa: E402
from monitor.stage_switch import EPOCH  # noqa: E402
from monitor.storage.migrate import upgrade  # noqa: E402
from monitor.storage.store import SqlStore  # noqa: E402
from streaming.broker import EmbeddedBroker, create_topics  # noqa: E402

PYTHON = sys.executable
MONITOR = str(Path(sys.executable).with_name("monitor"))
PARTITIONS = 4
BATCH_EVENTS = 500
STREAM = "events"
STALL_S = 90.0  # a worker that absorbs nothing new for this long has failed
RSS_MARKS = (1_000_000, 2_000_000, 5_000_000, 10_000_000)
TARGETS = {"single_ratio": 0.8, "batched_events_per_second": 100_000, "batched_ratio": 0.6,
           "memory_ratio": 1.5, "delay_p99_s": 1.0}


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# -- events -------------------------------------------------------------------------------


def event_bodies(count: int, seed: int) -> list[bytes]:
    """JSON object tails (everything after ``"ts":N,``) of ``count`` varied events."""
    rng = np.random.default_rng(seed)
    countries = rng.choice(len(COUNTRIES), count, p=[0.5, 0.3, 0.2])
    devices = rng.choice(len(DEVICES), count, p=[0.45, 0.4, 0.15])
    latency = np.round(rng.lognormal(4.5, 0.8, count), 2)
    score = np.round(rng.beta(2, 5, count), 4)
    clicked = rng.random(count) < 0.3
    session = np.round(rng.exponential(300, count), 1)
    missing = rng.random(count) < 0.05
    bodies = []
    for i in range(count):
        session_part = "" if missing[i] else f',"session_length_s":{session[i]}'
        bodies.append(
            f'"user_id":{i},"country":"{COUNTRIES[countries[i]]}",'
            f'"device":"{DEVICES[devices[i]]}","latency_ms":{latency[i]},'
            f'"score":{score[i]},"clicked":{"true" if clicked[i] else "false"}'
            f'{session_part}}}'.encode())
    return bodies


def messages(total_events: int, per_message: int, start_ms: int, span_ms: int,
             bodies: list[bytes]) -> Iterator[tuple[int, bytes]]:
    """(partition, value) of ``total_events`` events, ``per_message`` a message, event times
    rising evenly over ``span_ms`` from ``start_ms``; messages go round the partitions, so
    every partition's event time rises too."""
    step = span_ms / max(total_events, 1)
    pool = len(bodies)
    sent = 0
    index = 0
    while sent < total_events:
        n = min(per_message, total_events - sent)
        events = [b'{"ts":%d,' % (start_ms + int((sent + j) * step)) + bodies[(sent + j) % pool]
                  for j in range(n)]
        value = events[0] if n == 1 else b"[" + b",".join(events) + b"]"
        yield index % PARTITIONS, value
        sent += n
        index += 1


def prefill(bootstrap: str, topic: str, stream: Iterator[tuple[int, bytes]]) -> tuple[int, int]:
    """Send the messages with aiokafka (its record batches are built in C, unlike
    kafka-python's without the crc32c package); (messages, bytes) sent."""
    import asyncio

    from aiokafka import AIOKafkaProducer

    async def send() -> tuple[int, int]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20,
                                    max_batch_size=1_048_576, max_request_size=4_194_304,
                                    acks=1)
        await producer.start()
        count = size = 0
        pending = []
        try:
            for partition, value in stream:
                pending.append(await producer.send(topic, value, partition=partition))
                count += 1
                size += len(value)
                if len(pending) >= 2000:
                    await asyncio.gather(*pending)
                    pending.clear()
            await asyncio.gather(*pending)
        finally:
            await producer.stop()
        return count, size

    return asyncio.run(send())


# -- the database ---------------------------------------------------------------------------


def promote_all(url: str) -> None:
    with SqlStore.open(url) as store:
        for mon in (throughput, live):
            for spec in mon.metrics.values():
                definition = store.register_metric(spec)
                for stage in ("batch", "streaming"):
                    store.record_stage_change(spec.name, definition.version, stage,
                                              by="bench", reason="streaming benchmark",
                                              effective_from=EPOCH)


def clear(engine: sa.Engine, topic: str, metric_names: list[str]) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM stream_partials WHERE topic = :t"), {"t": topic})
        conn.execute(sa.text("DELETE FROM stream_checkpoints WHERE topic = :t"), {"t": topic})
        conn.execute(sa.text("DELETE FROM metric_values WHERE stage = 'streaming' AND "
                             "(metric = ANY(:m) OR metric = 'events.dead_letters')"),
                     {"m": metric_names})


def absorbed(conn: sa.Connection, topic: str) -> tuple[int, int]:
    row = conn.execute(sa.text("SELECT coalesce(sum(events), 0), count(*) FROM "
                               "stream_checkpoints WHERE topic = :t"), {"t": topic}).one()
    return int(row[0]), int(row[1])


def dead_letters(conn: sa.Connection) -> int:
    return int(conn.execute(sa.text(
        "SELECT coalesce(sum(count), 0) FROM metric_values WHERE metric = "
        "'events.dead_letters' AND segment = '*'")).scalar_one())


# -- processes ------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time the process and its children have used (threads included)."""
    used = [cpu for cpu in cpu_by_process(pid) if cpu is not None]
    return sum(used) if used else None


def cpu_by_process(pid: int) -> list[float | None]:
    """User + system CPU time of the process and of each child (the worker's: the Faust
    process's, the processor's), threads included."""
    times: list[float | None] = []
    for member in family(pid):
        try:
            with open(f"/proc/{member}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            times.append(None)
            continue
        times.append((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    return times


def stop(process: subprocess.Popen[bytes], timeout: float = 8.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def start_worker(url: str, bootstrap: str, app: str, topic: str, group: str, log: Path,
                 idle_timeout: float = 10.0) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [MONITOR, "--app", app, "stream", "worker", "--database-url", url,
         "--bootstrap", bootstrap, "--group", group, "--topic", f"{STREAM}={topic}",
         "--idle-timeout", str(idle_timeout), "--loglevel", "warn"],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def run_ours(url: str, engine: sa.Engine, bootstrap: str, topic: str, events: int,
             logs: Path, label: str, timeout: float, profile_with: str | None = None,
             warmup: int = 0) -> dict[str, Any]:
    """Our worker over the whole topic: rate from the stored checkpoints once they hold
    ``warmup`` events, RSS marks."""
    names = list(throughput.metrics)
    clear(engine, topic, names)
    group = f"bench-ours-{label}-{secrets.token_hex(3)}"
    log = logs / f"worker-{label}.log"
    started = time.time()
    worker = start_worker(url, bootstrap, "bench.stream_app:throughput", topic, group, log)
    first: tuple[float, int] | None = None
    warm: tuple[float, int] | None = None  # the clock starts here (see the docstring)
    last: tuple[float, int] = (started, 0)
    cpu_first = cpu_last = None
    # each process's too: the busiest bounds the rate on an idle machine, whatever the load
    by_process_first: list[float | None] = []
    by_process_last: list[float | None] = []
    rss: dict[str, float | None] = {}  # VmRSS of the worker's processes, summed
    distinct: dict[str, float | None] = {}  # their resident pages, each counted once
    pss: dict[str, float | None] = {}  # their proportional set sizes, summed
    by_process: dict[str, list[float | None]] = {}  # VmRSS of each: Faust's, processor's
    pss_by_process: dict[str, list[float | None]] = {}  # and PSS of each
    marks = [m for m in RSS_MARKS if m <= events]
    marks += list(range(RSS_MARKS[-1] + 5_000_000, events + 1, 5_000_000))
    profiler = None
    try:
        with engine.connect() as conn:
            deadline = started + timeout  # ...unless it is still progressing, see below
            while True:
                total, _ = absorbed(conn, topic)
                conn.commit()
                now = time.time()
                if total > last[1]:
                    last = (now, total)
                    deadline = max(deadline, now + STALL_S)  # progressing: keep going
                    cpu_last = cpu_seconds(worker.pid)
                    by_process_last = cpu_by_process(worker.pid)
                    if warm is None and total >= warmup:
                        warm = (now, total)
                        cpu_first = cpu_last
                        by_process_first = by_process_last
                    if first is None:
                        first = (now, total)
                        if profile_with:
                            profiler = subprocess.Popen(
                                [profile_with, "record", "-p", str(worker.pid), "-r", "50",
                                 "--subprocesses", "-f", "raw",
                                 "-o", str(logs / f"py-spy-{label}.txt"),
                                 "--nonblocking"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
                    while marks and total >= marks[0]:
                        mark = f"{marks.pop(0) // 1_000_000}M"
                        rss[mark] = rss_mb(worker.pid)
                        distinct[mark] = distinct_mb(worker.pid)
                        pss[mark] = pss_mb(worker.pid)
                        by_process[mark] = [status_mb(p) for p in family(worker.pid)]
                        pss_by_process[mark] = [own_pss_mb(p) for p in family(worker.pid)]
                if total >= events or now > deadline or worker.poll() is not None:
                    break
                time.sleep(0.05)
        peak = rss_mb(worker.pid, "VmHWM")
        with engine.connect() as conn:
            letters = dead_letters(conn)
    finally:
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            try:
                profiler.wait(10)
            except subprocess.TimeoutExpired:
                profiler.kill()
        stop(worker)
    if last[1] < events:
        raise RuntimeError(f"our worker ({label}) absorbed {last[1]:,} of {events:,} events "
                           f"(exit code {worker.returncode}); see {log}")
    assert first is not None and warm is not None
    seconds = last[0] - warm[0]
    rate = (last[1] - warm[1]) / seconds if seconds > 0 else float("nan")
    busy = (cpu_last - cpu_first) / seconds if seconds > 0 and cpu_first is not None \
        and cpu_last is not None else None
    cpu = cpu_last - cpu_first if cpu_first is not None and cpu_last is not None else None
    process_cpu = [b - a if a is not None and b is not None else None
                   for a, b in zip(by_process_first, by_process_last, strict=False)]
    busiest = max((c for c in process_cpu if c is not None), default=None)
    return {"events": last[1], "seconds": seconds, "events_per_second": rate,
            "worker_cpu_share": busy,  # CPU seconds per second: 1.0 = one core busy
            "cpu_seconds": cpu,  # of the worker's processes over the timed window
            "events_per_cpu_second": (last[1] - warm[1]) / cpu if cpu else None,
            "process_cpu_seconds": process_cpu,  # the Faust process's, the processor's
            # the rate the busiest process allows: the worker's on an idle machine
            "events_per_busiest_cpu_second": (last[1] - warm[1]) / busiest if busiest
            else None,
            "startup_seconds": first[0] - started, "first_checkpoint_events": first[1],
            "warm_events": warm[1], "warm_after_seconds": warm[0] - started,
            "dead_letters": letters, "rss_mb": rss, "distinct_mb": distinct, "pss_mb": pss,
            "process_rss_mb": by_process, "process_pss_mb": pss_by_process,
            "peak_rss_mb": peak}


def run_bare(bootstrap: str, topic: str, events: int, logs: Path, label: str,
             timeout: float, warmup: int = 0) -> dict[str, Any]:
    out = logs / f"bare-{label}.json"
    group = f"bench-bare-{label}-{secrets.token_hex(3)}"
    log = logs / f"bare-{label}.log"
    started = time.time()
    agent = subprocess.Popen(
        [PYTHON, str(ROOT / "bench" / "bare_faust_agent.py"), "--bootstrap", bootstrap,
         "--topic", topic, "--group", group, "--expect", str(events), "--out", str(out),
         "--warmup", str(warmup)],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    try:
        agent.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    finally:
        stop(agent)
    if not out.exists():
        raise RuntimeError(f"the bare agent ({label}) did not count {events:,} events within "
                           f"{timeout:g} s; see {log}")
    result: dict[str, Any] = json.loads(out.read_text())
    result["startup_seconds"] = result["first_at"] - started
    result["warm_after_seconds"] = result["warm_at"] - started
    return result


# -- live traffic ---------------------------------------------------------------------------


class LiveTraffic(threading.Thread):
    """Events with ts = now at ``rate`` per second through the Emitter, keyed by user."""

    def __init__(self, bootstrap: str, topic: str, rate: float, bodies: list[bytes]) -> None:
        super().__init__(daemon=True)
        from streaming.emitter import Emitter

        self.emitter = Emitter(bootstrap, topic, key_field="user_id", linger_ms=50)
        self.rate = rate
        self.events = [json.loads(b'{"ts":0,' + body) for body in bodies]
        self.halt = threading.Event()
        self.emitted = 0

    def run(self) -> None:
        began = time.monotonic()
        pool = len(self.events)
        while not self.halt.is_set():
            due = int((time.monotonic() - began) * self.rate)
            now_ms = int(time.time() * 1000)
            while self.emitted < due:
                event = dict(self.events[self.emitted % pool])
                event["ts"] = now_ms
                self.emitter.emit(event)
                self.emitted += 1
            time.sleep(0.005)

    def close(self) -> dict[str, Any]:
        self.halt.set()
        self.join()
        self.emitter.close()
        stats = self.emitter.stats()
        return {"emitted": stats.emitted, "sent": stats.sent, "failed": stats.failed,
                "messages": stats.messages}


def run_live(url: str, engine: sa.Engine, bootstrap: str, seconds: float, rate: float,
             logs: Path, bodies: list[bytes]) -> dict[str, Any]:
    topic = live.streams[STREAM].topic
    assert topic is not None
    names = list(live.metrics)
    metric = live.metrics[names[0]]
    width_s = metric.windows.width_ns / 1e9
    lateness_s = metric.lateness_ns / 1e9
    clear(engine, topic, names)
    worker = start_worker(url, bootstrap, "bench.stream_app:live", topic,
                          f"bench-live-{secrets.token_hex(3)}", logs / "worker-live.log")
    traffic = LiveTraffic(bootstrap, topic, rate, bodies)
    traffic.start()
    try:
        with engine.connect() as conn:  # wait until the worker consumes every partition
            deadline = time.time() + 180  # generous: Faust starts slowly on a busy machine
            while absorbed(conn, topic)[1] < PARTITIONS:
                conn.commit()
                if time.time() > deadline or worker.poll() is not None:
                    raise RuntimeError("the live worker did not start consuming; see "
                                       f"{logs / 'worker-live.log'}")
                time.sleep(0.1)
        time.sleep(2 * width_s)  # past the backlog of the join
        begin = (time.time() // width_s + 1) * width_s
        end = begin + seconds
        say(f"  live: measuring windows from {time.strftime('%H:%M:%S', time.gmtime(begin))} "
            f"for {seconds:g} s at {rate:,.0f} events/s")
        time.sleep(max(0.0, begin - time.time()))
        rss_start, cpu_start = rss_mb(worker.pid), cpu_seconds(worker.pid)
        time.sleep(max(0.0, end - time.time()))
        rss_end, cpu_end = rss_mb(worker.pid), cpu_seconds(worker.pid)
        time.sleep(width_s + lateness_s + 3)  # the last windows close
    finally:
        sent = traffic.close()
        stop(worker)
    begin_dt = datetime.fromtimestamp(begin, tz=UTC)
    end_dt = datetime.fromtimestamp(end, tz=UTC)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT window_start, max(computed_at) - window_end AS delay, count(DISTINCT "
            "metric) AS metrics, max(count) FILTER (WHERE segment = '*' AND metric = :m) "
            "AS events FROM metric_values WHERE stage = 'streaming' AND metric = ANY(:names) "
            "AND window_start >= :begin AND window_end <= :end "
            "GROUP BY window_start, window_end ORDER BY window_start"),
            {"names": names, "m": "live_events", "begin": begin_dt, "end": end_dt}).all()
    delays = [row.delay.total_seconds() - lateness_s for row in rows]
    expected = int(seconds // width_s)
    if not delays:
        raise RuntimeError("no live window was stored; see " + str(logs / "worker-live.log"))
    ordered = sorted(delays)
    return {
        "window_seconds": width_s, "lateness_seconds": lateness_s,
        "traffic_events_per_second": rate, "measured_seconds": seconds,
        "windows": len(delays), "windows_expected": expected,
        "windows_with_all_metrics": sum(1 for row in rows if row.metrics == len(names)),
        "events_per_window_mean": statistics.fmean(int(row.events or 0) for row in rows),
        "delay_p50_s": percentile(ordered, 0.5), "delay_p99_s": percentile(ordered, 0.99),
        "delay_max_s": ordered[-1], "delay_min_s": ordered[0],
        "worker_rss_mb_start": rss_start, "worker_rss_mb_end": rss_end,
        "worker_cpu_share": (cpu_end - cpu_start) / seconds
        if cpu_start is not None and cpu_end is not None else None,
        "emitter": sent,
    }


def percentile(ordered: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    return float(np.percentile(ordered, p * 100))


# -- main -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 20k single-event messages, 1M batched events, "
                             "1 round, 20 s of live traffic")
    parser.add_argument("--single-messages", type=int, default=100_000)
    parser.add_argument("--batched-events", type=int, default=10_000_000,
                        help="events in the batched topic (%(default)s; memory is read at "
                             "1M, 2M, 5M and 10M)")
    parser.add_argument("--repeat-batched-events", type=int, default=2_000_000,
                        help="rounds after the first measure only the topic's first "
                             "%(default)s batched events (both bare and ours)")
    parser.add_argument("--batch-size", type=int, default=BATCH_EVENTS,
                        help="events per batched message")
    parser.add_argument("--warmup-share", type=float, default=0.2,
                        help="share of each run's events counted before its clock starts, "
                             "bare and ours alike (%(default)s)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="repeats of bare and ours, alternating which goes first")
    parser.add_argument("--live-seconds", type=float, default=120.0)
    parser.add_argument("--live-rate", type=float, default=3000.0, help="events/s")
    parser.add_argument("--skip-live", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true",
                        help="only the window-close delay (for trying it alone)")
    parser.add_argument("--py-spy", metavar="PATH",
                        help="py-spy binary: record our worker in the first round"
                             "(raw folded stacks in the log directory)")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.single_messages = 20_000
        args.batched_events = 1_000_000
        args.rounds = 1
        args.live_seconds = 20.0

    logs = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    with throwaway_database("bench_stream") as url, EmbeddedBroker() as broker:
        result = run(url, broker.bootstrap, args, logs)
    say(f"logs in {logs}")
    print(json.dumps(_no_nan(result)))


def _no_nan(value: Any) -> Any:
    """NaN (a figure not measured in this run) as null, so the line is strict JSON."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return value


def run(url: str, bootstrap: str, args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    began = time.time()
    upgrade(url)
    promote_all(url)
    engine = sa.create_engine(url)
    base = f"bench-{secrets.token_hex(3)}"
    single_topic, batched_topic = f"{base}-single", f"{base}-batched"
    live_topic = live.streams[STREAM].topic
    assert live_topic is not None
    create_topics(bootstrap, {single_topic: PARTITIONS, batched_topic: PARTITIONS,
                              live_topic: PARTITIONS,
                              f"{single_topic}.dead-letters": PARTITIONS,
                              f"{batched_topic}.dead-letters": PARTITIONS,
                              f"{live_topic}.dead-letters": PARTITIONS})
    bodies = event_bodies(4096, seed=1)
    # Event time: from two hours ago, over 10 minutes (single) or 40 minutes (batched),
    # so the one-minute windows close as the worker goes.
    start_ms = (int(time.time()) // 3600 - 2) * 3600 * 1000
    if args.skip_throughput:
        args.single_messages = args.batched_events = 0
    t = time.time()
    sent = prefill(bootstrap, single_topic,
                   messages(args.single_messages, 1, start_ms, 600_000, bodies))
    say(f"pre-filled {single_topic}: {sent[0]:,} single-event messages, {sent[1] / 1e6:.0f} MB "
        f"in {time.time() - t:.1f} s")
    t = time.time()
    sent_batched = prefill(bootstrap, batched_topic,
                           messages(args.batched_events, args.batch_size, start_ms, 2_400_000,
                                    bodies))
    say(f"pre-filled {batched_topic}: {args.batched_events:,} events in {sent_batched[0]:,} "
        f"messages, {sent_batched[1] / 1e6:.0f} MB in {time.time() - t:.1f} s")

    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in
                                             ("single_bare", "single_ours", "batched_bare",
                                              "batched_ours")}
    # Generous: the machine is shared. Our worker may go on past these while it progresses.
    single_timeout = 120 + args.single_messages / 250
    batched_timeout = 120 + args.batched_events / 10_000
    for round_ in range(0 if args.skip_throughput else args.rounds):
        order = ["bare", "ours"] if round_ % 2 == 0 else ["ours", "bare"]
        repeat = min(args.batched_events, args.repeat_batched_events)
        for shape, topic, events, timeout in (
                ("single", single_topic, args.single_messages, single_timeout),
                ("batched", batched_topic, args.batched_events if round_ == 0 else repeat,
                 batched_timeout)):
            warmup = int(events * args.warmup_share)
            for who in order:
                label = f"{shape}-{who}-{round_ + 1}"
                if who == "bare":
                    figures = run_bare(bootstrap, topic, events, logs, label, timeout, warmup)
                else:
                    profile = args.py_spy if round_ == 0 else None
                    figures = run_ours(url, engine, bootstrap, topic, events, logs, label,
                                       timeout, profile, warmup)
                runs[f"{shape}_{who}"].append(figures)
                extra = (f", RSS {figures['rss_mb']}" if figures.get("rss_mb") else "")
                say(f"  {label:18} {figures['events_per_second']:>10,.0f} events/s over "
                    f"{figures['seconds']:.1f} s from {warmup:,} events (started after "
                    f"{figures['startup_seconds']:.1f} s){extra}")

    live_figures = None
    if not args.skip_live:
        live_figures = run_live(url, engine, bootstrap, args.live_seconds, args.live_rate,
                                logs, bodies)
        say(f"  live: {live_figures['windows']} windows, delay p50 "
            f"{live_figures['delay_p50_s']:.3f} s, p99 {live_figures['delay_p99_s']:.3f} s, "
            f"max {live_figures['delay_max_s']:.3f} s")
    engine.dispose()

    def best(key: str) -> float:
        return max((r["events_per_second"] for r in runs[key]), default=float("nan"))

    def median(key: str) -> float:
        rates = [r["events_per_second"] for r in runs[key]]
        return statistics.median(rates) if rates else float("nan")

    def best_per_cpu(key: str) -> float:
        return max((r["events_per_cpu_second"] for r in runs[key]
                    if r.get("events_per_cpu_second")), default=float("nan"))

    single_ratio = best("single_ours") / best("single_bare")
    batched_ratio = best("batched_ours") / best("batched_bare")
    batched_cpu_ratio = best_per_cpu("batched_ours") / best_per_cpu("batched_bare")
    busiest = max((r["events_per_busiest_cpu_second"] for r in runs["batched_ours"]
                   if r.get("events_per_busiest_cpu_second")), default=float("nan"))
    # the bare agent is one process: its rate per CPU second is its idle-machine rate
    batched_busiest_ratio = busiest / best_per_cpu("batched_bare")
    rss: dict[str, list[float | None]] = {}
    for figures in runs["batched_ours"]:
        for mark, value in figures["rss_mb"].items():
            rss.setdefault(mark, []).append(value)
    memory = memory_ratios(runs["batched_ours"][:1], runs["batched_bare"][:1])
    rss_first = [v for v in rss.get("1M", []) if v is not None]
    rss_last_key = max(rss, key=lambda k: int(k[:-1])) if rss else None
    rss_last = [v for v in rss.get(rss_last_key, []) if v is not None] if rss_last_key else []
    growth = (max(rss_last) - min(rss_first)) if rss_first and rss_last else None
    result: dict[str, Any] = {
        "benchmark": "streaming_stage",
        "metrics": len(throughput.metrics), "segments_per_metric": len(COUNTRIES),
        "partitions": PARTITIONS, "cpus": os.cpu_count(),
        "single_messages": args.single_messages, "batched_events": args.batched_events,
        "batch_size": args.batch_size, "batched_messages": sent_batched[0],
        "warmup_share": args.warmup_share,
        "batched_bytes": sent_batched[1], "rounds": args.rounds,
        "single_bare_events_per_second": best("single_bare"),
        "single_ours_events_per_second": best("single_ours"),
        "single_ratio": single_ratio,
        "single_ratio_of_medians": median("single_ours") / median("single_bare"),
        "batched_bare_events_per_second": best("batched_bare"),
        "batched_ours_events_per_second": best("batched_ours"),
        "batched_ratio": batched_ratio,
        "batched_ours_median_events_per_second": median("batched_ours"),
        "batched_bare_events_per_cpu_second": best_per_cpu("batched_bare"),
        "batched_ours_events_per_cpu_second": best_per_cpu("batched_ours"),
        "batched_cpu_ratio": batched_cpu_ratio,
        "batched_ours_events_per_busiest_cpu_second": busiest,
        "batched_busiest_cpu_ratio": batched_busiest_ratio,
        "worker_rss_mb": rss, "worker_rss_growth_mb_1m_to_last": growth,
        "memory_ratio": memory["rss"], "memory_ratio_distinct_pages": memory["distinct"],
        "memory_ratio_pss": memory["pss"],
        "memory_ratio_by_mark": memory["by_mark"],
        "worker_peak_rss_mb": [r["peak_rss_mb"] for r in runs["batched_ours"]],
        "bare_agent_rss_mb": [r.get("rss_mb") for r in runs["batched_bare"]],
        "bare_agent_distinct_mb": [r.get("distinct_mb") for r in runs["batched_bare"]],
        "worker_distinct_mb": [r["distinct_mb"] for r in runs["batched_ours"]],
        "bare_agent_pss_mb": [r.get("pss_mb") for r in runs["batched_bare"]],
        "worker_pss_mb": [r["pss_mb"] for r in runs["batched_ours"]],
        "worker_process_rss_mb": [r["process_rss_mb"] for r in runs["batched_ours"]],
        "worker_process_pss_mb": [r["process_pss_mb"] for r in runs["batched_ours"]],
        "bare_agent_peak_rss_mb": [r.get("peak_rss_mb") for r in runs["batched_bare"]],
        "dead_letters": sum(r["dead_letters"] for r in runs["single_ours"] +
                            runs["batched_ours"]),
        "live": live_figures,
        "targets": TARGETS,
        "met": {
            "single_ratio": single_ratio >= TARGETS["single_ratio"],
            "batched_events_per_second":
                best("batched_ours") >= TARGETS["batched_events_per_second"],
            "batched_ratio": batched_ratio >= TARGETS["batched_ratio"],
            "memory_ratio": memory["rss"] <= TARGETS["memory_ratio"],
            "memory_ratio_distinct_pages": memory["distinct"] <= TARGETS["memory_ratio"],
            "memory_ratio_pss": memory["pss"] <= TARGETS["memory_ratio"],
            "delay_p99_s": live_figures is not None
                and live_figures["delay_p99_s"] <= TARGETS["delay_p99_s"],
        },
        "runs": runs,
        "total_seconds": time.time() - began,
    }
    say(f"single-event: ours {best('single_ours'):,.0f} vs bare {best('single_bare'):,.0f} "
        f"events/s = {single_ratio:.2f}x (target >= {TARGETS['single_ratio']}x)")
    say(f"batched:      ours {best('batched_ours'):,.0f} vs bare "
        f"{best('batched_bare'):,.0f} events/s = {batched_ratio:.2f}x (target ours >= "
        f"{TARGETS['batched_events_per_second']:,} events/s)")
    say(f"worker RSS (MB) at absorbed events: {rss}")
    say(f"memory:       ours / bare at the same events = {memory['rss']:.2f}x by VmRSS "
        f"summed, {memory['distinct']:.2f}x by resident pages counted once, "
        f"{memory['pss']:.2f}x by PSS summed (target <= {TARGETS['memory_ratio']}x; per "
        f"mark {memory['by_mark']})")
    say(f"batched:      {batched_ratio:.2f}x the bare agent (target >= "
        f"{TARGETS['batched_ratio']}x); per CPU second of the worker's processes against "
        f"the agent's: ours {best_per_cpu('batched_ours'):,.0f} vs bare "
        f"{best_per_cpu('batched_bare'):,.0f} events = {batched_cpu_ratio:.2f}x; per CPU "
        f"second of its busiest process (the rate on an idle machine): {busiest:,.0f} = "
        f"{batched_busiest_ratio:.2f}x")
    if live_figures is not None:
        say(f"close delay:  p99 {live_figures['delay_p99_s']:.3f} s (target <= "
            f"{TARGETS['delay_p99_s']} s)")
    return result


def memory_ratios(ours: list[dict[str, Any]], bare: list[dict[str, Any]]) -> dict[str, Any]:
    """Our worker's memory over the bare agent's at the same absorbed events (the runs
    that read the whole batched topic): the largest ratio over the marks both passed, by
    VmRSS summed over the worker's processes and by resident pages counted once (see
    bench/memory.py)."""
    by_mark: dict[str, dict[str, float | None]] = {}
    for our, their in zip(ours, bare, strict=False):
        for kind, key in (("rss", "rss_mb"), ("distinct", "distinct_mb"), ("pss", "pss_mb")):
            for mark, value in our.get(key, {}).items():
                base = their.get(key, {}).get(mark)
                if value is not None and base:
                    by_mark.setdefault(mark, {})[kind] = value / base
    def largest(kind: str) -> float:
        return max((ratio for r in by_mark.values() if (ratio := r.get(kind)) is not None),
                   default=float("nan"))

    return {"rss": largest("rss"), "distinct": largest("distinct"), "pss": largest("pss"),
            "by_mark": by_mark}


if __name__ == "__main__":
    main()
