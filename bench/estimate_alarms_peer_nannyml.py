"""NannyML's CBPE alerts on bench/estimate_alarms.py's weeks (runs in .peers/nannyml).

    .peers/nannyml/bin/python bench/estimate_alarms_peer_nannyml.py DATA_DIR

NannyML 0.13 has no segments, so each country gets a ``CBPE`` of its own, as a NannyML
user would set it up: ``roc_auc`` only, the model's 0/1 ``prediction`` as ``y_pred``,
chunked by the hour (``chunk_period="h"`` on ``ts``), its default calibration (isotonic)
and default threshold (3 standard deviations around the realized ROC AUC of the reference's
chunks, that is of the country's reference hours), fitted on the country's rows of the
week's reference. The alerts are its result's ``alert`` column, per chunk.

Reads DATA_DIR/plan.json (the weeks) and waits for each week's files, which the
benchmark writes as it goes (the two sides run at the same time). Prints one JSON object:
per week and country, each chunk's hour (after the week's start), estimate, alert and the
two thresholds.
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

WAIT_SECONDS = 900.0  # for one week's files: the benchmark's side takes ~15 s a week


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"{path} did not appear within {WAIT_SECONDS:.0f} s")
        time.sleep(0.5)


def country_alerts(reference: pd.DataFrame, week: pd.DataFrame, start: pd.Timestamp
                   ) -> dict[str, object]:
    estimator = nannyml.CBPE(y_pred_proba="score", y_pred="prediction", y_true="click",
                             problem_type="classification_binary", metrics=["roc_auc"],
                             timestamp_column_name="ts", chunk_period="h")
    estimator.fit(reference)
    result = estimator.estimate(week).filter(period="analysis").to_df()
    # Hourly periods drop the time zone: the chunk starts are naive UTC.
    starts = pd.to_datetime(result[("chunk", "start_date")]).dt.tz_localize("UTC")
    auc = result["roc_auc"]
    return {"hour": ((starts - start) // pd.Timedelta(hours=1)).astype(int).tolist(),
            "value": auc["value"].astype(float).tolist(),
            "alert": auc["alert"].astype(bool).tolist(),
            "lower_threshold": float(auc["lower_threshold"].iloc[0]),
            "upper_threshold": float(auc["upper_threshold"].iloc[0])}


def main() -> None:
    data_dir = Path(sys.argv[1])
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    plan = json.loads((data_dir / "plan.json").read_text())
    start = pd.Timestamp(plan["start"])
    out: dict[str, object] = {"tool": "nannyml", "version": nannyml.__version__}
    weeks: dict[str, object] = {}
    seconds = 0.0
    for week in plan["weeks"]:
        wait_for(data_dir / week["events"])
        began = time.perf_counter()
        reference = pd.read_parquet(data_dir / week["reference"])
        events = pd.read_parquet(data_dir / week["events"])
        weeks[str(week["seed"])] = {
            country: country_alerts(
                reference[reference["country"] == country].drop(columns="country"),
                events[events["country"] == country].drop(columns="country"), start)
            for country in plan["countries"]}
        seconds += time.perf_counter() - began
        print(f"nannyml: week {week['seed']} done", file=sys.stderr, flush=True)
    out["weeks"] = weeks
    out["seconds"] = seconds
    print(json.dumps(out))


if __name__ == "__main__":
    main()
