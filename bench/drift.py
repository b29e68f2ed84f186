"""A full drift report against a fitted reference profile vs a count-only baseline.

    .venv/bin/python bench/drift.py [--reference-rows 100000] [--current-rows 1000000]
                                    [--repeats 5] [--seed 0]

Reference 100k rows vs current 1M rows, 20 numeric and 5 categorical columns, some of them
shifted. The profile is fitted once, outside the timing; then the report is timed on the
current data (``new_state(); update(df); value(state)``), interleaved with a baseline that
only counts the same data over the same bins: ``np.histogram`` on the reference edges for
numeric columns, ``pd.factorize`` codes + ``np.bincount`` for categorical ones. Best of a
few repeats each. The last line printed is one JSON object with the figures.

:func:`make_frames` is the data generator, for other timings of the same report (e.g.
through ``monitor.research.evaluate``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metrics.drift import Drift, NumericProfile, ReferenceProfile, drift
from monitor import MetricSpec, Monitor
from monitor.research import evaluate

TARGET_RATIO = 2.0
DISTRIBUTIONS = ("normal", "lognormal", "uniform", "exponential", "counts")


@dataclass(frozen=True)
class Frames:
    reference: pd.DataFrame
    current: pd.DataFrame
    numeric: list[str]
    categorical: list[str]
    shifted: list[str]  # the columns whose current distribution differs from the reference


def make_frames(
    seed: int = 0,
    reference_rows: int = 100_000,
    current_rows: int = 1_000_000,
    numeric: int = 20,
    categorical: int = 5,
) -> Frames:
    """Seeded reference and current frames; every 4th numeric and every 2nd categorical
    column is shifted in the current frame (means, scales, category mixes, new values)."""
    rng = np.random.default_rng(seed)
    reference: dict[str, object] = {}
    current: dict[str, object] = {}
    numeric_names = [f"num_{i:02d}" for i in range(numeric)]
    categorical_names = [f"cat_{i}" for i in range(categorical)]
    shifted: list[str] = []

    for i, name in enumerate(numeric_names):
        kind = DISTRIBUTIONS[i % len(DISTRIBUTIONS)]
        shift = 0.25 * (1 + i // 4) if i % 4 == 3 else 0.0
        reference[name] = _numeric(rng, kind, reference_rows, 0.0)
        current[name] = _numeric(rng, kind, current_rows, shift)
        if shift:
            shifted.append(name)

    for i, name in enumerate(categorical_names):
        labels = np.array([f"{name}_value_{k}" for k in range(5 + 10 * i)], dtype=object)
        weights = rng.dirichlet(np.ones(len(labels)))
        reference[name] = _labels(rng, labels, weights, reference_rows)
        if i % 2 == 1:
            new = np.array([f"{name}_new_{k}" for k in range(3)], dtype=object)
            mixed = np.concatenate([rng.dirichlet(np.ones(len(labels))) * 0.9, [0.04, 0.03, 0.03]])
            current[name] = _labels(rng, np.concatenate([labels, new]), mixed, current_rows)
            shifted.append(name)
        else:
            current[name] = _labels(rng, labels, weights, current_rows)

    return Frames(pd.DataFrame(reference), pd.DataFrame(current), numeric_names,
                  categorical_names, shifted)


def _numeric(rng: np.random.Generator, kind: str, n: int, shift: float) -> np.ndarray:
    if kind == "normal":
        values = rng.normal(10.0 + 2.0 * shift, 2.0, size=n)
    elif kind == "lognormal":
        values = rng.lognormal(3.0 + shift, 1.0, size=n)
    elif kind == "uniform":
        values = rng.uniform(0.0, 1.0 + shift, size=n)
    elif kind == "exponential":
        values = rng.exponential(1.0 + shift, size=n)
    else:
        values = rng.poisson(4.0 + 4.0 * shift, size=n).astype(np.float64)
    values[rng.random(n) < 0.01] = np.nan
    return values


def _labels(rng: np.random.Generator, labels: np.ndarray, weights: np.ndarray, n: int) -> pd.Series:
    codes = rng.choice(len(labels), size=n, p=weights / weights.sum())
    values = labels[codes]
    values[rng.random(n) < 0.01] = None
    return pd.Series(values, dtype="str")


def count_only(profile: ReferenceProfile, frame: pd.DataFrame, numeric: list[str],
               categorical: list[str]) -> list[np.ndarray]:
    """The least any binned report must do: count every column over the same bins."""
    counts = []
    for name in numeric:
        column = profile.column(name)
        assert isinstance(column, NumericProfile)
        counts.append(np.histogram(frame[name].to_numpy(), bins=np.asarray(column.edges))[0])
    for name in categorical:
        codes, _ = pd.factorize(frame[name])
        counts.append(np.bincount(codes + 1))
    return counts


def report_values(report: Drift, frame: pd.DataFrame) -> dict[str, float]:
    state = report.new_state()
    state.update(frame)
    return report.value(state)


def research_metric(frames: Frames) -> MetricSpec:
    """The same report as a registered metric, computed through the research stage."""
    mon = Monitor("bench")
    schema = {name: "float?" for name in frames.numeric}
    schema |= {name: "str?" for name in frames.categorical}
    mon.stream("bench", schema=schema)
    return mon.metric("drift", "bench", drift([*frames.numeric, *frames.categorical],
                                              "training"), window="1d")


def best_of_interleaved(
    repeats: int, runs: dict[str, Callable[[], object]]
) -> tuple[dict[str, float], dict[str, object]]:
    best = dict.fromkeys(runs, float("inf"))
    results: dict[str, object] = {}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            results[name] = run()
            best[name] = min(best[name], time.perf_counter() - start)
    return best, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--current-rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    frames = make_frames(args.seed, args.reference_rows, args.current_rows)
    start = time.perf_counter()
    profile = ReferenceProfile.fit(frames.reference, name="training")
    fit_seconds = time.perf_counter() - start
    report = drift([*frames.numeric, *frames.categorical], profile)

    metric = research_metric(frames)
    events = frames.current.assign(ts=pd.Timestamp("2026-01-01T12:00:00Z"))
    seconds, results = best_of_interleaved(args.repeats, {
        "ours": lambda: report_values(report, frames.current),
        "research": lambda: evaluate(metric, events, reference=profile),
        "baseline": lambda: count_only(profile, frames.current, frames.numeric,
                                       frames.categorical),
    })
    values = results["ours"]
    assert isinstance(values, dict)
    drifted = sorted(c for c in report.column_names if values[f"{c}.drifted"] == 1.0)
    ratio = seconds["ours"] / seconds["baseline"]
    columns = len(report.column_names)
    rows = args.current_rows

    print(f"drift report: {columns} columns ({len(frames.numeric)} numeric, "
          f"{len(frames.categorical)} categorical), reference {args.reference_rows:,} rows "
          f"(profile fitted in {fit_seconds:.2f} s, id {profile.id}), current {rows:,} rows")
    print(f"  methods (Evidently's defaults): {sorted(set(report.column_methods or ()))}")
    print(f"  ours      {seconds['ours'] * 1e3:8.1f} ms  "
          f"({rows * columns / seconds['ours'] / 1e6:6.1f} M values/s)  update + value")
    print(f"  research  {seconds['research'] * 1e3:8.1f} ms  "
          f"({rows * columns / seconds['research'] / 1e6:6.1f} M values/s)  "
          "monitor.research.evaluate: schema validation + engine + report")
    print(f"  baseline  {seconds['baseline'] * 1e3:8.1f} ms  "
          f"({rows * columns / seconds['baseline'] / 1e6:6.1f} M values/s)  count only")
    print(f"  ratio     {ratio:8.2f}x  (target <= {TARGET_RATIO}x): "
          f"{'met' if ratio <= TARGET_RATIO else 'NOT met'}")
    print(f"  drifted   {len(drifted)} of {columns}: {drifted}")
    print(f"  shifted   {len(frames.shifted)} of {columns}: {sorted(frames.shifted)}")
    print(json.dumps({
        "benchmark": "drift_report",
        "our_seconds": seconds["ours"],
        "baseline_seconds": seconds["baseline"],
        "ratio": ratio,
        "research_seconds": seconds["research"],
        "research_ratio": seconds["research"] / seconds["baseline"],
        "target_ratio": TARGET_RATIO,
        "met": ratio <= TARGET_RATIO,
        "rows": rows,
        "reference_rows": args.reference_rows,
        "columns": columns,
        "numeric_columns": len(frames.numeric),
        "categorical_columns": len(frames.categorical),
        "n_drifted": int(values["n_drifted"]),
        "n_shifted": len(frames.shifted),
        "drifted_match_shifted": drifted == sorted(frames.shifted),
        "fit_seconds": fit_seconds,
        "repeats": args.repeats,
        "seed": args.seed,
    }))


if __name__ == "__main__":
    main()
