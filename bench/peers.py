"""The drift benchmark of bench/drift.py, side by side with Evidently and NannyML.

    scripts/setup_peers.sh                      # once: .peers/evidently, .peers/nannyml
                                                # (PEERS_DIR elsewhere, for both commands)
    .venv/bin/python bench/peers.py [--quick] [--reference-rows 100000]
                                    [--current-rows 1000000] [--seed 0]
                                    [--repeats-ours 5] [--repeats-nannyml 3]
                                    [--repeats-evidently 1] [--keep-data DIR]

The data is bench/drift.py's (``make_frames``: reference 100k rows, current 1M rows, 20
numeric and 5 categorical columns, 5 + 2 of them shifted), generated once, seeded, and
written to Parquet in a temporary directory. Three runners read the same files, each in a
subprocess of its own virtual environment, and report JSON:

- ours (bench/peer_ours.py, in .venv): the report of :func:`metrics.drift.drift` with
  its defaults — normed Wasserstein for numeric columns, Jensen–Shannon (base e) for
  categorical ones, drift at >= 0.1 — timed as ``new_state(); update(current);
  value(state)``; the profile is fitted on the reference beforehand (``fit_seconds``);
- Evidently (bench/peer_evidently.py, in .peers/evidently): ``Report([DataDriftPreset()])``
  run on the reference and current datasets, which picks the same statistics and
  threshold; it processes the reference in the same call, so its time includes the
  reference (what our fit does beforehand: the ratio against our fit + report is printed
  too);
- NannyML (bench/peer_nannyml.py, in .peers/nannyml): ``UnivariateDriftCalculator``
  with Jensen–Shannon (base 2) for every column, one chunk; ``fit(reference)`` timed apart
  like our fit, ``calculate(current)`` timed as the report.

Time is the best of a few runs of the report alone (data loading excluded). Memory comes
from a run of its own in a fresh process (``MEMORY_ENV``: glibc returns large blocks to
the system when they are freed, Arrow allocates through malloc): the resident high-water
mark of one report above what the process held before it (the data, the imports, the fit),
"extra memory"; "peak" is the whole process's high-water mark during the report. Evidently
takes minutes on 1M rows, so its memory comes from its first timed run instead (a fresh
process that has only loaded the data; ``--evidently-memory-run`` for a run of its own).
Ratios are peer / ours.

Agreement, where the statistic is the same:

- Evidently's normed Wasserstein (exact, on the raw values) vs ours (from bin counts):
  the difference must be within our stated binning error bound
  (:func:`metrics.drift.stats.wasserstein_binning_error` / reference std);
- Evidently's Jensen–Shannon of categorical columns (base e, over the categories of both
  samples) vs ours: the same statistic of the same counts (a category unseen in the
  reference has no reference mass, so lumping those categories into our one "unseen" bin
  leaves JS unchanged), so equal up to float rounding (tolerance 1e-9);
- NannyML's Jensen–Shannon (base 2) of categorical columns vs ours converted to base 2
  (``js_2 = js_e / sqrt(ln 2)``): equal up to rounding too. NannyML's JS of numeric
  columns is over its own bins (Doane's rule on the reference, current values outside the
  reference range dropped), a different binning from our reference quantile bins, so it
  is printed beside ours (base 2, over our bins) for information, not checked.

The drift decision per column should agree with Evidently's for every column, and with
NannyML's for the categorical ones (its numeric columns use another statistic than ours,
so their decisions may differ). The last line printed is one JSON object with every figure.
A full run takes about 4–6 minutes on 2 cores, most of it Evidently's one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.drift import make_frames  # noqa: E402

TARGETS = {"evidently_speedup": 80.0, "nannyml_speedup": 10.0, "evidently_memory_ratio": 10.0}
JS_TOLERANCE = 1e-9  # the same statistic of the same counts: float rounding only
# What metrics.drift.stats.wasserstein says the binning error is on real data (the tests'
# figure), far below the worst-case bound: columns past it are named.
WASSERSTEIN_TYPICAL = 0.002
PEERS = ROOT / os.environ.get("PEERS_DIR", ".peers")  # where scripts/setup_peers.sh puts them
RUNNERS = {
    "ours": (ROOT / ".venv", ROOT / "bench" / "peer_ours.py"),
    "evidently": (PEERS / "evidently", ROOT / "bench" / "peer_evidently.py"),
    "nannyml": (PEERS / "nannyml", ROOT / "bench" / "peer_nannyml.py"),
}


def write_data(directory: Path, seed: int, reference_rows: int, current_rows: int) -> dict:
    frames = make_frames(seed, reference_rows, current_rows)
    frames.reference.to_parquet(directory / "reference.parquet", index=False)
    frames.current.to_parquet(directory / "current.parquet", index=False)
    meta = {
        "numeric": frames.numeric,
        "categorical": frames.categorical,
        "shifted": frames.shifted,
        "seed": seed,
        "reference_rows": reference_rows,
        "current_rows": current_rows,
    }
    (directory / "meta.json").write_text(json.dumps(meta))
    return meta


# The memory run: large allocations (>= 128 KiB) mmapped and returned to the system when
# freed, Arrow's buffers through malloc too, so the resident high-water mark counts what a
# run holds at once, not what an allocator kept from earlier work (the fit, the loading).
MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072",
              "ARROW_DEFAULT_MEMORY_POOL": "system"}

# The peers' usage tracking, off (the runners set these too): no network here.
TELEMETRY_OFF = {"NML_DISABLE_USAGE_LOGGING": "1", "DO_NOT_TRACK": "1"}


def run_runner(name: str, data_dir: Path, repeats: int,
               env: dict[str, str] | None = None) -> dict[str, Any]:
    venv, script = RUNNERS[name]
    python = venv / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"{python} is missing: run scripts/setup_peers.sh first")
    start = time.perf_counter()
    process = subprocess.run(
        [str(python), str(script), str(data_dir), "--repeats", str(repeats)],
        capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, **TELEMETRY_OFF, **(env or {})},
    )
    wall = time.perf_counter() - start
    if process.returncode != 0:
        sys.stderr.write(process.stdout[-4000:] + process.stderr[-8000:])
        raise SystemExit(f"runner {name} failed with exit code {process.returncode}")
    lines = [line for line in process.stdout.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1])
    result["wall_seconds"] = wall
    return result


def compare(ours: dict, evidently: dict, nannyml: dict, meta: dict) -> dict[str, Any]:
    """Per-column differences, whether each is within its bound, and decision agreement."""
    rows = {}
    for name in [*meta["numeric"], *meta["categorical"]]:
        o, e, n = ours["columns"][name], evidently["columns"][name], nannyml["columns"][name]
        numeric = name in meta["numeric"]
        row: dict[str, Any] = {
            "kind": "numeric" if numeric else "categorical",
            "shifted": name in meta["shifted"],
            "ours_method": o["method"],
            "ours": o["value"],
            "evidently_method": e["method"],
            "evidently": e["value"],
            "evidently_diff": abs(o["value"] - e["value"]),
            "ours_js_base2": o["js_base2"],
            "nannyml_js_base2": n["value"],
            "nannyml_js_diff": abs(o["js_base2"] - n["value"]),
            "ours_drifted": o["drifted"],
            "evidently_drifted": e["drifted"],
            "nannyml_drifted": n["drifted"],
        }
        same_method = o["method"] == e["method"]
        if numeric:
            row["bound"] = o["bound"]
            row["exact_scipy"] = o["exact"]
            row["evidently_within"] = same_method and row["evidently_diff"] <= o["bound"]
            row["nannyml_checked"] = False  # different bins: for information only
            row["nannyml_within"] = None
        else:
            row["bound"] = JS_TOLERANCE
            row["evidently_within"] = same_method and row["evidently_diff"] <= JS_TOLERANCE
            row["nannyml_checked"] = True
            row["nannyml_within"] = row["nannyml_js_diff"] <= JS_TOLERANCE
        row["evidently_decision_agrees"] = o["drifted"] == e["drifted"]
        row["nannyml_decision_agrees"] = o["drifted"] == n["drifted"]
        rows[name] = row
    return rows


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 10k reference rows, 100k current rows, 1 repeat")
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--current-rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats-ours", type=int, default=5)
    parser.add_argument("--repeats-nannyml", type=int, default=3)
    parser.add_argument("--repeats-evidently", type=int, default=1)
    parser.add_argument("--evidently-memory-run", action="store_true",
                        help="measure Evidently's memory in a run of its own too (its first "
                             "timed run, in a fresh process, is used otherwise: one "
                             "Evidently run on 1M rows takes minutes)")
    parser.add_argument("--keep-data", type=Path, default=None,
                        help="write the Parquet files here and keep them")
    args = parser.parse_args()
    if args.quick:
        args.reference_rows, args.current_rows = 10_000, 100_000
        args.repeats_ours = args.repeats_nannyml = args.repeats_evidently = 1
    repeats = {"ours": args.repeats_ours, "nannyml": args.repeats_nannyml,
               "evidently": args.repeats_evidently}

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="peers-bench-") as tmp:
        data_dir = args.keep_data or Path(tmp)
        data_dir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        meta = write_data(data_dir, args.seed, args.reference_rows, args.current_rows)
        data_seconds = time.perf_counter() - start
        results = {}
        for name in ("ours", "nannyml", "evidently"):
            memory = None
            if name != "evidently" or args.evidently_memory_run:
                print(f"running {name}: memory ...", file=sys.stderr, flush=True)
                memory = run_runner(name, data_dir, 1, MEMORY_ENV)
            print(f"running {name}: time, {repeats[name]} run(s) ...", file=sys.stderr,
                  flush=True)
            results[name] = result = run_runner(name, data_dir, repeats[name])
            result["timing_run_memory"] = {
                k: result[k] for k in ("rss_before_mib", "extra_mib", "peak_rss_mib")}
            result["memory_from"] = "timing run" if memory is None else "memory run"
            if memory is not None:
                for key in ("rss_before_mib", "extra_mib", "peak_rss_mib",
                            "loading_peak_rss_mib"):
                    result[key] = memory[key]
                result["memory_run_seconds"] = memory["seconds"]

    load_after = os.getloadavg()
    ours, evidently, nannyml = results["ours"], results["evidently"], results["nannyml"]
    rows = compare(ours, evidently, nannyml, meta)
    columns = len(rows)
    n = args.current_rows

    speedup_evidently = _ratio(evidently["seconds"], ours["seconds"])
    speedup_evidently_fit = _ratio(evidently["seconds"], ours["seconds"] + ours["fit_seconds"])
    speedup_nannyml = _ratio(nannyml["seconds"], ours["seconds"])
    speedup_nannyml_fit = _ratio(nannyml["seconds"] + nannyml["fit_seconds"],
                                 ours["seconds"] + ours["fit_seconds"])
    memory_evidently = _ratio(evidently["extra_mib"], ours["extra_mib"])
    memory_nannyml = _ratio(nannyml["extra_mib"], ours["extra_mib"])

    print(f"drift report: {columns} columns ({len(meta['numeric'])} numeric, "
          f"{len(meta['categorical'])} categorical), reference {args.reference_rows:,} rows, "
          f"current {n:,} rows; data written in {data_seconds:.1f} s; load average "
          f"{load_before[0]:.1f} before, {load_after[0]:.1f} after ({os.cpu_count()} cores)")
    print(f"  {'':10} {'version':>8} {'report s':>9} {'fit s':>7} {'x ours':>7} "
          f"{'data MiB':>9} {'extra MiB':>10} {'x ours':>7} {'peak MiB':>9}  python/pandas/numpy")
    for name in ("ours", "nannyml", "evidently"):
        r = results[name]
        fit = f"{r['fit_seconds']:7.2f}" if r.get("fit_seconds") is not None else f"{'-':>7}"
        print(f"  {name:10} {r['version']:>8} {r['seconds']:9.3f} {fit} "
              f"{_ratio(r['seconds'], ours['seconds']):7.1f} {r['rss_before_mib']:9.0f} "
              f"{r['extra_mib']:10.1f} {_ratio(r['extra_mib'], ours['extra_mib']):7.1f} "
              f"{r['peak_rss_mib']:9.0f}  {r['python']}/{r['pandas']}/{r['numpy']}")
    print(f"  Evidently / ours: {speedup_evidently:.1f}x time (target >= "
          f"{TARGETS['evidently_speedup']:.0f}x: "
          f"{'met' if speedup_evidently >= TARGETS['evidently_speedup'] else 'NOT met'}; "
          f"{speedup_evidently_fit:.1f}x against our fit + report), "
          f"{memory_evidently:.1f}x extra memory (target >= "
          f"{TARGETS['evidently_memory_ratio']:.0f}x: "
          f"{'met' if memory_evidently >= TARGETS['evidently_memory_ratio'] else 'NOT met'})")
    print(f"  NannyML / ours:   {speedup_nannyml:.1f}x time (target >= "
          f"{TARGETS['nannyml_speedup']:.0f}x: "
          f"{'met' if speedup_nannyml >= TARGETS['nannyml_speedup'] else 'NOT met'}; "
          f"fit + calculate vs fit + report {speedup_nannyml_fit:.1f}x), "
          f"{memory_nannyml:.1f}x extra memory")

    print("  agreement (|ours - peer|; numeric bound = our Wasserstein binning error bound, "
          f"categorical = {JS_TOLERANCE:g}):")
    print(f"  {'column':8} {'method':>11} {'ours':>9} {'evidently':>9} {'diff':>9} "
          f"{'bound':>9} {'ok':>3} {'scipy':>9} | {'ours js2':>8} {'nannyml':>8} "
          f"{'diff':>9} {'ok':>4} | drifted o/e/n")
    for name, r in rows.items():
        ok_n = "-" if r["nannyml_within"] is None else ("yes" if r["nannyml_within"] else "NO")
        scipy = f"{r['exact_scipy']:9.5f}" if "exact_scipy" in r else f"{'':9}"
        flags = "/".join("1" if r[k] else "0" for k in
                         ("ours_drifted", "evidently_drifted", "nannyml_drifted"))
        print(f"  {name:8} {r['ours_method']:>11} {r['ours']:9.5f} {r['evidently']:9.5f} "
              f"{r['evidently_diff']:9.2e} {r['bound']:9.2e} "
              f"{'yes' if r['evidently_within'] else 'NO':>3} {scipy} | "
              f"{r['ours_js_base2']:8.5f} {r['nannyml_js_base2']:8.5f} "
              f"{r['nannyml_js_diff']:9.2e} {ok_n:>4} | {flags}"
              f"{'  (shifted)' if r['shifted'] else ''}")

    within_evidently = all(r["evidently_within"] for r in rows.values())
    within_nannyml = all(r["nannyml_within"] for r in rows.values() if r["nannyml_checked"])
    decisions_evidently = all(r["evidently_decision_agrees"] for r in rows.values())
    decisions_nannyml_cat = all(r["nannyml_decision_agrees"] for r in rows.values()
                                if r["kind"] == "categorical")
    decisions_nannyml_all = sum(r["nannyml_decision_agrees"] for r in rows.values())
    drifted = sorted(k for k, r in rows.items() if r["ours_drifted"])
    print(f"  values within bounds: Evidently {within_evidently}, NannyML (categorical) "
          f"{within_nannyml}; drift decisions agree: Evidently {decisions_evidently} "
          f"({sum(r['evidently_decision_agrees'] for r in rows.values())}/{columns}), "
          f"NannyML categorical {decisions_nannyml_cat}, all columns "
          f"{decisions_nannyml_all}/{columns}")
    print(f"  drifted (ours) {len(drifted)} of {columns}: {drifted}; shifted: "
          f"{sorted(meta['shifted'])}")

    numeric_rows = [r for r in rows.values() if r["kind"] == "numeric"]
    past_typical = sorted(k for k, r in rows.items()
                          if r["kind"] == "numeric" and r["evidently_diff"] > WASSERSTEIN_TYPICAL)
    print(f"  normed Wasserstein off Evidently's (exact) by more than {WASSERSTEIN_TYPICAL} "
          f"(the error stats.wasserstein reports on real data): {past_typical or 'none'}")
    figures = {
        "benchmark": "drift_report_peers",
        "rows": n,
        "reference_rows": args.reference_rows,
        "columns": columns,
        "numeric_columns": len(meta["numeric"]),
        "categorical_columns": len(meta["categorical"]),
        "seed": args.seed,
        "quick": args.quick,
        "load_average_before_after": [load_before[0], load_after[0]],
        "cpus": os.cpu_count(),
        "versions": {k: r["version"] for k, r in results.items()},
        "environments": {k: f"python {r['python']}, pandas {r['pandas']}, numpy {r['numpy']}"
                         for k, r in results.items()},
        "repeats": repeats,
        "seconds": {k: r["seconds"] for k, r in results.items()},
        "all_seconds": {k: r["all_seconds"] for k, r in results.items()},
        "fit_seconds": {k: r.get("fit_seconds") for k, r in results.items()},
        "prepare_seconds": {k: r.get("prepare_seconds") for k, r in results.items()},
        "data_rss_mib": {k: r["rss_before_mib"] for k, r in results.items()},
        "extra_mib": {k: r["extra_mib"] for k, r in results.items()},
        "peak_rss_mib": {k: r["peak_rss_mib"] for k, r in results.items()},
        "timing_run_memory": {k: r["timing_run_memory"] for k, r in results.items()},
        "memory_from": {k: r["memory_from"] for k, r in results.items()},
        "memory_run_seconds": {k: r.get("memory_run_seconds") for k, r in results.items()},
        "evidently_time_ratio": speedup_evidently,
        "evidently_time_ratio_vs_our_fit_and_report": speedup_evidently_fit,
        "nannyml_time_ratio": speedup_nannyml,
        "nannyml_fit_and_calculate_ratio": speedup_nannyml_fit,
        "evidently_memory_ratio": memory_evidently,
        "nannyml_memory_ratio": memory_nannyml,
        "targets": TARGETS,
        "met": {
            "evidently_speedup": speedup_evidently >= TARGETS["evidently_speedup"],
            "nannyml_speedup": speedup_nannyml >= TARGETS["nannyml_speedup"],
            "evidently_memory": memory_evidently >= TARGETS["evidently_memory_ratio"],
        },
        "values_within_bounds_evidently": within_evidently,
        "values_within_bounds_nannyml_categorical": within_nannyml,
        "max_wasserstein_diff_evidently": max(r["evidently_diff"] for r in numeric_rows),
        "max_wasserstein_bound": max(r["bound"] for r in numeric_rows),
        "wasserstein_diff_past_typical": past_typical,
        "max_js_diff_evidently": max(r["evidently_diff"] for r in rows.values()
                                     if r["kind"] == "categorical"),
        "max_js_diff_nannyml_categorical": max(r["nannyml_js_diff"] for r in rows.values()
                                               if r["kind"] == "categorical"),
        "decisions_agree_evidently": decisions_evidently,
        "decisions_agree_nannyml_categorical": decisions_nannyml_cat,
        "decisions_agree_nannyml_all_columns": decisions_nannyml_all,
        "n_drifted": {"ours": sum(r["ours_drifted"] for r in rows.values()),
                      "evidently": sum(r["evidently_drifted"] for r in rows.values()),
                      "nannyml": sum(r["nannyml_drifted"] for r in rows.values())},
        "n_shifted": len(meta["shifted"]),
        "drifted_match_shifted": drifted == sorted(meta["shifted"]),
        "per_column": rows,
    }
    print(json.dumps(figures, allow_nan=True))


if __name__ == "__main__":
    main()
