"""Are drift alarms calibrated? False alarms without drift, power on real shifts, vs peers.

    scripts/setup_peers.sh                            # once: .peers/evidently, .peers/nannyml
    .venv/bin/python bench/drift_calibration.py --quick   # 6-9 min on 2 cores (see below)
    .venv/bin/python bench/drift_calibration.py           # the full run, 20-35 min
        [--seed 0] [--alpha 0.01] [--reference-rows 10000] [--references 1]
        [--windows 2000] [--peer-windows 200] [--familywise-windows 2000]
        [--peer-familywise-windows 200] [--peers evidently,nannyml | none] [--keep-data DIR]

Issue 13's "Must show". Every window is drawn from its own seeded generator
(bench/calibration_data.py); ours sees every window through the public API in .venv
(bench/calibration_ours.py), and the first ``--peer-windows`` of each cell are written to
Parquet for the peers, which run in their own venvs as in bench/peers.py:
Evidently 0.7 (``DataDriftPreset`` defaults; bench/calibration_peer_evidently.py) and
NannyML 0.13 (univariate drift defaults, the window as its chunk, and the same values at a
constant 0.1; bench/calibration_peer_nannyml.py). So the peers decide on exactly the
windows ours sees first. Evidently's full ``Report`` spends 0.4-2.5 s a window drawing
plotly widgets, so its decisions come from the two calls the report makes per column
(``get_stattest`` and the test), checked against the full report on the first windows
of a cell (``evidently_report_check``: disagreements are listed).

- **False alarms**: per column-window, no drift (windows drawn from the reference's
  distribution), for 9 families (normal, lognormal sigma 2, Pareto 1.5, bimodal,
  integers 1..5, 0/1 at 3% and 40%, 20 levels, Zipf over 1,000 levels) at windows of 50,
  200, 1k, 10k and 100k events: each cell's rate with its 95% Wilson interval, the pooled
  rate; target for ours <= 2 alpha every cell, <= 1.5 alpha pooled. One column a report, so
  the correction across columns has nothing to correct.
- **Family-wise**: a 25-column report (the families in turn) x 10 segments of 50 to 5,000
  events; a window is a false alarm when any (segment, column) is flagged, ours valuing
  the segments of a window together (``Drift.window_values``: one correction over every
  (segment, column) test, as every stage does); target <= alpha.
- **Power** at the same alpha: mean +0.1, +0.25, +0.5 sd, scale x1.2, 0/1 from 40% to
  45% and from 3% to 8%, a new category at 2%, the values above P95 moved up 1 sd, at 200,
  1k and 10k events; and the check: where a peer's false-alarm rate (same family, same n)
  is no higher than ours, our power is at least the peer's.
- **Time**: our report vs the count-only baseline on bench/drift.py's data
  (:func:`time_against_baseline` takes the two callables).

The reference: 10,000 rows a family (``--reference-rows``). Over 1,000 rows, so Evidently
uses its large-reference defaults (normed Wasserstein / Jensen–Shannon at 0.1), which the
calibrated decision is meant to match at large n; large enough that NannyML's default
threshold (reference chunks of the window's size) exists up to 1k-event windows (at 10k
and 100k it is degenerate: fewer than two chunks); small enough that the reference's own
sampling noise is part of the test, as it is for users. One reference a family by default:
the rates are then conditional on that draw, which is what a user lives with. Where the
window outgrows the reference (10k, 100k) the statistic is mostly the reference's own
error, the same for every window, so without an effect-size floor a cell's rate would be
near 0 or near 1 depending on the draw; ``--references R`` draws R references a family and
compares window i with draw i mod R, which measures the rate averaged over references
(what a p-value promises).

The last line printed is one JSON object with every figure. A ``--quick`` run ends with an
estimate of the full run's time (``full_run_estimate_seconds``). Most of a quick run is
ours paying, once per process, for simulating each column's null at each window size it
meets: about 0.5-1.5 s a size for a 100-bin column, 7 s for the 1,000-level Zipf column, so
the family-wise report's first window (25 columns, 14 sizes) takes about 3.5 minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import calibration_ours as ours  # noqa: E402
from bench.calibration_data import (  # noqa: E402
    FALSE_ALARM,
    FAMILIES,
    FAMILYWISE,
    FAMILYWISE_REFERENCE,
    FAMILYWISE_SEGMENTS,
    POWER,
    SCENARIOS,
    familywise_columns,
    familywise_frame_values,
    reference_of_window,
    reference_values,
    window_values,
)
from bench.calibration_stats import Rate, calibration_summary, pooled, power_check  # noqa: E402
from bench.drift import best_of_interleaved, count_only, make_frames  # noqa: E402
from metrics.drift import ReferenceProfile, drift  # noqa: E402

PEERS_DIR = ROOT / os.environ.get("PEERS_DIR", ".peers")  # where scripts/setup_peers.sh puts them
PEER_RUNNERS = {
    "evidently": (PEERS_DIR / "evidently", ROOT / "bench" / "calibration_peer_evidently.py"),
    "nannyml": (PEERS_DIR / "nannyml", ROOT / "bench" / "calibration_peer_nannyml.py"),
}
TELEMETRY_OFF = {"NML_DISABLE_USAGE_LOGGING": "1", "DO_NOT_TRACK": "1"}
TIME_TARGET = 1.5  # issue 13: calibration keeps bench/drift.py within 1.5x its baseline


@dataclass(frozen=True)
class Settings:
    seed: int = 0
    alpha: float = 0.01
    reference_rows: int = 10_000
    references: int = 1
    sizes: tuple[int, ...] = (50, 200, 1_000, 10_000, 100_000)
    power_sizes: tuple[int, ...] = (200, 1_000, 10_000)
    windows: int = 2_000
    peer_windows: int = 200
    familywise_windows: int = 2_000
    peer_familywise_windows: int = 200
    # Windows per cell also run through Evidently's full Report, to check that its
    # decisions are the report's; ``report_check_sizes`` limits which cells (None: all).
    report_check: int = 2
    report_check_sizes: tuple[int, ...] | None = None
    timing_reference_rows: int = 100_000
    timing_current_rows: int = 1_000_000
    timing_repeats: int = 5
    peers: tuple[str, ...] = ("evidently", "nannyml")


FULL = Settings()
QUICK = dataclasses.replace(
    FULL, windows=400, peer_windows=40, familywise_windows=100, peer_familywise_windows=20,
    report_check=1, report_check_sizes=(50, 100_000), timing_reference_rows=10_000,
    timing_current_rows=100_000, timing_repeats=3)


@dataclass(frozen=True)
class Cell:
    """A family (no drift) or a scenario (drift) at one window size."""

    purpose: int  # FALSE_ALARM or POWER
    name: str  # the family, or the scenario
    n: int
    windows: int
    peer_windows: int
    report_check: int

    @property
    def family(self) -> str:
        """The no-drift family: whose reference the windows are compared with."""
        return self.name if self.purpose == FALSE_ALARM else SCENARIOS[self.name].family

    @property
    def id(self) -> str:
        return f"{'false_alarm' if self.purpose == FALSE_ALARM else 'power'}/{self.name}/{self.n}"

    @property
    def false_alarm_id(self) -> str:
        return f"false_alarm/{self.family}/{self.n}"


def make_cells(settings: Settings) -> list[Cell]:
    def check(n: int) -> int:
        sizes = settings.report_check_sizes
        return min(settings.report_check, settings.peer_windows) if (
            sizes is None or n in sizes) else 0

    cells = [Cell(FALSE_ALARM, family, n, settings.windows, settings.peer_windows, check(n))
             for family in FAMILIES for n in settings.sizes]
    cells += [Cell(POWER, scenario, n, settings.windows, settings.peer_windows,
                   check(n) if settings.report_check_sizes is None else 0)
              for scenario in SCENARIOS for n in settings.power_sizes]
    return cells


# -- ours, and the peers' data, in one pass --------------------------------------------


@dataclass
class CellRun:
    flags: np.ndarray  # one bool per window
    raw_p_flags: np.ndarray | None  # p_value < alpha, where the report gives one
    report_seconds: float  # new_state + update + value, summed
    wall_seconds: float  # with drawing the windows and writing the peers' share
    first_seconds: float  # the first window's wall time: it pays for the null's simulation


class ParquetWindows:
    """One file, one row group per window, written as the windows are drawn."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer: pq.ParquetWriter | None = None

    def write(self, columns: dict[str, np.ndarray]) -> None:
        table = pa.table({name: pa.array(values) for name, values in columns.items()})
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema)
        self.writer.write_table(table, row_group_size=max(table.num_rows, 1))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def run_cell(cell: Cell, settings: Settings, reports: list[Any], data_dir: Path | None,
             bar: tqdm) -> CellRun:
    purpose = FALSE_ALARM if cell.purpose == FALSE_ALARM else POWER
    flags = np.zeros(cell.windows, dtype=bool)
    raw = np.zeros(cell.windows, dtype=bool)
    has_p = True
    writer = ParquetWindows(data_dir / cell_path(cell)) if data_dir and cell.peer_windows else None
    report_seconds, start, first = 0.0, time.perf_counter(), 0.0
    for index in range(cell.windows):
        if index == 1:
            first = time.perf_counter() - start
        values = window_values(settings.seed, purpose, cell.name, cell.n, index)
        window = ours.frame({"x": values})
        report = reports[reference_of_window(index, settings.references)]
        before = time.perf_counter()
        result = ours.report_values(report, window)
        report_seconds += time.perf_counter() - before
        flags[index] = result["x.drifted"] == 1.0
        p_value = result.get("x.p_value")
        has_p = has_p and p_value is not None
        raw[index] = p_value is not None and p_value < settings.alpha
        if writer is not None and index < cell.peer_windows:
            writer.write({"x": values})
        bar.update(1)
    if writer is not None:
        writer.close()
    wall = time.perf_counter() - start
    return CellRun(flags, raw if has_p else None, report_seconds, wall,
                   first if cell.windows > 1 else wall)


