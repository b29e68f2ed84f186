"""The pure parts of bench/estimation.py: the generated data is the case it says (the chance
of a positive given the score does not move with the shift, realized performance does),
the realized values are scipy's, and a small run prints its figures as one JSON object.
(The full benchmark needs NannyML's venv; these make sure what it measures is what it says.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy.stats import mannwhitneyu

from bench.estimation import realized
from bench.estimation_data import AFTER, BEFORE, predictions, true_probability, windows

ROOT = Path(__file__).resolve().parents[1]


def test_the_chance_of_a_positive_given_the_score_is_the_same_after_the_shift() -> None:
    """Per score decile, the share of positives matches the stated true probability, before
    and after the shift (4 standard errors): what confidence-based estimation relies on."""
    rng = np.random.default_rng(0)
    for inputs in (BEFORE, AFTER):
        frame = predictions(rng, 400_000, inputs)
        score, label = frame["score"].to_numpy(), frame["label"].to_numpy()
        deciles = np.quantile(score, np.linspace(0, 1, 11))
        bins = np.clip(np.searchsorted(deciles, score, side="right") - 1, 0, 9)
        for b in range(10):
            inside = bins == b
            p = true_probability(score[inside])
            share = label[inside].mean()
            error = np.sqrt((p * (1 - p)).sum()) / inside.sum()
            assert abs(share - p.mean()) < 4 * error, (inputs, b)


def test_the_shift_moves_realized_performance_and_realized_values_are_scipys() -> None:
    rng = np.random.default_rng(1)
    frame = windows(rng, 20_000, 2)
    before, after = (realized(frame[frame["window"] == w]) for w in (0, 1))
    assert before["roc_auc"] - after["roc_auc"] > 0.08
    assert before["accuracy"] - after["accuracy"] > 0.05
    first = frame[frame["window"] == 0]
    label = first["label"].to_numpy() == 1
    score = first["score"].to_numpy()
    u = mannwhitneyu(score[label], score[~label]).statistic
    assert before["roc_auc"] == u / (label.sum() * (~label).sum())
    predicted = score >= 0.5
    assert before["accuracy"] == (predicted == label).mean()


def test_a_small_run_prints_its_figures_last() -> None:
    process = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "estimation.py"), "--peer", "none",
         "--reference-rows", "5000", "--sizes", "2000", "--windows", "4", "--repeats", "1"],
        capture_output=True, text=True, check=True, cwd=ROOT)
    figures = json.loads(process.stdout.strip().splitlines()[-1])
    auc = figures["errors"]["2000"]["roc_auc"]
    assert 0 < auc["ours"]["mae"] < 0.05
    assert auc["floor_mae"] > 0
    assert figures["targets"]["auc_mae_at_most_0.02"] == (auc["ours"]["mae"] <= 0.02)
