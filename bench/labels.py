"""The streaming label join: events/s of one worker's processor, and the rows it holds.

    .venv/bin/python bench/labels.py                               # 1M + 1M, several minutes
    .venv/bin/python bench/labels.py --predictions 200000 --hours 12   # a quicker run

Drives ``streaming.label_processor.LabelJoinProcessor`` (what the worker's processor
process runs for a metric joined to labels: decode, validate, hold with the offsets,
close, revise, forget) against a throwaway Postgres database (127.0.0.1:5432, or
$MONITOR_BENCH_POSTGRES_URL's server), without Kafka: bench/stream.py measures what Faust
adds per message. Seeded data: ``--predictions`` over ``--hours`` of event time (4
partitions, keyed by id), and as many labels (4 other partitions): 90% of predictions
get a label stamped uniformly within ``--horizon`` after them, 5% of those a second one
(a duplicate: the earliest wins), and 5% of the labels are for unknown ids. Events reach
the processor in arrival order — a prediction at its time, a label up to 10 minutes after
its own — in messages of ``--events-per-message``; each topic's micro-batch takes the
messages of one stretch of arrivals, up to ``--batch-messages`` of either topic (as each
topic's agent takes what has arrived); a tick after each. The metric is a binned AUC
per device, 1-hour windows, 30 minutes' lateness.

Reported: events/s (predictions and labels absorbed over the time spent in handle and
tick), windows closed and revisions, and the rows held (predictions and labels) sampled
over event time: bounded by the horizon, they stop growing once the first windows are
forgotten; ``held_bound`` is the predictions of ``horizon + window + lateness + 1 h`` of
event time (what may be held at once) and the labels of the same span plus the horizon.
Progress goes to stderr; the last line on stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import metrics  # noqa: E402
from bench.postgres import throwaway_database  # noqa: E402
from monitor import Labels, Monitor  # noqa: E402
from monitor.stage_switch import EPOCH  # noqa: E402
from monitor.storage.migrate import upgrade  # noqa: E402
from monitor.storage.store import SqlStore  # noqa: E402
from monitor.targets import batch_targets  # noqa: E402
from monitor.windows import parse_duration_ns  # noqa: E402
from streaming.label_processor import LABELS, PREDICTIONS, LabelJoinProcessor  # noqa: E402
from streaming.label_store import SqlHeldStore, held_counts  # noqa: E402
from streaming.messages import RawMessage  # noqa: E402
from streaming.processor import StreamSettings  # noqa: E402

START = pd.Timestamp("2026-03-02T00:00:00Z")
PARTITIONS = 4
LATENESS = "30m"


def app(horizon: str) -> Monitor:
    mon = Monitor("bench-labels")
    mon.stream("home", topic="bench-predictions", schema={
        "prediction_id": "str", "score": "float", "predicted": "bool", "device": "str"})
    mon.stream("outcomes", topic="bench-outcomes",
               schema={"prediction_id": "str", "clicked": "bool"})
    mon.metric("click_auc", "home", metrics.auc("clicked", "score"), window="1h",
               segment_by=["device"], lateness=LATENESS,
               labels=Labels("outcomes", on="prediction_id", horizon=horizon, early="10m"))
    return mon


def generate(args: argparse.Namespace) -> list[tuple[str, list[RawMessage]]]:
    """The micro-batches, in arrival order (see the module)."""
    rng = np.random.default_rng(args.seed)
    n = args.predictions
    span_ms = int(args.hours * 3_600_000)
    horizon_ms = parse_duration_ns(args.horizon) // 1_000_000
    start_ms = START.value // 1_000_000
    p_ts = start_ms + np.sort(rng.integers(0, span_ms, n))
    score = rng.random(n)
    device = rng.choice(np.array(["ios", "web"]), n)
    predictions = [
        f'{{"ts":{t},"prediction_id":"p{i}","score":{s!r},"predicted":{str(s > 0.5).lower()},'
        f'"device":"{d}"}}'
        for i, (t, s, d) in enumerate(zip(p_ts.tolist(), score.tolist(), device.tolist(),
                                          strict=True))]
    labelled = rng.choice(n, int(n * 0.9), replace=False)
    twice = labelled[rng.random(len(labelled)) < 0.05]
    unknown = n - len(labelled) - len(twice)
    of = np.concatenate((labelled, twice))
    l_ts = p_ts[of] + rng.integers(0, horizon_ms + 1, len(of))
    clicked = rng.random(len(of)) < score[of]
    label_ids = [f"p{i}" for i in of.tolist()] + [f"x{j}" for j in range(unknown)]
    l_ts = np.concatenate((l_ts, start_ms + rng.integers(0, span_ms + horizon_ms, unknown)))
    clicked = np.concatenate((clicked, rng.random(unknown) < 0.5))
    labels = [f'{{"ts":{t},"prediction_id":"{i}","clicked":{str(c).lower()}}}'
              for t, i, c in zip(l_ts.tolist(), label_ids, clicked.tolist(), strict=True)]
    arrival = np.concatenate((p_ts, l_ts + rng.integers(0, 600_000, len(l_ts))))
    side = np.concatenate((np.zeros(n, dtype=np.int8), np.ones(len(labels), dtype=np.int8)))
    partition = np.concatenate((np.arange(n) % PARTITIONS,
                                rng.integers(0, PARTITIONS, len(labels))))
    bodies = predictions + labels
    order = np.lexsort((side, arrival))
    # messages: per (side, partition), consecutive events in arrival order
    messages: list[tuple[int, int, RawMessage]] = []  # (first arrival rank, side, message)
    pending: dict[tuple[int, int], list[int]] = {}
    offsets: dict[tuple[int, int], int] = {}

    def flush(key: tuple[int, int]) -> None:
        rows = pending.pop(key)
        offset = offsets.get(key, 0)
        offsets[key] = offset + 1
        value = ("[" + ",".join(bodies[r] for r in rows) + "]").encode()
        messages.append((rows[0], key[0], RawMessage(key[1], offset, value)))

    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    for row in order.tolist():
        key = (int(side[row]), int(partition[row]))
        pending.setdefault(key, []).append(row)
        if len(pending[key]) >= args.events_per_message:
            flush(key)
    for key in sorted(pending):
        flush(key)
    messages.sort(key=lambda item: rank[item[0]])
    # Each topic's agent takes what arrived, up to batch_messages: the messages of a
    # stretch of arrivals, a micro-batch of predictions and one of labels.
    batches: list[tuple[str, list[RawMessage]]] = []
    taken: dict[str, list[RawMessage]] = {PREDICTIONS: [], LABELS: []}

    def take() -> None:
        for name in (PREDICTIONS, LABELS):
            if taken[name]:
                batches.append((name, taken[name]))
                taken[name] = []

    for _, side_code, message in messages:
        name = LABELS if side_code else PREDICTIONS
        taken[name].append(message)
        if len(taken[name]) >= args.batch_messages:
            take()
    take()
    return batches


class FrozenClock:
    """Monotonic time that stands still until the end, so no partition is judged idle
    (its mark would jump to the wall clock, months past these events)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    upgrade(url)
    mon = app(args.horizon)
    with SqlStore.open(url) as store:
        for spec in mon.metrics.values():
            definition = store.register_metric(spec)
            for to_stage in ("batch", "streaming"):
                store.record_stage_change(spec.name, definition.version, to_stage, by="bench",
                                          reason="bench/labels.py", effective_from=EPOCH)
        targets = batch_targets(mon, store, stages=("streaming",))
        log(f"generating {args.predictions:,} predictions and as many labels")
        batches = generate(args)
        events = sum(len(json.loads(m.value or b"[]")) for _, b in batches[:1] for m in b)
        clock = FrozenClock()
        stage = LabelJoinProcessor(SqlHeldStore(store.database), mon.streams["home"],
                                   mon.streams["outcomes"], PARTITIONS, PARTITIONS, targets,
                                   StreamSettings(), clock=clock)
        stage.assign(PREDICTIONS, range(PARTITIONS))
        stage.assign(LABELS, range(PARTITIONS))
        target = targets[0]
        spent = 0.0
        absorbed = 0
        closed = 0
        samples: list[dict[str, Any]] = []
        sample_every = max(len(batches) // 48, 1)
        log(f"{len(batches):,} micro-batches")
        for number, (side, messages) in enumerate(batches):
            began = time.perf_counter()
            prepared = stage.handle(side, messages)
            closed += sum(len(done.windows) for done in stage.tick())
            spent += time.perf_counter() - began
            absorbed += sum(len(part) for part in prepared.events.values())
            if number % sample_every == 0 or number == len(batches) - 1:
                with store.database.connect() as conn:
                    held_p, held_l = held_counts(conn, target.metric.name, target.version)
                last = max((int(part[mon.streams[_stream(side)].time].max().value)
                            for part in prepared.events.values() if len(part)), default=None)
                samples.append({"event_time": None if last is None
                                else pd.Timestamp(last).isoformat(),
                                "absorbed": absorbed, "held_predictions": held_p,
                                "held_labels": held_l})
                log(f"{absorbed:>10,} events  {absorbed / spent:>9,.0f}/s  held "
                    f"{held_p:>9,} predictions {held_l:>9,} labels")
        clock.now += 3_600  # every partition idle: the last windows close and are forgotten
        began = time.perf_counter()
        closed += sum(len(done.windows) for done in stage.tick())
        final_s = time.perf_counter() - began
        with store.database.connect() as conn:
            held_end = held_counts(conn, target.metric.name, target.version)
            revisions = conn.exec_driver_sql(
                "SELECT count(*) FROM metric_values WHERE metric = 'click_auc'").scalar()
    per_hour = args.predictions / args.hours
    horizon_h = parse_duration_ns(args.horizon) / 3.6e12
    span_h = horizon_h + 1 + 0.5 + 1  # horizon + window + lateness + an hour of slack
    half = len(samples) // 2
    return {
        "predictions": args.predictions, "labels": args.predictions,
        "hours": args.hours, "horizon": args.horizon, "seed": args.seed,
        "events_per_message": args.events_per_message,
        "batch_messages": args.batch_messages, "first_batch_events": events,
        "events_absorbed": absorbed, "seconds": round(spent, 2),
        "events_per_s": round(absorbed / spent),
        "final_tick_s": round(final_s, 2), "window_results_closed": closed,
        "value_rows": revisions,
        "held_predictions_max": max(s["held_predictions"] for s in samples),
        "held_labels_max": max(s["held_labels"] for s in samples),
        "held_predictions_max_first_half": max(s["held_predictions"] for s in samples[:half]),
        "held_predictions_max_second_half": max(s["held_predictions"]
                                                for s in samples[half:]),
        "held_bound": {"predictions": round(per_hour * span_h),
                       "labels": round(per_hour * (span_h + horizon_h))},
        "held_at_end": {"predictions": held_end[0], "labels": held_end[1]},
        "held_over_time": samples,
    }


def _stream(side: str) -> str:
    return "home" if side == PREDICTIONS else "outcomes"


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=1_000_000)
    parser.add_argument("--hours", type=float, default=48.0,
                        help="event time the predictions span")
    parser.add_argument("--horizon", default="6h")
    parser.add_argument("--events-per-message", type=int, default=10)
    parser.add_argument("--batch-messages", type=int, default=4_000,
                        help="messages per micro-batch at most (the worker's take_messages)")
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    with throwaway_database("bench_labels") as url:
        result = run(url, args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
