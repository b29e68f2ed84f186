"""Performance estimated without labels (metrics.estimation): the estimates against numpy
computations on the same rows and against realized metrics on simulated labels, the
sampling errors' coverage, and the errors bad input gets."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from scipy.stats import mannwhitneyu

from metrics.drift import ReferenceProfile
from metrics.estimation.aggregate import EstimatedPerformance, estimated_performance
from metrics.estimation.calibration import ScoreCalibration
from metrics.estimation.expected import METRICS, expected_performance

N_REFERENCE = 50_000


def simulate(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    """Two features, a true probability from them, a label drawn from it, and a model score
    that orders rows as the true probability does but is not calibrated (too confident).
    ``shift`` moves the features and narrows the first (a covariate shift: labels still
    follow the same law given the features, while the model ranks them less well)."""
    x1 = rng.normal(shift, 1.0 / (1.0 + shift), n)
    x2 = rng.normal(-shift / 2, 1.0, n)
    logit = 1.2 * x1 - 0.8 * x2 - 0.5
    truth = expit(logit)
    return pd.DataFrame({"score": expit(1.8 * logit + 0.3), "label": rng.random(n) < truth})


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    reference = simulate(np.random.default_rng(1), N_REFERENCE)
    return ReferenceProfile.fit(reference, ["score"], name="training",
                                calibrations=[("score", "label")])


def values_of(aggregate: EstimatedPerformance, frame: pd.DataFrame) -> dict[str, float]:
    state = aggregate.new_state()
    state.update(frame)
    return aggregate.value(state)


def realized(frame: pd.DataFrame, threshold: float = 0.5) -> dict[str, float]:
    score, label = frame["score"].to_numpy(), frame["label"].to_numpy(dtype=bool)
    predicted = score >= threshold
    tp = int((predicted & label).sum())
    fp, fn = int((predicted & ~label).sum()), int((~predicted & label).sum())
    u = mannwhitneyu(score[label], score[~label]).statistic
    return {"roc_auc": u / (label.sum() * (~label).sum()),
            "accuracy": float((predicted == label).mean()),
            "precision": tp / (tp + fp), "recall": tp / (tp + fn),
            "f1": 2 * tp / (2 * tp + fp + fn)}


def calibrated(profile: ReferenceProfile, scores: np.ndarray) -> np.ndarray:
    calibration = profile.calibration("score", "label")
    return calibration.probabilities()[calibration.bins(scores)]


# -- the calibration ------------------------------------------------------------------


def test_the_calibration_is_scipys_isotonic_regression_on_the_reference(
        profile: ReferenceProfile) -> None:
    from scipy.optimize import isotonic_regression

    reference = simulate(np.random.default_rng(1), N_REFERENCE)
    order = np.argsort(reference["score"].to_numpy())  # continuous scores: no ties
    fitted = isotonic_regression(reference["label"].to_numpy(dtype=float)[order]).x
    ours = calibrated(profile, reference["score"].to_numpy()[order])
    np.testing.assert_allclose(ours, fitted, rtol=0, atol=1e-12)
    assert profile.calibration("score", "label").size < 400  # a small table


def test_a_profile_with_a_calibration_round_trips_and_one_without_keeps_its_layout(
        profile: ReferenceProfile) -> None:
    again = ReferenceProfile.from_json(profile.to_json())
    assert again == profile
    assert again.calibration("score", "label") == profile.calibration("score", "label")
    plain = ReferenceProfile(profile.name, profile.columns)
    assert "calibrations" not in plain.to_dict()  # so profiles fitted before keep their id
    assert plain.id != profile.id


def test_bins_are_numpys_searchsorted_on_the_edges() -> None:
    """The grid that speeds the lookup up changes no bin: at edges, next to them, far out,
    for edges tiny, huge and in between."""
    rng = np.random.default_rng(8)
    for scale in (1e-300, 1e-6, 1.0, 1e6, 1e300):
        edges = np.unique(rng.normal(size=int(rng.integers(2, 400))) * scale)
        calibration = ScoreCalibration("score", "label", tuple(edges), (1,) * (len(edges) + 1),
                                       (1,) * (len(edges) + 1))
        scores = np.concatenate([rng.normal(size=5_000) * np.abs(edges).max() * 1.5, edges,
                                 np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf),
                                 [1e308, -1e308, 0.0, -0.0, 5e-324]])
        np.testing.assert_array_equal(calibration.bins(scores),
                                      np.searchsorted(edges, scores, side="right"))


# -- estimates against numpy on the same rows -------------------------------------------


@pytest.mark.parametrize("threshold", [0.5, 0.23])
def test_the_expected_confusion_matrix_and_auc_equal_their_numpy_computation(
        profile: ReferenceProfile, threshold: float) -> None:
    window = simulate(np.random.default_rng(2), 2_000)
    values = values_of(estimated_performance("score", "label", profile, threshold), window)
    scores = window["score"].to_numpy()
    p = calibrated(profile, scores)
    predicted = scores >= threshold
    tp, fp = p[predicted].sum(), (1 - p[predicted]).sum()
    fn, tn = p[~predicted].sum(), (1 - p[~predicted]).sum()
    assert values["estimated_accuracy"] == pytest.approx((tp + tn) / len(p), rel=1e-12)
    assert values["estimated_precision"] == pytest.approx(tp / (tp + fp), rel=1e-12)
    assert values["estimated_recall"] == pytest.approx(tp / (tp + fn), rel=1e-12)
    assert values["estimated_f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn), rel=1e-12)
    # AUC: expected pairs ordered right over expected (positive, negative) pairs of
    # distinct rows, pair by pair on the raw scores
    pairs = np.outer(p, 1 - p)
    np.fill_diagonal(pairs, 0.0)
    right = (pairs * (scores[:, None] > scores[None, :])).sum()
    assert values["estimated_roc_auc"] == pytest.approx(right / pairs.sum(), rel=1e-10)


def test_the_estimates_are_the_mean_of_realized_values_and_the_errors_their_spread(
        profile: ReferenceProfile) -> None:
    """Labels drawn from the calibrated probabilities, as the estimator assumes: the
    realized values scatter around the estimate by the stated sampling error, and a band
    of 3 sampling errors covers them (all but ~0.3%)."""
    rng = np.random.default_rng(3)
    window = simulate(rng, 2_000, shift=0.7)
    values = values_of(estimated_performance("score", "label", profile), window)
    p = calibrated(profile, window["score"].to_numpy())
    draws = pd.DataFrame([realized(window.assign(label=rng.random(len(p)) < p))
                          for _ in range(600)])
    for metric in METRICS:
        estimate = values[f"estimated_{metric}"]
        error = values[f"estimated_{metric}_sampling_error"]
        spread = draws[metric].std()
        assert error == pytest.approx(spread, rel=0.12), metric
        assert abs(draws[metric].mean() - estimate) < 4 * spread / np.sqrt(len(draws)) + 1e-4
        inside = (abs(draws[metric] - estimate) <= 3 * error).mean()
        assert inside >= 0.985, metric
        within_one = (abs(draws[metric] - estimate) <= error).mean()
        assert 0.6 < within_one < 0.76, metric


def test_the_auc_estimate_pairs_distinct_rows_only() -> None:
    """On a small window the realized AUC's mean is the estimate, which leaves out the pair
    of a row with itself; counting it as a tie (as the area under the expected ROC curve
    does) is off by 15 standard errors here."""
    rng = np.random.default_rng(6)
    n = 300
    p = np.sort(rng.random(n)) ** 1.5 * 0.9 + 0.05  # one row per bin, in score order
    below, above = np.ones(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    estimate = expected_performance(below, above, p)["estimated_roc_auc"]
    parts = []
    for _ in range(5):  # 100,000 windows, 20,000 at a time
        labels = (rng.random((20_000, n)) < p).astype(np.float64)
        positives = labels.sum(axis=1)
        rank_sums = labels @ np.arange(1.0, n + 1)
        parts.append((rank_sums - positives * (positives + 1) / 2)
                    / (positives * (n - positives)))
    aucs = np.concatenate(parts)
    assert abs(aucs.mean() - estimate) < 3 * aucs.std() / np.sqrt(len(aucs))
    negatives_below = np.cumsum(1 - p) - (1 - p)
    with_self_pairs = (p * (negatives_below + (1 - p) / 2)).sum() / (p.sum() * (1 - p).sum())
    assert abs(aucs.mean() - with_self_pairs) > 10 * aucs.std() / np.sqrt(len(aucs))


# -- estimates against realized values under a covariate shift -------------------------


def test_estimates_follow_realized_performance_through_a_covariate_shift(
        profile: ReferenceProfile) -> None:
    """Windows of 2,000 to 10,000 rows before and after the features move: the estimate
    stays within 3 sampling errors plus 0.01 (the calibration's own error, fitted on
    50,000 rows) of the realized value, while the realized AUC itself moves by more."""
    rng = np.random.default_rng(4)
    aggregate = estimated_performance("score", "label", profile)
    realized_auc = []
    for n, shift in [(2_000, 0.0), (10_000, 0.0), (2_000, 1.5), (10_000, 1.5)]:
        window = simulate(rng, n, shift)
        values, truth = values_of(aggregate, window), realized(window)
        realized_auc.append(truth["roc_auc"])
        for metric in ("roc_auc", "accuracy", "f1"):
            error = values[f"estimated_{metric}_sampling_error"]
            assert abs(values[f"estimated_{metric}"] - truth[metric]) <= 3 * error + 0.01, (
                n, shift, metric)
    assert abs(realized_auc[3] - realized_auc[1]) > 0.03  # the shift is visible


# -- chunking ------------------------------------------------------------------------


def test_any_chunking_gives_bit_identical_values(profile: ReferenceProfile) -> None:
    aggregate = estimated_performance("score", "label", profile)
    window = simulate(np.random.default_rng(5), 3_000, shift=0.5)
    whole = values_of(aggregate, window)
    parts = [aggregate.new_state() for _ in range(3)]
    shuffled = window.sample(frac=1, random_state=1)
    cuts = [0, 1, 2, 500, 501, 1700, 2999, len(shuffled)]
    for i, (start, end) in enumerate(itertools.pairwise(cuts)):
        parts[i % 3].update(shuffled.iloc[start:end])
    merged = aggregate.state_from_bytes(parts[2].to_bytes())
    merged.merge(parts[0])
    merged.merge(parts[1])
    assert {k: np.float64(v).tobytes() for k, v in aggregate.value(merged).items()} == {
        k: np.float64(v).tobytes() for k, v in whole.items()}


# -- bad input -----------------------------------------------------------------------


def test_non_numeric_and_infinite_scores_are_refused_naming_the_column(
        profile: ReferenceProfile) -> None:
    state = estimated_performance("score", "label", profile).new_state()
    with pytest.raises(ValueError, match="column 'score' must hold numeric scores"):
        state.update(pd.DataFrame({"score": ["high", "low"]}))
    with pytest.raises(ValueError, match="scores in column 'score' must be finite"):
        state.update(pd.DataFrame({"score": [0.2, np.inf]}))


def test_null_scores_are_left_out_and_any_finite_score_is_calibrated(
        profile: ReferenceProfile) -> None:
    """Scores need not be probabilities: one beyond the reference's range gets the
    probability of the nearest calibration bin, as an isotonic calibrator clips."""
    aggregate = estimated_performance("score", "label", profile)
    with_nulls = values_of(aggregate, pd.DataFrame({"score": [0.9, None, 0.1, np.nan]}))
    assert with_nulls == values_of(aggregate, pd.DataFrame({"score": [0.9, 0.1]}))
    far = values_of(aggregate, pd.DataFrame({"score": [-5.0, 7.0]}))
    top = profile.calibration("score", "label").probabilities()[-1]
    assert far["estimated_precision"] == top


def test_an_empty_window_gives_nan() -> None:
    calibration = ScoreCalibration("score", "label", (0.5,), (1, 3), (3, 1))
    profile = ReferenceProfile("training", ReferenceProfile.fit(
        pd.DataFrame({"score": [0.0, 1.0]}), name="training").columns,
        {("score", "label"): calibration})
    values = values_of(estimated_performance("score", "label", profile),
                       pd.DataFrame({"score": pd.Series([], dtype=float)}))
    assert all(np.isnan(v) for v in values.values())


def test_a_reference_without_both_classes_or_with_bad_labels_is_refused() -> None:
    frame = pd.DataFrame({"score": [0.1, 0.2, 0.9], "label": [True, True, True]})
    with pytest.raises(ValueError, match="reference 'training': reference labels in 'label' "
                                         "need both classes"):
        ReferenceProfile.fit(frame, ["score"], name="training",
                             calibrations=[("score", "label")])
    with pytest.raises(ValueError, match="column 'label' must hold booleans or 0/1"):
        ReferenceProfile.fit(frame.assign(label=[0, 1, 2]), ["score"], name="training",
                             calibrations=[("score", "label")])
    with pytest.raises(ValueError, match=r"reference 'training' has no column\(s\) \['label'\]"):
        ReferenceProfile.fit(frame[["score"]], name="training",
                             calibrations=[("score", "label")])


def test_a_profile_without_the_calibration_cannot_be_bound() -> None:
    plain = ReferenceProfile.fit(pd.DataFrame({"score": [0.1, 0.7]}), name="training")
    with pytest.raises(ValueError, match="has no calibration of score 'score' against label "
                                         "'clicked'"):
        estimated_performance("score", "clicked", plain)


@pytest.mark.parametrize("threshold", [float("nan"), float("inf"), True, "0.5"])
def test_a_threshold_that_is_not_a_finite_number_is_refused(threshold: object) -> None:
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        estimated_performance("score", "label", "training", threshold)  # type: ignore[arg-type]


def test_refitting_the_reference_gives_a_new_id(profile: ReferenceProfile) -> None:
    other = ReferenceProfile.fit(simulate(np.random.default_rng(9), 5_000), ["score"],
                                 name="training", calibrations=[("score", "label")])
    named = estimated_performance("score", "label", "training")
    assert named.bind_reference(profile).id != named.bind_reference(other).id
    assert named.bind_reference(profile).id == estimated_performance(
        "score", "label", profile).id