def cell_path(cell: Cell) -> str:
    return f"cells/{cell.id.replace('/', '__')}.parquet"


def family_reports(settings: Settings, data_dir: Path | None) -> tuple[dict[str, list[Any]],
                                                                      float]:
    """One fitted report per family and reference draw (and the draws, for the peers)."""
    reports: dict[str, list[Any]] = {}
    fit_seconds = 0.0
    for family, spec in FAMILIES.items():
        reports[family] = []
        for r in range(settings.references):
            values = reference_values(settings.seed, family, settings.reference_rows, r)
            start = time.perf_counter()
            reports[family].append(ours.fit_report({"x": values}, {"x": spec.kind},
                                                   f"{family}-{r}"))
            fit_seconds += time.perf_counter() - start
            if data_dir is not None:
                pq.write_table(pa.table({"x": pa.array(values)}),
                               data_dir / reference_path(family, r))
    return reports, fit_seconds


def reference_path(family: str, index: int) -> str:
    return f"references/{family}_{index}.parquet"


# -- family-wise ---------------------------------------------------------------------


@dataclass
class FamilywiseRun:
    flags: np.ndarray  # any (segment, column) flagged by the window pass
    unadjusted_flags: np.ndarray  # the same, each segment valued on its own
    flagged_tests: np.ndarray  # how many (segment, column) flags per window
    flagged_by_family: dict[str, int]  # those flags by the column's family, over all windows
    correction: str
    report_seconds: float
    wall_seconds: float
    first_seconds: float  # the first window: it pays for the nulls' simulation at each size
    fit_seconds: float


