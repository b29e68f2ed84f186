"""Alert rules on an estimate of performance: a Threshold on ``estimated_roc_auc`` fires in
a research backtest at the window where a covariate shift lowers the model's AUC — before
any label arrives — and stays quiet before it."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from monitor.research import backtest, run
from monitor.spec import OVERALL
from tests.performance_data import (
    SHIFT_HOUR,
    START,
    performance_app,
    predictions,
    reference_profile,
)


def realized_auc_per_hour(preds: pd.DataFrame) -> pd.Series:
    """scipy's Mann-Whitney U over positives x negatives of each hour: the exact AUC."""
    hours = (preds["ts"] - START) // pd.Timedelta("1h")
    out = {}
    for hour, rows in preds.groupby(hours):
        positives, negatives = rows["score"][rows["clicked"]], rows["score"][~rows["clicked"]]
        u = mannwhitneyu(positives, negatives).statistic
        out[int(hour)] = float(u) / (len(positives) * len(negatives))
    return pd.Series(out)


def test_threshold_on_the_estimated_auc_fires_when_the_shift_lowers_it() -> None:
    preds = predictions()
    realized = realized_auc_per_hour(preds)
    before, after = realized[realized.index < SHIFT_HOUR], realized[realized.index >= SHIFT_HOUR]
    assert after.max() < before.min()  # the shift lowers the realized AUC in every window
    bound = float((before.mean() + after.mean()) / 2)
    metric = performance_app(auc_below=bound).metrics["click_estimate"]
    unlabelled = preds.drop(columns="clicked")  # the estimate needs no label

    episodes = backtest(metric, unlabelled, reference_profile())
    overall = episodes[episodes["segment"] == OVERALL]
    assert len(overall) == 1, overall
    episode = overall.iloc[0].to_dict()
    assert episode["field"] == "estimated_roc_auc"
    assert episode["fired_window_start"] == START + pd.Timedelta(hours=SHIFT_HOUR)
    assert pd.isna(episode["resolved_window_start"])  # the shift lasts to the end
    assert episode["windows_firing"] == len(after)
    assert float(episode["value"]) < bound

    # The estimate tracks what the labels later say: each window's realized AUC lies in the
    # estimate's band of 3 sampling errors (the stored sampling error is 1 SD).
    values = run(metric, unlabelled, reference_profile()).values
    mine = values[values["segment"] == OVERALL].pivot_table(
        index="window_start", columns="field", values="value")
    estimate = mine["estimated_roc_auc"].to_numpy()
    error = mine["estimated_roc_auc_sampling_error"].to_numpy()
    assert np.all(np.abs(estimate - realized.to_numpy()) <= 3 * error)


def test_the_estimate_stays_quiet_without_a_shift() -> None:
    preds = predictions(shift_hour=10_000)  # never shifted
    realized = realized_auc_per_hour(preds)
    bound = float(realized.min()) - 0.03
    metric = performance_app(auc_below=bound).metrics["click_estimate"]
    episodes = backtest(metric, preds.drop(columns="clicked"), reference_profile())
    assert episodes[episodes["segment"] == OVERALL].empty
