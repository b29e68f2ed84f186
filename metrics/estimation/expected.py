"""Expected binary-classification performance, and its sampling error, from how many scores
fall in each calibration bin on each side of the decision threshold.

The model (CBPE's): each row's label is an independent Bernoulli draw with its bin's
calibrated probability ``p``. *Cells* are the (bin, side of the threshold) pairs in score
order — bin 0 below, bin 0 at or above, bin 1 below, ... — each with ``n`` rows, so a
cell expects ``n·p`` positives and ``n·(1-p)`` negatives, and the positives it gets vary
by ``v = n·p·(1-p)``.

Estimates (NaN where the realized metric would divide by zero):

- the expected confusion matrix: TP, FN from the cells at/above and below the threshold;
  accuracy, precision, recall and F1 are those of the expected matrix, as in CBPE;
- ROC AUC: the expected number of (positive, negative) pairs ordered right (a pair within
  a cell counting 1/2, its expectation when the probability is the same), over the
  expected number of such pairs, both over distinct rows: the ratio that the realized
  Mann–Whitney ``U / (P·N)`` has to first order.

Sampling errors are one standard deviation of the *realized* metric around the estimate
under the same model, given the window's scores (so they shrink as the window grows, and
widen where calibrated probabilities sit near 1/2): exact for accuracy and precision,
whose denominators are known; the delta method for recall, F1 and ROC AUC (the latter
through the rank-sum form ``U = S - P(P+1)/2``, ``S`` the sum of the positives' ranks,
with the rows of a cell in distinct ranks, as raw scores are). NannyML reports its
sampling error the same way (one standard deviation) and draws its band at three.
It covers label noise only: an error in the calibration itself (a small reference, or a
shift that changes how scores relate to labels) is not in it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FIELDS", "expected_performance"]

METRICS = ("roc_auc", "accuracy", "precision", "recall", "f1")
FIELDS = (*(f"estimated_{m}" for m in METRICS),
          *(f"estimated_{m}_sampling_error" for m in METRICS))


def expected_performance(below: np.ndarray, above: np.ndarray, probabilities: np.ndarray
                         ) -> dict[str, float]:
    """The estimates and sampling errors (:data:`FIELDS`) for ``below[k]`` rows scored below
    the threshold and ``above[k]`` at or above it in each bin ``k`` of calibrated
    probability ``probabilities[k]``.

    >>> values = expected_performance(np.array([80, 0]), np.array([0, 20]),
    ...                               np.array([0.25, 0.75]))
    >>> values["estimated_accuracy"], values["estimated_precision"]
    (0.75, 0.75)
    >>> round(values["estimated_roc_auc"], 4)
    0.6773
    """
    n = np.stack([below, above], axis=1).ravel().astype(np.float64)
    p = np.repeat(np.asarray(probabilities, dtype=np.float64), 2)
    at_or_above = np.tile(np.array([False, True]), len(below))
    rows = float(n.sum())
    positives, negatives, noise = n * p, n * (1.0 - p), n * p * (1.0 - p)

    tp, fn = float(positives[at_or_above].sum()), float(positives[~at_or_above].sum())
    fp, tn = float(negatives[at_or_above].sum()), float(negatives[~at_or_above].sum())
    noise_above, noise_below = float(noise[at_or_above].sum()), float(noise[~at_or_above].sum())
    predicted = tp + fp  # known exactly: which side of the threshold each score is on
    actual = tp + fn
    f1_denominator = 2 * tp + fp + fn

    auc, auc_error = _roc_auc(n, positives, negatives, noise, rows)
    return {
        "estimated_roc_auc": auc,
        "estimated_accuracy": _divide(tp + tn, rows),
        "estimated_precision": _divide(tp, predicted),
        "estimated_recall": _divide(tp, actual),
        "estimated_f1": _divide(2 * tp, f1_denominator),
        "estimated_roc_auc_sampling_error": auc_error,
        "estimated_accuracy_sampling_error": _divide(np.sqrt(noise_above + noise_below), rows),
        "estimated_precision_sampling_error": _divide(np.sqrt(noise_above), predicted),
        # recall = TP / (TP + FN) with TP and FN independent
        "estimated_recall_sampling_error": _divide(
            np.sqrt(fn**2 * noise_above + tp**2 * noise_below), actual**2),
        # F1 = 2 TP / (TP + FN + predicted), predicted known
        "estimated_f1_sampling_error": _divide(
            2 * np.sqrt((fn + predicted)**2 * noise_above + tp**2 * noise_below),
            f1_denominator**2),
    }


def _roc_auc(n: np.ndarray, positives: np.ndarray, negatives: np.ndarray, noise: np.ndarray,
             rows: float) -> tuple[float, float]:
    negatives_before = np.cumsum(negatives) - negatives
    self_pairs = float(noise.sum())  # a row is never paired with itself
    right = float((positives * (negatives_before + negatives / 2)).sum()) - self_pairs / 2
    pairs = float(positives.sum()) * float(negatives.sum()) - self_pairs
    if not pairs > 0:
        return float("nan"), float("nan")
    auc = right / pairs
    # Delta method on A = (S - P(P+1)/2) / (P(rows - P)) at the expected S and P: a row of
    # rank r moves A by (r·dA/dS + dA/dP) per unit of its label.
    expected_positives = float(positives.sum())
    scale = expected_positives * (rows - expected_positives)
    per_rank = 1.0 / scale
    per_positive = -(expected_positives + 0.5 + auc * (rows - 2 * expected_positives)) / scale
    middle_rank = np.cumsum(n) - n + (n + 1) / 2
    # The rows of a cell hold n distinct ranks around its middle one: their spread adds
    # n(n²-1)/12 to the sum of squared ranks.
    spread = per_rank**2 * (n * n - 1) / 12
    variance = float((noise * (per_rank * middle_rank + per_positive) ** 2
                      + noise * spread).sum())
    return auc, float(np.sqrt(max(variance, 0.0)))


def _divide(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator > 0 else float("nan")
