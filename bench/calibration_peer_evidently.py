"""Evidently's drift decisions on bench/drift_calibration.py's windows (runs in .peers/evidently).

    .peers/evidently/bin/python bench/calibration_peer_evidently.py DATA_DIR

The decision is ``Report([DataDriftPreset()])``'s, with its defaults: for each column
``ValueDrift`` calls ``get_one_column_drift``, which drops infinities and nulls, picks the
statistic with ``get_stattest(reference, current, column_type, None)`` (reference over
1,000 values: normed Wasserstein for numeric columns with more than 5 distinct values,
Jensen–Shannon for the others and for categorical columns; threshold 0.1) and applies it
with the default threshold. A full report takes 0.4–2.5 s a window, almost all of it
building plotly widgets, so every window is decided by those two calls alone (10–160 ms),
and the first ``report_check`` windows of each cell also by the full report: score and
flag must agree (``report_check`` in the output counts the windows compared and any
disagreement).

Family-wise: a window is flagged when any column of any segment is; the runner stops at
the first flagged (segment, column) of a window (Evidently has no correction across
columns, so the rest cannot unflag it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ["DO_NOT_TRACK"] = "1"  # Evidently's telemetry switch

import evidently
import numpy as np
import pandas as pd
from calibration_peer_common import (
    Progress,
    emit,
    flags_text,
    load_plan,
    reference_frame,
    total_windows,
    window_frames,
)
from evidently import DataDefinition, Dataset, Report
from evidently.legacy.calculations.stattests.registry import get_stattest
from evidently.legacy.core import ColumnType
from evidently.presets import DataDriftPreset

COLUMN_TYPES = {"numeric": ColumnType.Numerical, "categorical": ColumnType.Categorical}
SCORE_TOLERANCE = 1e-12


def clean(series: pd.Series) -> pd.Series:
    """What get_one_column_drift does to both columns before the test."""
    return series.replace([-np.inf, np.inf], np.nan).dropna()


def decide(reference: pd.Series, current: pd.Series, kind: str) -> tuple[float, bool, str]:
    """Evidently's default test of one column: score, drift flag, statistic's name."""
    column_type = COLUMN_TYPES[kind]
    current = clean(current)
    test = get_stattest(reference, current, column_type, None)
    result = test(reference, current, column_type, None)
    return float(result.drift_score), bool(result.drifted), test.display_name


def full_report(reference: pd.DataFrame, current: pd.DataFrame, kinds: dict[str, str]
                ) -> dict[str, tuple[float, bool]]:
    """``Report([DataDriftPreset()])``: per column, the ValueDrift score and flag."""
    definition = DataDefinition(
        numerical_columns=[c for c, k in kinds.items() if k == "numeric"],
        categorical_columns=[c for c, k in kinds.items() if k == "categorical"],
    )
    snapshot = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )
    values = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            value = float(metric["value"])
            values[config["column"]] = (value, value >= config["threshold"])
    return values


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    plan = load_plan(args.data_dir)
    references = plan["references_per_family"]
    progress = Progress(total_windows(plan), "evidently")

    cells: dict[str, Any] = {}
    methods: dict[str, list[str]] = {}
    check: dict[str, Any] = {"windows": 0, "disagreements": [], "seconds": 0.0}
    for cell in plan["cells"]:
        family, kind = cell["family"], plan["kinds"][cell["family"]]
        raw = [reference_frame(args.data_dir, plan, family, r) for r in range(references)]
        cleaned = [clean(frame["x"]) for frame in raw]
        flags, scores, names, start = [], [], set(), time.perf_counter()
        for index, frame in window_frames(args.data_dir, cell["path"], cell["windows"]):
            r = index % references
            score, drifted, name = decide(cleaned[r], frame["x"], kind)
            flags.append(drifted)
            scores.append(score)
            names.add(name)
            progress.update()
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        for index, frame in window_frames(args.data_dir, cell["path"], cell["report_check"]):
            r = index % references
            report_score, report_drifted = full_report(raw[r], frame, {"x": kind})["x"]
            check["windows"] += 1
            if report_drifted != flags[index] or not (
                    abs(report_score - scores[index]) <= SCORE_TOLERANCE):
                check["disagreements"].append({"cell": cell["id"], "window": index,
                                               "report": [report_score, report_drifted]})
        check["seconds"] += time.perf_counter() - start
        cells[cell["id"]] = {"flags": flags_text(flags), "seconds": seconds}
        methods[cell["id"]] = sorted(names)

    familywise = None
    if plan.get("familywise"):
        familywise = run_familywise(args.data_dir, plan, progress)
    progress.close()
    emit("evidently", evidently.__version__, {
        "variants": {"evidently": {"cells": cells, "familywise": familywise}},
        "methods": methods,
        "report_check": check,
    })


def run_familywise(data_dir: Path, plan: dict[str, Any], progress: Progress) -> dict[str, Any]:
    layout = plan["familywise"]
    kinds: dict[str, str] = layout["columns"]
    references = [reference_frame(data_dir, plan, "familywise", r)
                  for r in range(plan["references_per_family"])]
    cleaned = [{c: clean(frame[c]) for c in kinds} for frame in references]
    segments = [window_frames(data_dir, s["path"], layout["windows"]) for s in layout["segments"]]
    flags, evaluated, start = [], 0, time.perf_counter()
    for window in range(layout["windows"]):
        reference = cleaned[window % len(cleaned)]
        flagged = False
        for segment in segments:
            _, frame = next(segment)  # every segment file is read in step, window by window
            for column, kind in kinds.items():
                if flagged:
                    break
                evaluated += 1
                flagged = decide(reference[column], frame[column], kind)[1]
            progress.update()
        flags.append(flagged)
    return {"flags": flags_text(flags), "seconds": time.perf_counter() - start,
            "columns_evaluated": evaluated, "short_circuit": True}


if __name__ == "__main__":
    main()
