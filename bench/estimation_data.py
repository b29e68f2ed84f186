"""Seeded binary-classification data for bench/estimation.py: a labelled reference and
windows of predictions whose inputs shift half-way.

Four features; the true probability of a positive is ``expit(1.1 x1 - 0.9 x2 + 0.6 x1 x3
+ 0.5 x4 - 0.8)``. The model sees all but ``x4`` and scores ``expit(1.7 m + 0.5)`` with ``m``
the rest of the true logit: it ranks well but not perfectly (it misses ``x4``) and is not
calibrated (too confident, shifted). ``x4`` is independent of the others and never shifts,
so the chance of a positive given the score is the same before and after the shift: the
case confidence-based estimation is made for (a concept shift would break it for every
estimator).

The covariate shift moves the features and narrows them: the scores crowd nearer the
threshold, so realized ROC AUC falls from about 0.80 to 0.69 and accuracy from 0.74 to
0.66.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit, logit

THRESHOLD = 0.5
MODEL_SLOPE, MODEL_OFFSET, HIDDEN_WEIGHT = 1.7, 0.5, 0.5


@dataclass(frozen=True)
class Inputs:
    """How the features are drawn: means and standard deviations of x1, x2, x3."""

    means: tuple[float, float, float]
    stds: tuple[float, float, float]


BEFORE = Inputs(means=(0.0, 0.0, 0.0), stds=(1.0, 1.0, 1.0))
AFTER = Inputs(means=(0.4, 0.2, -0.3), stds=(0.5, 0.6, 0.8))


def predictions(rng: np.random.Generator, n: int, inputs: Inputs) -> pd.DataFrame:
    """``n`` rows: the model's ``score``, its ``prediction`` (score >= 0.5) and the true
    ``label`` (the label is for the reference and for computing realized values only)."""
    x1, x2, x3 = (rng.normal(m, s, n) for m, s in zip(inputs.means, inputs.stds,
                                                       strict=True))
    x4 = rng.normal(0.0, 1.0, n)
    seen = 1.1 * x1 - 0.9 * x2 + 0.6 * x1 * x3 - 0.8
    label = rng.random(n) < expit(seen + HIDDEN_WEIGHT * x4)
    score = expit(MODEL_SLOPE * seen + MODEL_OFFSET)
    return pd.DataFrame({"score": score, "prediction": (score >= THRESHOLD).astype(np.int64),
                         "label": label.astype(np.int64)})


def windows(rng: np.random.Generator, size: int, count: int) -> pd.DataFrame:
    """``count`` windows of ``size`` rows one after another, the second half shifted; the
    column ``window`` numbers them."""
    frames = [predictions(rng, size, BEFORE if w < count // 2 else AFTER)
              for w in range(count)]
    return pd.concat(frames, ignore_index=True).assign(
        window=np.repeat(np.arange(count), size))


def true_probability(score: np.ndarray) -> np.ndarray:
    """The chance of a positive given the score, exactly (the generator's law, ``x4``
    integrated out by Gauss–Hermite quadrature): the calibration an estimator would have
    with an infinite reference, so what is left of its error is label noise."""
    seen = (logit(np.asarray(score, dtype=np.float64)) - MODEL_OFFSET) / MODEL_SLOPE
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    weights = weights / weights.sum()
    return (expit(seen[:, None] + HIDDEN_WEIGHT * nodes[None, :]) * weights).sum(axis=1)