def run_familywise(settings: Settings, data_dir: Path | None) -> FamilywiseRun:
    columns = familywise_columns()
    kinds = {name: FAMILIES[family].kind for name, family in columns.items()}
    reports, fit_seconds = [], 0.0
    for r in range(settings.references):
        values = familywise_frame_values(settings.seed, FAMILYWISE_REFERENCE, columns,
                                         settings.reference_rows, r)
        start = time.perf_counter()
        reports.append(ours.fit_report(values, kinds, f"familywise-{r}"))
        fit_seconds += time.perf_counter() - start
        if data_dir is not None:
            pq.write_table(pa.table({c: pa.array(v) for c, v in values.items()}),
                           data_dir / reference_path("familywise", r))
    writers = [ParquetWindows(data_dir / f"familywise/segment_{s:02d}.parquet")
               if data_dir is not None and settings.peer_familywise_windows else None
               for s in range(len(FAMILYWISE_SEGMENTS))]
    windows = settings.familywise_windows
    flags = np.zeros(windows, dtype=bool)
    unadjusted = np.zeros(windows, dtype=bool)
    counts = np.zeros(windows, dtype=np.int64)
    by_family = dict.fromkeys(FAMILIES, 0)
    report_seconds, start, first = 0.0, time.perf_counter(), 0.0
    bar = tqdm(total=windows, desc="ours family-wise", unit="win", smoothing=0.05)
    for index in range(windows):
        if index == 1:
            first = time.perf_counter() - start
        report = reports[reference_of_window(index, settings.references)]
        states = {}
        for s, n in enumerate(FAMILYWISE_SEGMENTS):
            values = familywise_frame_values(settings.seed, FAMILYWISE, columns, n, index, s)
            before = time.perf_counter()
            states[ours.segment_name(s)] = ours.state(report, ours.frame(values))
            report_seconds += time.perf_counter() - before
            writer = writers[s]
            if writer is not None and index < settings.peer_familywise_windows:
                writer.write(values)
        before = time.perf_counter()
        together = ours.window_values(report, states)
        report_seconds += time.perf_counter() - before
        counts[index] = sum(ours.drifted(v, kinds) for v in together.values())
        for v in together.values():
            for column, family in columns.items():
                by_family[family] += ours.drifted(v, [column])
        flags[index] = counts[index] > 0
        unadjusted[index] = any(ours.drifted(v, kinds)
                                for v in ours.segment_values(report, states).values())
        bar.update(1)
    bar.close()
    for writer in writers:
        if writer is not None:
            writer.close()
    wall = time.perf_counter() - start
    return FamilywiseRun(flags, unadjusted, counts, by_family, ours.correction_in_use(reports[0]),
                         report_seconds, wall, first if windows > 1 else wall, fit_seconds)


