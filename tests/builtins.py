"""Every built-in aggregate kind, with examples and a generator of realistic input for each.

The contract tests in test_contract.py run over these cases, ordered by the kinds the
``metrics`` package registers (:func:`built_in_kinds`): a new built-in kind fails them
until it adds a case here, and is then held to the same promises as the others.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

import metrics
import metrics.aggregates as agg
import metrics.assertions as assertions
import metrics.classification as classification
import metrics.expectations as expectations
import metrics.key_consistency as key_consistency
import metrics.labelled as labelled_metrics
import metrics.ranking as ranking
import metrics.tails as tails
import metrics.uniqueness as uniqueness
import metrics.validation as validation
from metrics.base import Aggregate, aggregate_kinds
from metrics.drift import (
    ReferenceProfile,
    chi2,
    chi2_gof,
    drift,
    hellinger,
    js,
    ks,
    psi,
    wasserstein,
)
from metrics.estimation.aggregate import estimated_performance


@dataclass(frozen=True)
class Case:
    aggregate: Aggregate
    make_frame: Callable[[np.random.Generator, int], pd.DataFrame]

    @property
    def name(self) -> str:
        return f"{self.aggregate.kind}-{self.aggregate.id}"


def numeric_with_nulls(rng: np.random.Generator, n: int) -> pd.DataFrame:
    x = rng.lognormal(mean=3.0, sigma=1.0, size=n) * np.where(rng.random(n) < 0.2, -1, 1)
    x[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame({"x": x})


def categories(rng: np.random.Generator, n: int) -> pd.DataFrame:
    device = rng.choice(["ios", "android", "web"], size=n, p=[0.5, 0.3, 0.2]).astype(object)
    device[rng.random(n) < 0.05] = None
    clicked = pd.array(rng.random(n) < 0.1, dtype="boolean")
    clicked[rng.random(n) < 0.02] = pd.NA
    return pd.DataFrame({"device": device, "clicked": clicked, "x": rng.normal(size=n)})


def numeric_around_zero(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Signed values with exact zeros (both signs), subnormals and nulls: the sketch's edges."""
    x = rng.normal(scale=10.0, size=n)
    special = rng.random(n)
    x[special < 0.1] = 0.0
    x[(special >= 0.1) & (special < 0.15)] = -0.0
    x[(special >= 0.15) & (special < 0.18)] = 5e-324
    x[(special >= 0.18) & (special < 0.2)] = np.nan
    return pd.DataFrame({"x": x})


