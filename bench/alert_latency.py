"""Delay from a streaming window's close to the Slack webhook receiving its alert.

    .venv/bin/python bench/alert_latency.py             # about 3 minutes
    .venv/bin/python bench/alert_latency.py --quick     # about 1 minute

Live traffic (ts = now, keyed over 4 partitions) into the embedded broker; one metric,
the mean of a 0/1 field over 5 s windows with no lateness, and a threshold rule at 0.5.
The traffic sends 1s in even windows and 0s in odd ones, so every window close is a
transition (firing, then resolved, then firing ...) and a notification. A real worker
stores the windows and evaluates the rule in the same transaction; a real dispatcher
(`monitor alerts dispatch`, group wait 0, polling every 0.2 s) posts to a local HTTP
receiver standing in for Slack's incoming webhook. Per notification: delay = the moment
the receiver got it - the window's end. Results in a throwaway Postgres database.

Target (issue 5): p99 <= 3 s. The last line on stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.postgres import throwaway_database  # noqa: E402
from bench.stream import percentile, say, start_worker, stop  # noqa: E402
from monitor import Monitor, Threshold  # noqa: E402
from monitor.stage_switch import EPOCH  # noqa: E402
from monitor.storage.migrate import upgrade  # noqa: E402
from monitor.storage.store import SqlStore  # noqa: E402
from streaming.broker import EmbeddedBroker, create_topics  # noqa: E402
from streaming.emitter import Emitter  # noqa: E402

MONITOR = str(Path(sys.executable).with_name("monitor"))
WINDOW_S = 5
TOPIC = "bench-alerts"

app = Monitor("bench-alerts")
app.stream("events", topic=TOPIC, time="ts", schema={"flag": "float"})
app.metric("flag_mean", "events", __import__("metrics").mean("flag"), window=f"{WINDOW_S}s",
           alerts=[Threshold("mean", above=0.5, for_windows=1, name="flag mean above 0.5")],
           owner="bench")


class Receiver(BaseHTTPRequestHandler):
    """Slack's incoming webhook, as far as the dispatcher can tell."""

    arrivals: ClassVar[list[tuple[str, float]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.arrivals.append((self.headers.get("Idempotency-Key", ""), time.time()))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_: Any) -> None:
        pass


def traffic(bootstrap: str, rate: float, until: float, stop_flag: threading.Event) -> int:
    """Events at ``rate``/s with ts = now: flag 1 in even windows, 0 in odd ones."""
    sent = 0
    rng = random.Random(1)
    with Emitter(bootstrap, TOPIC, key_field="user", max_batch_events=200,
                 linger_ms=50) as emitter:
        start = time.time()
        while time.time() < until and not stop_flag.is_set():
            now = time.time()
            due = int((now - start) * rate) - sent
            for _ in range(max(due, 0)):
                window = int(now // WINDOW_S)
                emitter.emit({"ts": int(now * 1000), "flag": float(window % 2 == 0),
                              "user": rng.randrange(10_000)})
                sent += 1
            time.sleep(0.01)
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=150.0, help="of measured traffic")
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s")
    parser.add_argument("--quick", action="store_true", help="40 s of traffic")
    args = parser.parse_args()
    if args.quick:
        args.seconds = 40.0
    logs = Path(tempfile.mkdtemp(prefix="bench-alerts-"))
    with throwaway_database("bench_alerts") as url, EmbeddedBroker() as broker:
        result = run(url, broker.bootstrap, args, logs)
    say(f"logs in {logs}")
    print(json.dumps(result))


def run(url: str, bootstrap: str, args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    upgrade(url)
    with SqlStore.open(url) as store:
        for spec in app.metrics.values():
            version = store.register_metric(spec).version
            for stage in ("batch", "streaming"):
                store.record_stage_change(spec.name, version, stage, by="bench",
                                          reason="alert latency bench",
                                          effective_from=EPOCH)
    create_topics(bootstrap, {TOPIC: 4})
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{server.server_address[1]}/services/T0/B0/secret"
    env = {**os.environ, "MONITOR_SLACK_WEBHOOK_URL": hook, "PYTHONPATH": str(ROOT)}
    worker = start_worker(url, bootstrap, "bench.alert_latency:app", TOPIC,
                          f"bench-alerts-{secrets.token_hex(3)}", logs / "worker.log")
    dispatcher = subprocess.Popen(
        [MONITOR, "--app", "bench.alert_latency:app", "alerts", "dispatch", "--database-url",
         url, "--poll", "0.2", "--group-wait", "0s"], cwd=ROOT, env=env,
        stdout=(logs / "dispatcher.log").open("ab"), stderr=subprocess.STDOUT)
    stop_flag = threading.Event()
    warmup = 20.0  # the worker joins its group and catches up
    until = time.time() + warmup + args.seconds
    sent: list[int] = []
    producer = threading.Thread(
        target=lambda: sent.append(traffic(bootstrap, args.rate, until, stop_flag)))
    say(f"live traffic for {warmup + args.seconds:g} s at {args.rate:,.0f} events/s "
        f"({warmup:g} s warm-up), {WINDOW_S} s windows")
    producer.start()
    measure_from = time.time() + warmup
    try:
        producer.join()
        time.sleep(WINDOW_S + 5)  # the last window closes and its alert goes out
    finally:
        stop_flag.set()
        stop(worker)
        stop(dispatcher)
        server.shutdown()
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT d.message_key, n.window_end, n.kind, n.created_at FROM alert_deliveries d "
            "JOIN alert_notifications n ON n.id = d.notification_id "
            "WHERE d.channel = 'slack' AND n.stage = 'streaming'")).all()
    engine.dispose()
    ends = {row.message_key: (row.window_end, row.kind, row.created_at) for row in rows}
    delays, stored = [], []
    for key, arrived in Receiver.arrivals:
        if key in ends and ends[key][0].timestamp() >= measure_from:
            delays.append(arrived - ends[key][0].timestamp())
            stored.append(ends[key][2].timestamp() - ends[key][0].timestamp())
    if not delays:
        raise RuntimeError(f"no notification arrived in the measured part; see {logs}")
    ordered = sorted(delays)
    expected = int(args.seconds // WINDOW_S)
    result = {
        "window_seconds": WINDOW_S, "measured_seconds": args.seconds,
        "events_per_second": args.rate, "events_sent": sent[0] if sent else 0,
        "notifications": len(delays), "windows_in_measure": expected,
        "kinds": sorted({kind for _, kind, _ in ends.values()}),
        "delay_p50_s": round(percentile(ordered, 0.5), 3),
        "delay_p99_s": round(percentile(ordered, 0.99), 3),
        "delay_max_s": round(ordered[-1], 3), "delay_min_s": round(ordered[0], 3),
        # the part spent before the alert was stored (worker), the rest is the dispatcher
        "close_to_stored_p50_s": round(percentile(sorted(stored), 0.5), 3),
        "close_to_stored_max_s": round(max(stored), 3),
        "target_p99_s": 3.0, "measured_at": datetime.now(UTC).isoformat(),
    }
    say(f"{len(delays)} notifications: window close -> webhook p50 "
        f"{result['delay_p50_s']} s, p99 {result['delay_p99_s']} s")
    return result


if __name__ == "__main__":
    main()