# -- peers ---------------------------------------------------------------------------


def write_plan(data_dir: Path, settings: Settings, cells: list[Cell]) -> None:
    plan = {
        "seed": settings.seed,
        "reference_rows": settings.reference_rows,
        "references_per_family": settings.references,  # window i uses draw i mod this
        "kinds": {name: family.kind for name, family in FAMILIES.items()},
        "references": {
            name: [reference_path(name, r) for r in range(settings.references)]
            for name in [*FAMILIES, "familywise"]
        },
        "cells": [{"id": c.id, "family": c.family, "n": c.n, "windows": c.peer_windows,
                   "path": cell_path(c), "report_check": c.report_check}
                  for c in cells if c.peer_windows],
        "familywise": {
            "windows": settings.peer_familywise_windows,
            "columns": {name: FAMILIES[family].kind
                        for name, family in familywise_columns().items()},
            "segments": [{"label": ours.segment_name(s), "n": n,
                          "path": f"familywise/segment_{s:02d}.parquet"}
                         for s, n in enumerate(FAMILYWISE_SEGMENTS)],
        } if settings.peer_familywise_windows else None,
    }
    (data_dir / "plan.json").write_text(json.dumps(plan, indent=1))


def run_peer(name: str, data_dir: Path) -> dict[str, Any]:
    venv, script = PEER_RUNNERS[name]
    python = venv / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"{python} is missing: run scripts/setup_peers.sh first "
                         "(or --peers none)")
    start = time.perf_counter()
    # stderr is not captured: the runner's progress shows as it goes.
    process = subprocess.run([str(python), str(script), str(data_dir)], stdout=subprocess.PIPE,
                             text=True, cwd=ROOT, env={**os.environ, **TELEMETRY_OFF})
    if process.returncode != 0:
        sys.stderr.write(process.stdout[-4000:])
        raise SystemExit(f"peer runner {name} failed with exit code {process.returncode}")
    lines = [line for line in process.stdout.splitlines() if line.startswith("{")]
    result: dict[str, Any] = json.loads(lines[-1])
    result["wall_seconds"] = time.perf_counter() - start
    return result


# -- time ----------------------------------------------------------------------------


def time_against_baseline(report: Callable[[], object], baseline: Callable[[], object],
                          repeats: int) -> dict[str, float]:
    """Best-of-``repeats`` seconds of each, interleaved as bench/drift.py does, and the
    ratio report / baseline. Point it at any two callables."""
    seconds, _ = best_of_interleaved(repeats, {"report": report, "baseline": baseline})
    return {"report_seconds": seconds["report"], "baseline_seconds": seconds["baseline"],
            "ratio": seconds["report"] / seconds["baseline"]}


def report_and_count_only(settings: Settings) -> tuple[Callable[[], object],
                                                       Callable[[], object]]:
    """bench/drift.py's pair: the default report on its frames, and counting the same
    values over the same bins (``bench.drift.count_only``)."""
    frames = make_frames(settings.seed, settings.timing_reference_rows,
                         settings.timing_current_rows)
    profile = ReferenceProfile.fit(frames.reference, name="training")
    report = drift([*frames.numeric, *frames.categorical], profile)
    return (lambda: ours.report_values(report, frames.current),
            lambda: count_only(profile, frames.current, frames.numeric, frames.categorical))


# -- figures -------------------------------------------------------------------------


@dataclass
class Tool:
    """One tool's flags per cell (and family-wise), as rates."""

    name: str
    cells: dict[str, Rate] = field(default_factory=dict)
    familywise: Rate | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # per cell id


def rate_of(flags: str | np.ndarray) -> Rate:
    if isinstance(flags, str):
        return Rate(flags.count("1"), len(flags))
    return Rate(int(np.count_nonzero(flags)), len(flags))


