"""A consistency check and a uniqueness expectation against a plain ``rate`` metric on the
same events, and their state size as a window's keys grow.

    .venv/bin/python bench/consistency.py [--events 1000000] [--chunk 4000] [--repeats 3]
                                          [--users 100000] [--max-keys 20000]

The events are homepage views over a day (hourly windows, five countries as segments):
``metrics.consistency("top", key="user_id")`` (a user's views agree on their top
carousel; 1% of views disagree), ``metrics.expect_unique("view_id")`` and
``metrics.rate("score > 0.99")``, each through the engine every stage shares, fed chunks
of ``--chunk`` events (a streaming micro-batch is up to 4,000), then reading every
window's values once. Best of ``--repeats`` runs each, interleaved. Then the serialized
size of one window's consistency state after 10k, 100k and 1M views of as many users
(each view its own user: the worst case), with ``--max-keys`` bounding it. The last line
printed is one JSON object of figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import metrics
from monitor import Monitor
from monitor.engine import Engine
from monitor.spec import MetricSpec

START = pd.Timestamp("2026-03-02T00:00:00Z")
TOPS = np.array(["mix", "radio", "hits", "chill", "focus"], dtype=object)


def specs(max_keys: int) -> dict[str, MetricSpec]:
    mon = Monitor("bench-consistency")
    mon.stream("home", schema={"view_id": "int", "user_id": "int", "country": "str",
                               "score": "float", "top": "str"})
    return {
        "rate": mon.metric("sure", "home", metrics.rate("score > 0.99"), window="1h",
                           segment_by=["country"]),
        "consistency": mon.metric("same_top", "home", metrics.consistency(
            "top", key="user_id", max_keys=max_keys), window="1h", segment_by=["country"]),
        "unique": mon.metric("unique_view", "home", metrics.expect_unique(
            "view_id", max_keys=max_keys), window="1h", segment_by=["country"]),
    }


def events(n: int, users: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    user = rng.integers(0, users, n)
    top = TOPS[user % len(TOPS)]
    flipped = rng.random(n) < 0.01
    top[flipped] = TOPS[rng.integers(0, len(TOPS), int(flipped.sum()))]
    return pd.DataFrame({
        "ts": START + pd.to_timedelta(np.sort(rng.integers(0, 24 * 3_600_000, n)), unit="ms"),
        "view_id": np.arange(n),
        "user_id": user,
        "country": rng.choice(["SE", "DE", "BR", "US", "GB"], n).astype(object),
        "score": rng.random(n),
        "top": top,
    })


def feed_seconds(spec: MetricSpec, chunks: list[pd.DataFrame]) -> float:
    """Feeding the chunks and reading every window's values once: a state may defer work
    to its first read (a key table merges its queued keys then), so the read counts."""
    engine = Engine([spec])
    start = time.perf_counter()
    for chunk in chunks:
        engine.update(chunk)
    engine.values("bench")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=4_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--max-keys", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    runs = specs(args.max_keys)
    clean, _ = runs["rate"].stream.schema.validate(events(args.events, args.users, args.seed))
    chunks = [clean.iloc[i:i + args.chunk] for i in range(0, len(clean), args.chunk)]
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(args.repeats):
        for name, spec in runs.items():
            best[name] = min(best[name], feed_seconds(spec, chunks))
    rates = {name: args.events / seconds for name, seconds in best.items()}

    aggregate = runs["consistency"].aggregate
    sizes = {}
    for total in (10_000, 100_000, 1_000_000):
        frame = events(total, total, args.seed).assign(user_id=np.arange(total))
        state = aggregate.new_state()
        for start in range(0, total, 100_000):
            state.update(frame.iloc[start:start + 100_000])
        sizes[total] = len(state.to_bytes())

    figures = {
        "benchmark": "consistency_vs_rate",
        "events": args.events,
        "chunk": args.chunk,
        "users": args.users,
        "max_keys": args.max_keys,
        **{f"{name}_events_per_s": round(rate) for name, rate in rates.items()},
        "consistency_ratio": round(rates["consistency"] / rates["rate"], 3),
        "unique_ratio": round(rates["unique"] / rates["rate"], 3),
        "state_bytes": {str(total): size for total, size in sizes.items()},
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg()[0],
    }
    for name, rate in rates.items():
        print(f"{name:>12}: {rate:>12,.0f} events/s ({rate / rates['rate']:.3f}x the rate)")
    for total, size in sizes.items():
        print(f"consistency state after {total:,} users in a window: {size:,} bytes")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
