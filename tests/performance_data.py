"""A binary classifier's predictions with a covariate shift half-way, their labels arriving
hours later, and an app that estimates its performance and realizes it from the labels.

The rows come from :func:`tests.test_estimation.simulate`: the score orders rows as the true
probability does, and the shift moves the features so the model ranks them less well (its
realized AUC drops) while the chance of a positive given the features stays — the case
an estimate of performance is meant to catch before the labels confirm it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import metrics
from metrics.drift import ReferenceProfile
from monitor import Labels, Monitor, Threshold
from tests.test_estimation import simulate

START = pd.Timestamp("2026-03-02T00:00:00Z")
HOURS = 24
SHIFT_HOUR = 12  # the covariate shift starts with this hour's window
PER_HOUR = 1_500
LABEL_DELAY = pd.Timedelta("3h")  # the mean delay of a label (exponential)
DEVICES = ("ios", "web")
PREDICTION_SCHEMA = {"prediction_id": "str", "score": "float", "predicted": "bool",
                     "device": "str"}
LABEL_SCHEMA = {"prediction_id": "str", "clicked": "bool"}


def reference_profile(seed: int = 21) -> ReferenceProfile:
    """The calibration of ``score`` against ``clicked``, fitted on labelled training rows."""
    rows = simulate(np.random.default_rng(seed), 20_000).rename(columns={"label": "clicked"})
    return ReferenceProfile.fit(rows, ["score"], name="click_training",
                                calibrations=[("score", "clicked")])


def predictions(seed: int = 22, hours: int = HOURS, shift_hour: int = SHIFT_HOUR
                ) -> pd.DataFrame:
    """``PER_HOUR`` predictions an hour, the shift from ``shift_hour`` on; the column
    ``clicked`` is what their labels will say (drop it before a stage sees them)."""
    rng = np.random.default_rng(seed)
    hours_of = []
    for hour in range(hours):
        rows = simulate(rng, PER_HOUR, shift=1.0 if hour >= shift_hour else 0.0)
        offsets = np.sort(rng.integers(0, 3_600_000, PER_HOUR))
        hours_of.append(rows.assign(ts=START + pd.Timedelta(hours=hour)
                                    + pd.to_timedelta(offsets, unit="ms")))
    frame = pd.concat(hours_of, ignore_index=True).rename(columns={"label": "clicked"})
    return frame.assign(prediction_id=[f"p{i}" for i in range(len(frame))],
                        predicted=frame["score"] >= 0.5,
                        device=rng.choice(list(DEVICES), len(frame)).astype(object))


def labels_as_of(preds: pd.DataFrame, as_of: pd.Timestamp, seed: int = 23) -> pd.DataFrame:
    """The labels of ``preds`` that have arrived by ``as_of``: each comes an exponential
    delay (mean :data:`LABEL_DELAY`) after its prediction."""
    rng = np.random.default_rng(seed)
    delay = pd.to_timedelta(rng.exponential(LABEL_DELAY / pd.Timedelta("1ms"), len(preds)),
                            unit="ms")
    arrived = preds["ts"] + delay
    keep = arrived <= as_of
    return pd.DataFrame({"ts": arrived[keep], "prediction_id": preds["prediction_id"][keep],
                         "clicked": preds["clicked"][keep]}).reset_index(drop=True)


def performance_app(auc_below: float = 0.775) -> Monitor:
    """An estimate of the click model's performance per device, alerting when its
    estimated ROC AUC falls below ``auc_below``, and the AUC and accuracy realized from
    the click labels. The estimate's reference is ``"click_training"``: pass
    :func:`reference_profile` to the stage."""
    mon = Monitor("performance")
    mon.stream("scored", table="scored", schema=PREDICTION_SCHEMA)
    mon.stream("clicks", table="clicks", schema=LABEL_SCHEMA)
    labels = Labels("clicks", on="prediction_id", horizon="1d", mature_at=0.9)
    mon.metric("click_estimate", "scored",
               metrics.estimated_performance("score", "clicked", "click_training"),
               window="1h", segment_by=["device"],
               alerts=[Threshold(field="estimated_roc_auc", below=auc_below)],
               owner="ranking", description="The click model's performance, estimated "
               "from its scores before the clicks arrive.")
    mon.metric("click_auc", "scored", metrics.auc("clicked", "score"), window="1h",
               segment_by=["device"], labels=labels, owner="ranking")
    mon.metric("click_accuracy", "scored", metrics.accuracy("clicked", "predicted"),
               window="1h", segment_by=["device"], labels=labels, owner="ranking")
    return mon