def peer_tools(results: dict[str, dict[str, Any]]) -> dict[str, Tool]:
    tools = {}
    for result in results.values():
        for variant, figures in result["variants"].items():
            tool = Tool(variant)
            for cell_id, cell in figures["cells"].items():
                tool.cells[cell_id] = rate_of(cell["flags"])
                tool.seconds[cell_id] = cell["seconds"]
            if figures.get("familywise"):
                tool.familywise = rate_of(figures["familywise"]["flags"])
            tools[variant] = tool
    return tools


def false_alarm_table(tool: Tool, cells: list[Cell], sizes: tuple[int, ...]) -> list[str]:
    lines = [f"  {'family':14}" + "".join(f"{n:>20,}" for n in sizes)]
    for family in FAMILIES:
        row = f"  {family:14}"
        for n in sizes:
            rate = tool.cells.get(f"false_alarm/{family}/{n}")
            row += f"{rate.text() if rate else '-':>20}"
        lines.append(row)
    return lines


def power_rows(tools: dict[str, Tool], cells: list[Cell]) -> tuple[list[str], list[dict]]:
    """The power table and issue 13's check per cell and peer."""
    peers = [name for name in tools if name != "ours"]
    header = f"  {'scenario':16} {'n':>6} {'ours: power (false alarms)':>28}" + "".join(
        f"  {name + ': power (fa)':>28}" for name in peers)
    lines, checks = [header], []
    mine = tools["ours"]
    for cell in (c for c in cells if c.purpose == POWER):
        power, false = mine.cells[cell.id], mine.cells.get(cell.false_alarm_id)
        if false is None:  # no false-alarm cell at this size (--sizes): nothing to check
            lines.append(f"  {cell.name:16} {cell.n:>6} {power.text(0):>18}")
            continue
        row = f"  {cell.name:16} {cell.n:>6} {power.text(0):>18} ({100 * false.rate:4.1f}%)"
        for name in peers:
            peer = tools[name]
            if cell.id not in peer.cells or cell.false_alarm_id not in peer.cells:
                row += f"  {'-':>28}"
                continue
            check = power_check(power, false, peer.cells[cell.id], peer.cells[cell.false_alarm_id])
            checks.append({"scenario": cell.name, "n": cell.n, "peer": name, **check})
            mark = ("ok" if check["ok"] else "LOWER!" if check["surely_lower"] else "lower"
                    ) if check["applies"] else "n/a"
            row += (f"  {peer.cells[cell.id].text(0):>15} "
                    f"({100 * peer.cells[cell.false_alarm_id].rate:4.1f}%) {mark:>6}")
        lines.append(row)
    return lines, checks


def estimate_full_run(settings: Settings, cells: list[Cell], runs: dict[str, CellRun],
                      familywise: FamilywiseRun | None, peers: dict[str, dict[str, Any]],
                      timing_seconds: float) -> dict[str, float]:
    """Seconds a run with FULL's window counts would take, from this run's per-window times
    (per cell, so the mix of sizes is right; ours' first window of a cell apart, as it pays
    once for simulating the nulls at that size)."""

    def scaled(first: float, wall: float, windows: int, full: int) -> float:
        if windows < 2:
            return wall * full / max(windows, 1)
        return first + (wall - first) / (windows - 1) * (full - 1)

    estimate: dict[str, float] = {}
    estimate["ours"] = sum(scaled(run.first_seconds, run.wall_seconds, len(run.flags),
                                  FULL.windows) for run in runs.values())
    if familywise is not None and settings.familywise_windows:
        estimate["ours"] += scaled(familywise.first_seconds, familywise.wall_seconds,
                                   settings.familywise_windows, FULL.familywise_windows)
    for name, result in peers.items():
        variant = next(iter(result["variants"].values()))
        seconds = sum(cell["seconds"] * FULL.peer_windows / len(cell["flags"])
                      for cell in variant["cells"].values() if cell["flags"])
        fw = variant.get("familywise")
        if fw and fw["flags"]:
            seconds += fw["seconds"] * FULL.peer_familywise_windows / len(fw["flags"])
        check = result.get("report_check")
        if check and check["windows"]:
            full_checks = sum(FULL.report_check for _ in cells)
            seconds += check["seconds"] / check["windows"] * full_checks
        estimate[name] = seconds
    # The timing is mostly drawing the frames and the nulls' first simulation, which grow
    # far slower than its rows (measured: 16 s at 100k rows x 3, 18 s at 1M rows x 5).
    estimate["time"] = timing_seconds * FULL.timing_repeats / settings.timing_repeats
    estimate["total"] = sum(estimate.values())
    return estimate


