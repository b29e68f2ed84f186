"""How often a rule on a consistency check fires when its counts are estimates.

    .venv/bin/python bench/consistency_alarms.py [--windows 300] [--keys 50000]
                                                 [--max-keys 10000] [--threshold 20]

A window of ``metrics.consistency`` with more keys than ``max_keys`` keeps a uniform sample
of them and estimates ``violating_keys`` from it (see :mod:`metrics.key_consistency`), so a
rule ``violating_keys > T`` can fire on a window whose true count is below ``T`` (a false
alarm) and stay silent on one above it (a miss). This runs the rule over ``--windows``
seeded windows of ``--keys`` keys (two events each; the violating keys' two events
disagree) for true counts from a quarter of ``T`` to twice ``T``, once with
``max_keys`` below the keys (estimates) and once above them (exact), and prints the
share of windows that fired, with a 95% Wilson interval, beside the share that the
law of the estimate predicts for a uniform sample of ``max_keys`` keys
(:func:`metrics.consistency_alarms.rule_fire_chance`, with scipy). The last line printed
is one JSON object of figures.
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
from metrics.consistency_alarms import rule_fire_chance
from metrics.key_consistency import Consistency


def window(keys: int, violating: int, seed: int) -> pd.DataFrame:
    """Two events per key; the first ``violating`` keys' events disagree. Key texts carry
    the seed, so each window's keys hash anew."""
    names = np.array([f"w{seed}-u{i}" for i in range(keys)], dtype=object)
    second = np.where(np.arange(keys) < violating, "radio", "mix").astype(object)
    return pd.DataFrame({"user_id": np.concatenate([names, names]),
                         "top": np.concatenate([np.full(keys, "mix", dtype=object), second])})


def fires(check: Consistency, frame: pd.DataFrame, threshold: float) -> tuple[bool, float]:
    state = check.new_state()
    state.update(frame)
    counted = check.value(state)["violating_keys"]
    return counted > threshold, counted


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=300)
    parser.add_argument("--keys", type=int, default=50_000)
    parser.add_argument("--max-keys", type=int, default=10_000)
    parser.add_argument("--threshold", type=float, default=20)
    args = parser.parse_args()

    started = time.perf_counter()
    rows = []
    for max_keys, kind in ((args.max_keys, "estimated"), (2 * args.keys, "exact")):
        check = metrics.consistency("top", key="user_id", max_keys=max_keys)
        assert isinstance(check, Consistency)
        for share in (0.25, 0.5, 0.75, 1.0, 1.5, 2.0):
            violating = round(share * args.threshold)
            fired = 0
            for seed in range(args.windows):
                hit, _ = fires(check, window(args.keys, violating, seed), args.threshold)
                fired += hit
            low, high = wilson(fired, args.windows)
            expected = rule_fire_chance(args.keys, violating, max_keys, args.threshold)
            rows.append({"counts": kind, "max_keys": max_keys, "true_violating": violating,
                         "fired": fired / args.windows, "ci95": [low, high],
                         "predicted": expected})
            what = "false alarm" if violating <= args.threshold else "detection"
            print(f"{kind:>9} (max_keys {max_keys:,}): true {violating:>3} violating of "
                  f"{args.keys:,} keys, rule > {args.threshold:g}: fired in "
                  f"{fired / args.windows:6.1%} of windows [{low:.1%}, {high:.1%}] "
                  f"({what}; predicted {expected:.1%})", flush=True)
    print(json.dumps({"benchmark": "consistency_alarms", "windows": args.windows,
                      "keys": args.keys, "threshold": args.threshold, "rows": rows,
                      "seconds": round(time.perf_counter() - started, 1),
                      "cpus": os.cpu_count(), "load_average": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
