"""Our drift report, as a runner of bench/peers.py (runs in the project's .venv).

    .venv/bin/python bench/peer_ours.py DATA_DIR [--repeats 5]

Fits the reference profile (timed apart: ``fit_seconds``), then times the report on the
current frame, as bench/drift.py does: ``new_state(); update(current); value(state)``.
Besides each column's statistic and drift flag it gives, outside the timing, what the
comparison needs: the Jensen–Shannon distance in base 2 (NannyML's base) for every
column, over our bins, and the binning error bound of each normed Wasserstein distance
(:func:`metrics.drift.stats.wasserstein_binning_error`, divided by the reference std), and
the exact normed Wasserstein of the raw data (scipy) to show the error actually made.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from peer_common import emit, load, measure

from metrics.drift import Drift, NumericProfile, ReferenceProfile, drift, stats
from metrics.drift.methods import MIN_STD, outside_distance


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    reference, current, meta, load_seconds = load(args.data_dir)
    columns = [*meta["numeric"], *meta["categorical"]]

    start = time.perf_counter()
    profile = ReferenceProfile.fit(reference, columns, name="reference")
    fit_seconds = time.perf_counter() - start
    report: Drift = drift(columns, profile)

    def run() -> dict[str, float]:
        state = report.new_state()
        state.update(current)
        return report.value(state)

    figures = measure(run, args.repeats)
    values = figures["result"]

    # Outside the timing: what the comparison with the peers needs.
    state = report.new_state()
    state.update(current)
    js2 = drift(columns, profile, method="js", base=2.0)
    js2_values = js2.value(state)
    per_column = {}
    for name, method in zip(columns, report.column_methods or (), strict=True):
        column = profile.column(name)
        counts = state.column(name)
        entry = {
            "method": method,
            "value": values[f"{name}.{'wasserstein' if method == 'wasserstein' else 'js'}"],
            "drifted": values[f"{name}.drifted"] == 1.0,
            "js_base2": js2_values[f"{name}.js"],
        }
        if isinstance(column, NumericProfile):
            std = max(column.std, MIN_STD)
            assert counts.offsets is not None
            current_means = column.bin_means(counts.counts, counts.offsets)
            entry["bound"] = stats.wasserstein_binning_error(
                np.asarray(column.edges), column.reference_counts(), counts.counts,
                column.reference_means(), current_means,
            ) / std
            entry["exact"] = _exact_wasserstein(reference[name], current[name], std)
            entry["bins"] = len(column.edges) - 1
            entry["outside_share"] = (counts.counts[0] + counts.counts[-1]) / max(counts.n, 1)
            assert math.isfinite(outside_distance(column, counts))
        else:
            entry["categories"] = len(column.categories)
            entry["unseen_share"] = counts.counts[-1] / max(counts.n, 1)
        per_column[name] = entry

    emit("ours", _version(), {
        **figures,
        "load_seconds": load_seconds,
        "fit_seconds": fit_seconds,
        "js_base": "e",
        "n_drifted": int(values["n_drifted"]),
        "columns": per_column,
    })


def _exact_wasserstein(reference, current, std: float) -> float:
    from scipy.stats import wasserstein_distance

    ref = reference.to_numpy(dtype=np.float64, na_value=np.nan)
    cur = current.to_numpy(dtype=np.float64, na_value=np.nan)
    return float(wasserstein_distance(ref[np.isfinite(ref)], cur[np.isfinite(cur)]) / std)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("domain-monitor")
    except PackageNotFoundError:
        return "dev"


if __name__ == "__main__":
    main()
