"""NannyML's univariate drift, as a runner of bench/peers.py (runs in .peers/nannyml).

    .peers/nannyml/bin/python bench/peer_nannyml.py DATA_DIR [--repeats 3]

``UnivariateDriftCalculator`` over every column with Jensen–Shannon (NannyML's default
method, in base 2) for continuous and categorical columns alike, the categorical columns
declared (``treat_as_categorical``), one chunk per data set (``chunk_number=1``: the
whole current frame is one report). NannyML's default threshold for Jensen–Shannon is
derived from the spread of the reference chunks' values, which one chunk does not have,
so it is set to a constant 0.1 (``ConstantThreshold(upper=0.1)``, drift when the value is
above it), the threshold our report and Evidently use. ``fit(reference)`` is timed apart
(``fit_seconds``, like our profile fit); the report is ``calculate(current)``.

Its continuous Jensen–Shannon is over its own bins: Doane's rule on the reference
(``np.histogram_bin_edges(reference, 'doane')``), plus one bin for the current values
outside the reference range.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# NannyML sends usage events to a tracking service unless this is set: no network here,
# and a failing upload retries inside the timed calls.
os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"

import nannyml
from nannyml.thresholds import ConstantThreshold
from peer_common import emit, load, measure

THRESHOLD = 0.1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")

    reference, current, meta, load_seconds = load(args.data_dir)
    columns = [*meta["numeric"], *meta["categorical"]]
    calculator = nannyml.UnivariateDriftCalculator(
        column_names=columns,
        treat_as_categorical=meta["categorical"],
        continuous_methods=["jensen_shannon"],
        categorical_methods=["jensen_shannon"],
        chunk_number=1,
        thresholds={"jensen_shannon": ConstantThreshold(upper=THRESHOLD)},
    )
    start = time.perf_counter()
    calculator.fit(reference)
    fit_seconds = time.perf_counter() - start

    figures = measure(lambda: calculator.calculate(current), args.repeats)
    frame = figures["result"].filter(period="analysis").to_df()
    assert len(frame) == 1, f"expected one chunk, got {len(frame)}"

    per_column = {}
    for name in columns:
        value = float(frame[(name, "jensen_shannon", "value")].iloc[0])
        per_column[name] = {
            "method": "js_base2",
            "value": value,
            "threshold": THRESHOLD,
            "drifted": bool(frame[(name, "jensen_shannon", "alert")].iloc[0]),
            "kind": "categorical" if name in meta["categorical"] else "continuous",
        }

    emit("nannyml", nannyml.__version__, {
        **figures,
        "load_seconds": load_seconds,
        "fit_seconds": fit_seconds,
        "js_base": 2,
        "n_drifted": sum(c["drifted"] for c in per_column.values()),
        "columns": per_column,
    })


if __name__ == "__main__":
    main()