def parse_sizes(text: str) -> tuple[int, ...]:
    return tuple(int(part.replace("_", "")) for part in text.split(",") if part)


def settings_from(args: argparse.Namespace) -> Settings:
    settings = QUICK if args.quick else FULL
    overrides = {k: v for k, v in {
        "seed": args.seed, "alpha": args.alpha, "reference_rows": args.reference_rows,
        "references": args.references, "windows": args.windows,
        "peer_windows": args.peer_windows, "familywise_windows": args.familywise_windows,
        "peer_familywise_windows": args.peer_familywise_windows,
        "sizes": parse_sizes(args.sizes) if args.sizes else None,
        "power_sizes": parse_sizes(args.power_sizes) if args.power_sizes else None,
        "peers": (() if args.peers == "none" else tuple(args.peers.split(",")))
        if args.peers is not None else None,
    }.items() if v is not None}
    settings = dataclasses.replace(settings, **overrides)
    if unknown := sorted(set(settings.peers) - set(PEER_RUNNERS)):
        raise SystemExit(f"unknown peers {unknown}: use some of {sorted(PEER_RUNNERS)} or none")
    if not settings.peers:
        settings = dataclasses.replace(settings, peer_windows=0, peer_familywise_windows=0)
    if settings.peer_windows > settings.windows or (
            settings.peer_familywise_windows > settings.familywise_windows):
        raise SystemExit("the peers decide on ours' first windows: --peer-windows must not "
                         "exceed --windows (nor --peer-familywise-windows "
                         "--familywise-windows)")
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="for development: 400 windows a cell for ours, 40 for the peers, "
                             "100/20 family-wise windows, the timing on 100k rows")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--alpha", type=float)
    parser.add_argument("--reference-rows", type=int)
    parser.add_argument("--references", type=int,
                        help="reference draws a family (window i uses draw i mod R); 1: "
                             "the rates are conditional on one reference")
    parser.add_argument("--windows", type=int, help="windows a cell for ours")
    parser.add_argument("--peer-windows", type=int, help="windows a cell for each peer")
    parser.add_argument("--familywise-windows", type=int)
    parser.add_argument("--peer-familywise-windows", type=int)
    parser.add_argument("--sizes", help="false-alarm window sizes, e.g. 50,200,1000")
    parser.add_argument("--power-sizes", help="power window sizes, e.g. 200,1000,10000")
    parser.add_argument("--peers", help="evidently,nannyml (default) or none")
    parser.add_argument("--skip-time", action="store_true", help="leave the timing out")
    parser.add_argument("--keep-data", type=Path,
                        help="write the peers' Parquet files here and keep them")
    args = parser.parse_args()
    settings = settings_from(args)
    started = time.perf_counter()
    load_before = os.getloadavg()
    cells = make_cells(settings)

    with tempfile.TemporaryDirectory(prefix="drift-calibration-") as tmp:
        data_dir = (args.keep_data or Path(tmp)) if settings.peers else None
        if data_dir is not None:
            for sub in ("cells", "references", "familywise"):
                (data_dir / sub).mkdir(parents=True, exist_ok=True)
            write_plan(data_dir, settings, cells)

        reports, fit_seconds = family_reports(settings, data_dir)
        runs: dict[str, CellRun] = {}
        bar = tqdm(total=sum(c.windows for c in cells), desc="ours", unit="win", smoothing=0.05)
        for cell in cells:
            bar.set_postfix_str(cell.id)
            runs[cell.id] = run_cell(cell, settings, reports[cell.family], data_dir, bar)
        bar.close()
        familywise = run_familywise(settings, data_dir) if settings.familywise_windows else None
        ours_seconds = time.perf_counter() - started

        peer_results: dict[str, dict[str, Any]] = {}
        for name in settings.peers:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            assert data_dir is not None
            peer_results[name] = run_peer(name, data_dir)

    timing: dict[str, Any] = {}
    timing_seconds = 0.0
    if not args.skip_time:
        print("timing the report against count-only ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        report, baseline = report_and_count_only(settings)
        timing |= time_against_baseline(report, baseline, settings.timing_repeats)
        timing_seconds = time.perf_counter() - start
        timing |= {"target_ratio": TIME_TARGET, "met": timing["ratio"] <= TIME_TARGET,
                   "reference_rows": settings.timing_reference_rows,
                   "current_rows": settings.timing_current_rows,
                   "repeats": settings.timing_repeats,
                   "baseline": "bench.drift.count_only"}

    mine = Tool("ours")
    mine_shared = Tool("ours_on_peer_windows")
    raw = Tool("ours_raw_p_below_alpha")
    for cell in cells:
        run = runs[cell.id]
        mine.cells[cell.id] = rate_of(run.flags)
        mine.seconds[cell.id] = run.report_seconds
        mine_shared.cells[cell.id] = rate_of(run.flags[:cell.peer_windows])
        if run.raw_p_flags is not None:
            raw.cells[cell.id] = rate_of(run.raw_p_flags)
    if familywise is not None:
        mine.familywise = rate_of(familywise.flags)
    tools = {"ours": mine, **peer_tools(peer_results)}

    alpha = settings.alpha
    false_ids = [c.id for c in cells if c.purpose == FALSE_ALARM]
    summaries = {
        name: calibration_summary({i: tool.cells[i] for i in false_ids if i in tool.cells},
                                  alpha, 2 * alpha, 1.5 * alpha)
        for name, tool in tools.items()
    }
    power_lines, checks = power_rows(tools, cells)
    applicable = [c for c in checks if c["applies"]]
    elapsed = time.perf_counter() - started
    load_after = os.getloadavg()

    # -- printed figures --
    print(f"drift calibration: alpha = {alpha:g}, seed {settings.seed}, reference "
          f"{settings.reference_rows:,} rows x {settings.references} draw(s) a family "
          f"(profiles fitted in {fit_seconds:.1f} s), {elapsed:.0f} s in all "
          f"(ours {ours_seconds:.0f} s); load {load_before[0]:.1f} -> {load_after[0]:.1f} "
          f"on {os.cpu_count()} cores")
    for name, result in peer_results.items():
        print(f"  {name} {result['version']} (python {result['python']}, pandas "
              f"{result['pandas']}): {result['wall_seconds']:.0f} s")
    print(f"\nfalse alarms per column-window, no drift: rate [95% Wilson]; ours' target <= "
          f"{2 * alpha:.1%} a cell, <= {1.5 * alpha:.1%} pooled")
    for name, tool in tools.items():
        summary = summaries[name]
        windows = next(iter(tool.cells.values())).windows if tool.cells else 0
        print(f" {name} ({windows:,} windows a cell): pooled "
              f"{pooled(tool.cells[i] for i in false_ids if i in tool.cells).text(2)}; "
              f"cells over {2 * alpha:.0%}: {len(summary['over_limit'])} of "
              f"{len(summary['cells'])} ({len(summary['surely_over_limit'])} beyond noise)"
              + (f"; target {'met' if summary['met'] else 'NOT met'}" if name == "ours" else ""))
        for line in false_alarm_table(tool, cells, settings.sizes):
            print(line)
    if "evidently" in peer_results:
        methods = peer_results["evidently"]["methods"]
        print("  evidently's statistic: " + ", ".join(
            f"{family} {'/'.join(methods.get(f'false_alarm/{family}/{settings.sizes[0]}', []))}"
            for family in FAMILIES))
        check = peer_results["evidently"]["report_check"]
        print(f"  evidently's full Report run on {check['windows']} windows: "
              f"{len(check['disagreements'])} disagreement(s) with the decisions used")
    if "nannyml" in peer_results:
        degenerate = peer_results["nannyml"]["variants"]["nannyml"]["degenerate"]
        print(f"  nannyml's default threshold is degenerate (< 2 reference chunks) in "
              f"{len(degenerate)} cells: windows of "
              f"{sorted({int(i.rsplit('/', 1)[1]) for i in degenerate})} events")
    if raw.cells:
        print(" ours, raw p-value < alpha (before the effect-size floor and the correction): "
              f"pooled {pooled(raw.cells[i] for i in false_ids).text(2)}")

    print(f"\nfamily-wise: {len(familywise_columns())} columns x {len(FAMILYWISE_SEGMENTS)} "
          f"segments ({', '.join(map(str, FAMILYWISE_SEGMENTS))} events), any flag in a "
          f"window; ours' target <= {alpha:.0%}")
    if familywise is not None:
        print(f"  ours: {mine.familywise.text(2) if mine.familywise else '-'} "
              f"(correction: {familywise.correction}; each segment on its own: "
              f"{rate_of(familywise.unadjusted_flags).text(2)}; mean flagged tests a window "
              f"{familywise.flagged_tests.mean():.2f}; by family "
              f"{ {k: v for k, v in familywise.flagged_by_family.items() if v} })")
    for name, tool in tools.items():
        if name != "ours" and tool.familywise is not None:
            print(f"  {name}: {tool.familywise.text(1)}")

    print("\npower at alpha (same windows as the peers' first ones); in brackets the false-"
          "alarm rate of the family at that n; check: where the peer's false alarms <= ours,"
          " our power >= the peer's (LOWER! = beyond noise)")
    for line in power_lines:
        print(line)
    print(f"  check: {sum(c['ok'] for c in applicable)} of {len(applicable)} applicable "
          f"(cell, peer) pairs ok, {sum(c['surely_lower'] for c in applicable)} lower beyond "
          f"noise")
    if timing:
        print(f"\ntime: report {timing['report_seconds'] * 1e3:.1f} ms vs count-only "
              f"{timing['baseline_seconds'] * 1e3:.1f} ms = {timing['ratio']:.2f}x (target "
              f"<= {TIME_TARGET}x: {'met' if timing['met'] else 'NOT met'}), "
              f"{settings.timing_current_rows:,} rows")

    estimate = (estimate_full_run(settings, cells, runs, familywise, peer_results,
                                  timing_seconds) if args.quick else None)
    if estimate:
        print(f"\nestimated full run: {estimate['total'] / 60:.0f} min ("
              + ", ".join(f"{k} {v / 60:.0f}" for k, v in estimate.items() if k != "total")
              + " min)")

    figures: dict[str, Any] = {
        "benchmark": "drift_calibration",
        "quick": args.quick,
        "settings": dataclasses.asdict(settings),
        "families": {name: f.about for name, f in FAMILIES.items()},
        "scenarios": {name: {"family": s.family, "about": s.about}
                      for name, s in SCENARIOS.items()},
        "versions": {name: r["version"] for name, r in peer_results.items()},
        "false_alarms": summaries,
        "false_alarms_ours_raw_p": {i: raw.cells[i].to_dict() for i in raw.cells},
        "familywise": {
            "columns": len(familywise_columns()),
            "segments": list(FAMILYWISE_SEGMENTS),
            "target": alpha,
            "correction": familywise.correction if familywise else None,
            "rates": {name: tool.familywise.to_dict() for name, tool in tools.items()
                      if tool.familywise is not None},
            "ours_segments_on_their_own": rate_of(familywise.unadjusted_flags).to_dict()
            if familywise else None,
            "ours_flags_by_family": familywise.flagged_by_family if familywise else None,
            "met": bool(mine.familywise and mine.familywise.rate <= alpha),
        },
        "power": {name: {c.id: tool.cells[c.id].to_dict() for c in cells
                         if c.purpose == POWER and c.id in tool.cells}
                  for name, tool in {**tools, "ours_on_peer_windows": mine_shared}.items()},
        "power_checks": checks,
        "power_check_met": all(c["ok"] for c in checks),
        "power_check_surely_lower": [c for c in checks if c["surely_lower"]],
        "ours_on_peer_windows": {i: r.to_dict() for i, r in mine_shared.cells.items()},
        "evidently_methods": peer_results.get("evidently", {}).get("methods"),
        "evidently_report_check": peer_results.get("evidently", {}).get("report_check"),
        "nannyml_degenerate_cells": peer_results.get("nannyml", {}).get(
            "variants", {}).get("nannyml", {}).get("degenerate"),
        "nannyml_default_thresholds": peer_results.get("nannyml", {}).get("default_thresholds"),
        "time": timing,
        "seconds": {
            "total": elapsed, "ours": ours_seconds, "ours_fit": fit_seconds,
            "ours_report_per_window": {c.id: runs[c.id].report_seconds / c.windows
                                       for c in cells},
            "ours_first_window": {c.id: runs[c.id].first_seconds for c in cells},
            "ours_familywise_report": familywise.report_seconds if familywise else None,
            "ours_familywise_first_window": familywise.first_seconds if familywise else None,
            **{name: r["wall_seconds"] for name, r in peer_results.items()},
            # per runner: NannyML's two variants are one run
            "peer_per_window": {name: {i: tool.seconds[i] / tool.cells[i].windows
                                       for i in tool.seconds if tool.cells[i].windows}
                                for name, tool in tools.items() if name in peer_results},
        },
        "full_run_estimate_seconds": estimate,
        "load_average": [load_before[0], load_after[0]],
        "cores": os.cpu_count(),
    }
    print(json.dumps(figures, allow_nan=True, default=_json_default))


def _json_default(value: object) -> object:
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    raise TypeError(f"not JSON: {value!r}")


if __name__ == "__main__":
    main()
