"""Evidently's data drift report, as a runner of bench/peers.py (runs in .peers/evidently).

    .peers/evidently/bin/python bench/peer_evidently.py DATA_DIR [--repeats 1]

``Report([DataDriftPreset()]).run(current, reference)`` with Evidently's defaults (for
more than 1,000 reference values: normed Wasserstein for numeric columns, Jensen–Shannon
for categorical ones, drift at >= 0.1), on datasets whose column types are declared
(``DataDefinition``) as ours are in the profile. The time covers wrapping the two frames
in ``Dataset.from_pandas`` and running the report (``prepare_seconds`` and
``run_seconds`` say how it splits); Evidently takes the reference in the same call, so it
includes what our profile fit does beforehand. Per column: the ``ValueDrift`` score, its
method and threshold, and the drift flag (score >= threshold).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ["DO_NOT_TRACK"] = "1"  # Evidently's telemetry switch

import evidently
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset
from peer_common import emit, load, measure

METHODS = {"Wasserstein distance (normed)": "wasserstein", "Jensen-Shannon distance": "js"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    reference, current, meta, load_seconds = load(args.data_dir)
    definition = DataDefinition(numerical_columns=meta["numeric"],
                                categorical_columns=meta["categorical"])
    split: list[tuple[float, float]] = []

    def run():
        start = time.perf_counter()
        reference_data = Dataset.from_pandas(reference, data_definition=definition)
        current_data = Dataset.from_pandas(current, data_definition=definition)
        prepared = time.perf_counter()
        snapshot = Report([DataDriftPreset()]).run(current_data=current_data,
                                                   reference_data=reference_data)
        split.append((prepared - start, time.perf_counter() - prepared))
        return snapshot

    figures = measure(run, args.repeats)
    best = min(range(len(split)), key=lambda i: sum(split[i]))

    per_column = {}
    drifted_count = None
    for metric in figures["result"].dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            value = float(metric["value"])
            per_column[config["column"]] = {
                "method": METHODS.get(config["method"], config["method"]),
                "value": value,
                "threshold": config["threshold"],
                "drifted": value >= config["threshold"],
            }
        elif config["type"].endswith(":DriftedColumnsCount"):
            drifted_count = metric["value"]["count"]

    emit("evidently", evidently.__version__, {
        **figures,
        "prepare_seconds": split[best][0],
        "run_seconds": split[best][1],
        "load_seconds": load_seconds,
        "fit_seconds": None,
        "n_drifted": drifted_count,
        "columns": per_column,
    })


if __name__ == "__main__":
    main()
