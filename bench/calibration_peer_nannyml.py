"""NannyML's drift alerts on bench/drift_calibration.py's windows (runs in .peers/nannyml).

    .peers/nannyml/bin/python bench/calibration_peer_nannyml.py DATA_DIR

``UnivariateDriftCalculator`` with its defaults — Jensen–Shannon (base 2) for continuous
and categorical columns, the categorical ones declared — and the window as its chunk
(``chunk_size=n``): it is fitted on the reference and ``calculate`` gets a cell's windows
concatenated in order, so chunk i is window i. Two decisions from the same values:

- ``nannyml``: its default threshold, ``StandardDeviationThreshold`` — alert above the
  mean + 3 std of the statistic over the reference's own chunks of the window's size.
  Where the reference holds fewer than two such chunks the threshold is degenerate (one
  chunk: the threshold is that chunk's value, 0 for a chunk that is the whole reference,
  and every window alerts); those cells are listed in ``degenerate``;
- ``nannyml_js0.1``: alert above a constant 0.1 (``ConstantThreshold(upper=0.1)``, the
  setting bench/peers.py uses, Evidently's threshold).

Family-wise: one calculator over the report's columns per segment (chunk = the segment's
size); a window is flagged when any column of any segment alerts.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
# NannyML sends usage events to a tracking service unless this is set: no network here.
os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"

import nannyml
import numpy as np
import pandas as pd
from calibration_peer_common import (
    Progress,
    emit,
    flags_text,
    load_plan,
    reference_frame,
    total_windows,
    windows_frame,
)

CONSTANT = 0.1
DEFAULT, CONSTANT_VARIANT = "nannyml", "nannyml_js0.1"


def chunk_values(reference: pd.DataFrame, current: pd.DataFrame, kinds: dict[str, str],
                 n: int) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """Per column: the JS value and default alert of each chunk, and the upper threshold."""
    calculator = nannyml.UnivariateDriftCalculator(
        column_names=list(kinds),
        treat_as_categorical=[c for c, k in kinds.items() if k == "categorical"],
        treat_as_numerical=[c for c, k in kinds.items() if k == "numeric"],
        chunk_size=n,
    )
    calculator.fit(reference)
    frame = calculator.calculate(current).filter(period="analysis").to_df()
    if len(frame) * n != len(current):
        raise SystemExit(f"NannyML made {len(frame)} chunks of {len(current)} rows at size {n}")
    return {
        column: (frame[(column, "jensen_shannon", "value")].to_numpy(dtype=float),
                 frame[(column, "jensen_shannon", "alert")].to_numpy(dtype=bool),
                 float(frame[(column, "jensen_shannon", "upper_threshold")].iloc[0]))
        for column in kinds
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    plan = load_plan(args.data_dir)
    references = plan["references_per_family"]
    reference_rows = plan["reference_rows"]
    progress = Progress(total_windows(plan), "nannyml")

    default: dict[str, Any] = {}
    constant: dict[str, Any] = {}
    thresholds: dict[str, list[float]] = {}
    for cell in plan["cells"]:
        family, n, windows = cell["family"], cell["n"], cell["windows"]
        kinds = {"x": plan["kinds"][family]}
        alerts = np.zeros(windows, dtype=bool)
        over = np.zeros(windows, dtype=bool)
        start = time.perf_counter()
        thresholds[cell["id"]] = []
        for r in range(references):
            indices = [w for w in range(windows) if w % references == r]
            if not indices:
                continue
            values, alert, threshold = chunk_values(
                reference_frame(args.data_dir, plan, family, r),
                windows_frame(args.data_dir, cell["path"], indices), kinds, n)["x"]
            alerts[indices], over[indices] = alert, values > CONSTANT
            thresholds[cell["id"]].append(threshold)
            progress.update(len(indices))
        seconds = time.perf_counter() - start
        default[cell["id"]] = {"flags": flags_text(alerts.tolist()), "seconds": seconds}
        constant[cell["id"]] = {"flags": flags_text(over.tolist()), "seconds": seconds}

    familywise: dict[str, Any] = {DEFAULT: None, CONSTANT_VARIANT: None}
    if plan.get("familywise"):
        familywise = run_familywise(args.data_dir, plan, progress)
    progress.close()
    degenerate = sorted(cell["id"] for cell in plan["cells"] if reference_rows // cell["n"] < 2)
    emit("nannyml", nannyml.__version__, {
        "variants": {
            DEFAULT: {"cells": default, "familywise": familywise[DEFAULT],
                      "degenerate": degenerate},
            CONSTANT_VARIANT: {"cells": constant, "familywise": familywise[CONSTANT_VARIANT]},
        },
        "default_thresholds": thresholds,
    })


def run_familywise(data_dir: Path, plan: dict[str, Any], progress: Progress) -> dict[str, Any]:
    layout = plan["familywise"]
    kinds: dict[str, str] = layout["columns"]
    windows, references = layout["windows"], plan["references_per_family"]
    alerts = np.zeros(windows, dtype=bool)
    over = np.zeros(windows, dtype=bool)
    start = time.perf_counter()
    for segment in layout["segments"]:
        for r in range(references):
            indices = [w for w in range(windows) if w % references == r]
            if not indices:
                continue
            per_column = chunk_values(reference_frame(data_dir, plan, "familywise", r),
                                      windows_frame(data_dir, segment["path"], indices),
                                      kinds, segment["n"])
            for values, alert, _ in per_column.values():
                alerts[indices] |= alert
                over[indices] |= values > CONSTANT
            progress.update(len(indices))
    seconds = time.perf_counter() - start
    return {DEFAULT: {"flags": flags_text(alerts.tolist()), "seconds": seconds},
            CONSTANT_VARIANT: {"flags": flags_text(over.tolist()), "seconds": seconds}}


if __name__ == "__main__":
    main()