def labelled(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """A binary label with nulls, a 0/1 prediction with nulls and a score in [0, 1]."""
    positive = rng.random(n) < 0.3
    score = 1.0 / (1.0 + np.exp(-(np.where(positive, 1.0, -1.0) + rng.normal(size=n))))
    score[rng.random(n) < 0.02] = 0.0
    score[rng.random(n) < 0.02] = 1.0
    score[rng.random(n) < 0.03] = np.nan
    label = pd.array(positive, dtype="boolean")
    label[rng.random(n) < 0.03] = pd.NA
    prediction = pd.array((score > 0.5).astype(int), dtype="Int64")
    prediction[rng.random(n) < 0.03] = pd.NA
    return pd.DataFrame({"label": label, "prediction": prediction, "score": score})


def joined(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Predictions after the label join: about 70% labelled, the rest with null labels."""
    frame = labelled(rng, n)
    got_label = rng.random(n) < 0.7
    frame["label"] = frame["label"].where(got_label, pd.NA)
    frame[labelled_metrics.LABELLED] = got_label
    return frame


def drift_window(rng: np.random.Generator, n: int, shift: float = 0.5) -> pd.DataFrame:
    """Drift input: a shifted numeric column with nulls, infinities and far outliers,
    categories with nulls and an unseen one ("tv"), and a nullable boolean."""
    x = rng.normal(shift, 1.0 + shift, size=n)
    x[rng.random(n) < 0.05] = np.nan
    x[rng.random(n) < 0.01] = np.inf
    if shift:  # far outliers, beyond the fixed point of the reference range
        x[rng.random(n) < 0.01] *= 1e12
    seen = 1.0 - shift / 5
    device = rng.choice(["ios", "android", "web", "tv"], size=n,
                        p=[0.5 * seen, 0.3 * seen, 0.2 * seen, 1 - seen]).astype(object)
    device[rng.random(n) < 0.05] = None
    clicked = pd.array(rng.random(n) < 0.1 + shift / 10, dtype="boolean")
    clicked[rng.random(n) < 0.02] = pd.NA
    return pd.DataFrame({"x": x, "device": device, "clicked": clicked})


ITEMS = [f"item-{i}" for i in range(40)]


def ranked(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Ranked lists of 0 to 12 items (some null, some with an item twice) and the item
    engaged with: often one shown, sometimes one not shown, sometimes none (null)."""
    shown: list[list[str] | None] = []
    clicked: list[str | None] = []
    for _ in range(n):
        items = [ITEMS[i] for i in rng.choice(len(ITEMS), size=rng.integers(0, 13),
                                              replace=False)]
        if items and rng.random() < 0.05:
            items.append(items[0])  # listed twice: counts at its first rank
        draw = rng.random()
        if items and draw < 0.6:
            clicked.append(items[min(int(rng.geometric(0.3)) - 1, len(items) - 1)])
        elif draw < 0.75:
            clicked.append(ITEMS[int(rng.integers(len(ITEMS)))])
        else:
            clicked.append(None)
        shown.append(None if rng.random() < 0.03 else items)
    return pd.DataFrame({"shown": pd.Series(shown, dtype=object),
                         "clicked": pd.Series(clicked, dtype=object)})


def violations(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """An assertion's input: an id drawn from a pool (so some events share one, with other
    fields), a nullable violation flag, a severity with nulls, zeros, negatives and an
    infinity, and fields of every type to keep (nulls included)."""
    flag = pd.array(rng.random(n) < 0.3, dtype="boolean")
    flag[rng.random(n) < 0.05] = pd.NA
    severity = rng.normal(size=n)
    severity[rng.random(n) < 0.1] = 0.0
    severity[rng.random(n) < 0.05] = np.nan
    severity[rng.random(n) < 0.01] = np.inf
    device = rng.choice(["ios", "android", "web"], size=n).astype(object)
    device[rng.random(n) < 0.05] = None
    x = rng.normal(size=n)
    x[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame({
        "ts": pd.Timestamp("2026-03-01T00:00:00Z") + pd.to_timedelta(
            rng.integers(0, 3_600_000_000_000, n), unit="ns"),
        "view_id": pd.array(rng.integers(0, max(2, n // 2), n), dtype="Int64"),
        "user": rng.integers(0, max(2, n // 3), n).astype(str).astype(object),
        "flag": flag, "severity": severity, "device": device, "x": x,
        "shown": pd.Series([[f"item-{i}"] * (i % 3) for i in range(n)], dtype=object),
    })


DRIFT_REFERENCE = ReferenceProfile.fit(
    drift_window(np.random.default_rng(2024), 5000, shift=0.0), name="training"
)

# Labelled reference data: the score calibrated against the label (nulls in both left out).
ESTIMATION_REFERENCE = ReferenceProfile.fit(
    labelled(np.random.default_rng(2025), 5000), ["score"], name="training",
    calibrations=[("score", "label")],
)


EXAMPLES: list[Case] = [
    Case(agg.count(), numeric_with_nulls),
    Case(agg.sum_of("x"), numeric_with_nulls),
    Case(agg.mean("x"), numeric_with_nulls),
    Case(agg.rate("clicked"), categories),
    Case(agg.rate("x > 0.5"), categories),
    Case(agg.rate("clicked and x > 0"), categories),  # NA where clicked is: left out
    Case(agg.null_rate("device"), categories),
    Case(agg.share("device", "ios"), categories),
    Case(tails.quantiles("x"), numeric_with_nulls),
    Case(tails.quantiles("x", ps=(0.001, 0.5, 0.999, 1.0), relative_accuracy=0.05),
         numeric_around_zero),
    Case(classification.accuracy("label", "prediction"), labelled),
    Case(classification.precision("label", "prediction"), labelled),
    Case(classification.recall("label", "prediction"), labelled),
    Case(classification.auc("label", "score"), labelled),
    Case(classification.auc("label", "score", bins=10), labelled),
    Case(psi("x", DRIFT_REFERENCE), drift_window),
    Case(psi("device", DRIFT_REFERENCE), drift_window),
    Case(js("x", DRIFT_REFERENCE), drift_window),
    Case(js("device", DRIFT_REFERENCE, base=2), drift_window),
    Case(hellinger("clicked", DRIFT_REFERENCE), drift_window),
    Case(chi2("x", DRIFT_REFERENCE), drift_window),
    Case(chi2("device", DRIFT_REFERENCE), drift_window),
    Case(chi2_gof("device", DRIFT_REFERENCE), drift_window),
    Case(ks("x", DRIFT_REFERENCE), drift_window),
    Case(wasserstein("x", DRIFT_REFERENCE), drift_window),
    Case(drift(["x", "device", "clicked"], DRIFT_REFERENCE), drift_window),
    Case(drift(["x", "device"], DRIFT_REFERENCE, method="ks", categorical_method="chi2"),
         drift_window),
    Case(ranking.ndcg("shown", "clicked", k=5), ranked),
    Case(ranking.ndcg("shown", "clicked", k=20), ranked),
    Case(ranking.mrr("shown", "clicked"), ranked),
    Case(ranking.mrr("shown", "clicked", k=3), ranked),
    Case(ranking.hit_rate("shown", "clicked", k=1), ranked),
    Case(ranking.hit_rate("shown", "clicked", k=10), ranked),
    Case(ranking.catalogue_coverage("shown", catalogue=ITEMS[::2], k=3), ranked),
    Case(ranking.catalogue_coverage("shown", catalogue_size=50), ranked),
    Case(estimated_performance("score", "label", ESTIMATION_REFERENCE), labelled),
    Case(estimated_performance("score", "label", ESTIMATION_REFERENCE, threshold=0.3),
         labelled),
    Case(labelled_metrics.Labelled(classification.auc("label", "score", bins=20)), joined),
    Case(labelled_metrics.Labelled(classification.accuracy("label", "prediction")), joined),
    Case(labelled_metrics.Labelled(tails.quantiles("score")), joined),
    Case(assertions.assertion("flag", id="view_id", keep=("ts", "device", "x"), k=7),
         violations),
    Case(assertions.assertion("severity", id="user", keep=("shown", "flag")), violations),
    Case(assertions.assertion("severity", id="view_id", k=1), violations),
    Case(assertions.assertion("x > 0.5 and flag", id="user", keep=("x",), k=4), violations),
    Case(key_consistency.consistency("device", key="user"), violations),
    Case(key_consistency.consistency("shown", key="view_id", max_values=2, k=3), violations),
    Case(key_consistency.consistency("x", key="view_id", max_keys=5), violations),  # past it
    Case(expectations.expect_not_null("device"), violations),
    Case(expectations.expect_in_range("x", low=-1.0, high=1.5, tolerance=0.2), violations),
    Case(expectations.expect_in_range("severity", high=0.0), violations),
    Case(expectations.expect_in_set("device", values=["ios", "web"]), violations),
    Case(expectations.expect_match("user", pattern=r"[1-4]\d*"), violations),
    Case(expectations.expect_no_unknown_fields(["ts", "view_id", "user", "flag"]),
         violations),
    Case(uniqueness.expect_unique("view_id"), violations),
    Case(uniqueness.expect_unique("user", max_keys=4, tolerance=0.5), violations),
    Case(validation.validation_summary([
        expectations.expect_not_null("x", tolerance=0.1), uniqueness.expect_unique("user"),
        expectations.expect_in_set("device", values=["ios"])]), violations),
    # a new built-in kind adds its cases here
]


def built_in_kinds() -> list[str]:
    """Every aggregate kind defined in the ``metrics`` package (each of its modules
    imported first: a kind registers when its class is defined)."""
    for module in pkgutil.walk_packages(metrics.__path__, prefix="metrics."):
        importlib.import_module(module.name)
    return sorted(kind for kind, cls in aggregate_kinds().items()
                  if cls.__module__.split(".")[0] == "metrics")


CASES_BY_KIND: dict[str, list[Case]] = {
    kind: [case for case in EXAMPLES if case.aggregate.kind == kind] for kind in built_in_kinds()
}
CASES: list[Case] = [case for cases in CASES_BY_KIND.values() for case in cases]
