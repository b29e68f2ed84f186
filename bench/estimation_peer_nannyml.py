"""NannyML's CBPE on bench/estimation.py's windows (runs in .peers/nannyml).

    .peers/nannyml/bin/python bench/estimation_peer_nannyml.py DATA_DIR [REPEATS]

``CBPE`` for binary classification with its defaults (isotonic calibration, used when its
cross-validated check says the scores need it), the five metrics ours estimates, the
model's 0/1 ``prediction`` as ``y_pred`` and ``chunk_size`` the window size: it is fitted
on the reference, and ``estimate`` gets a size's windows concatenated in order, so chunk i
is window i. Fit and estimate are timed apart (data loading excluded), best of REPEATS
runs (default 2); the chunk size is fixed when CBPE is made, so it is fitted once per
size and ``fit_seconds`` lists each size's best fit. Prints one JSON object: per window
size, each metric's estimate and sampling error per window.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path

# NannyML sends usage events to a tracking service unless this is set: no network here.
os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"

import nannyml
import pandas as pd

METRICS = ["roc_auc", "accuracy", "precision", "recall", "f1"]


def cbpe(size: int) -> nannyml.CBPE:
    return nannyml.CBPE(y_pred_proba="score", y_pred="prediction", y_true="label",
                        problem_type="classification_binary", metrics=METRICS,
                        chunk_size=size)


def main() -> None:
    data_dir = Path(sys.argv[1])
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    plan = json.loads((data_dir / "plan.json").read_text())
    reference = pd.read_parquet(data_dir / "reference.parquet")
    out: dict[str, object] = {"tool": "nannyml", "version": nannyml.__version__, "sizes": {}}
    fit_seconds: list[float] = []
    estimate_seconds = 0.0
    for size in plan["sizes"]:
        analysis = pd.read_parquet(data_dir / f"windows_{size}.parquet")
        analysis = analysis.drop(columns=["label"])  # no labels: that is the point
        best_fit = best_estimate = float("inf")
        for _ in range(repeats):
            estimator = cbpe(size)
            start = time.perf_counter()
            estimator.fit(reference.copy())
            fitted = time.perf_counter()
            result = estimator.estimate(analysis).filter(period="analysis").to_df()
            done = time.perf_counter()
            best_fit, best_estimate = min(best_fit, fitted - start), min(best_estimate,
                                                                         done - fitted)
        fit_seconds.append(best_fit)
        estimate_seconds += best_estimate
        if len(result) != plan["windows"]:
            raise SystemExit(f"NannyML made {len(result)} chunks of {len(analysis)} rows at "
                             f"size {size}")
        out["sizes"][str(size)] = {  # type: ignore[index]
            metric: {"value": result[(metric, "value")].astype(float).tolist(),
                     "sampling_error": result[(metric, "sampling_error")].astype(float).tolist()}
            for metric in METRICS
        }
        print(f"nannyml: size {size}: fit {best_fit:.2f} s, estimate {best_estimate:.2f} s",
              file=sys.stderr, flush=True)
    out["fit_seconds"] = fit_seconds
    out["estimate_seconds"] = estimate_seconds
    print(json.dumps(out))


if __name__ == "__main__":
    main()
