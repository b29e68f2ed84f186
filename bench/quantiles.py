"""Quantile sketch ingest vs exact np.percentile on the same 10M lognormal values.

    .venv/bin/python bench/quantiles.py [--values 10000000] [--repeats 5]

Times ``QuantileSketch.add`` (and the DataFrame path, ``QuantileState.update``) against
``np.percentile`` at P50/P99/P99.9, best of a few repeats each, and reports the sketch's
relative error at P99 and P99.9 against the exact values. The last line printed is one JSON
object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metrics.tails import QuantileSketch, quantiles

TARGET_VALUES_PER_SECOND = 20e6
TARGET_RELATIVE_ERROR = 0.01
PERCENTS = [50.0, 99.0, 99.9]


def best_of(repeats: int, run: Callable[[], object]) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    values = np.random.default_rng(args.seed).lognormal(mean=3.0, sigma=1.0, size=args.values)
    frame = pd.DataFrame({"latency_ms": values})

    def ingest() -> QuantileSketch:
        sketch = QuantileSketch(0.01)
        sketch.add(values)
        return sketch

    # The first call also builds the bucket-bound table for the range of keys seen.
    start = time.perf_counter()
    ingest()
    first_call_seconds = time.perf_counter() - start

    sketch_seconds, sketch = best_of(args.repeats, ingest)
    assert isinstance(sketch, QuantileSketch)
    percentile_seconds, exact = best_of(args.repeats, lambda: np.percentile(values, PERCENTS))
    exact = np.asarray(exact)

    aggregate = quantiles("latency_ms", ps=(0.5, 0.99, 0.999))

    def update() -> None:
        aggregate.new_state().update(frame)

    frame_seconds, _ = best_of(args.repeats, update)

    estimates = [sketch.quantile(p / 100) for p in PERCENTS]
    errors = [abs(e - x) / abs(x) for e, x in zip(estimates, exact, strict=True)]
    figures = {
        "benchmark": "quantile_sketch_ingest",
        "values": args.values,
        "distribution": "lognormal(mean=3, sigma=1)",
        "relative_accuracy": sketch.relative_accuracy,
        "repeats": args.repeats,
        "cpus": os.cpu_count(),
        "threads_used": 1,
        "sketch_seconds": round(sketch_seconds, 4),
        "values_per_second": round(args.values / sketch_seconds),
        "first_call_seconds": round(first_call_seconds, 4),
        "dataframe_update_seconds": round(frame_seconds, 4),
        "dataframe_values_per_second": round(args.values / frame_seconds),
        "percentile_seconds": round(percentile_seconds, 4),
        "ratio_vs_percentile": round(percentile_seconds / sketch_seconds, 2),
        "p50_rel_error": errors[0],
        "p99_rel_error": errors[1],
        "p999_rel_error": errors[2],
        "state_bytes": len(sketch.to_bytes()),
        "meets_targets": bool(
            args.values / sketch_seconds >= TARGET_VALUES_PER_SECOND
            and max(errors[1:]) < TARGET_RELATIVE_ERROR
        ),
    }

    print(f"{args.values:,} lognormal values, relative accuracy {sketch.relative_accuracy}")
    print(f"  sketch ingest     {sketch_seconds * 1e3:8.1f} ms  "
          f"{figures['values_per_second'] / 1e6:7.1f} M values/s "
          f"(target {TARGET_VALUES_PER_SECOND / 1e6:.0f} M/s; first call "
          f"{first_call_seconds * 1e3:.1f} ms)")
    print(f"  DataFrame update  {frame_seconds * 1e3:8.1f} ms  "
          f"{figures['dataframe_values_per_second'] / 1e6:7.1f} M values/s")
    print(f"  np.percentile     {percentile_seconds * 1e3:8.1f} ms  "
          f"(sketch is {figures['ratio_vs_percentile']}x its speed)")
    for p, e, x, err in zip(PERCENTS, estimates, exact, errors, strict=True):
        print(f"  P{p:<5g} sketch {e:12.4f}  exact {x:12.4f}  relative error {err:.4%}")
    print(f"  state size {figures['state_bytes']} bytes; targets met: {figures['meets_targets']}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
