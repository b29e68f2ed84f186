"""The performance page and its queries on the seeded database: an estimate of the click
model's AUC beside the AUC realized from labels that arrive hours later (the seed stores
both as batch values, see :mod:`tests.dashboard.seed_performance`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitor.performance_pairs import PerformancePair
from monitor.research import ResearchResult, run
from monitor.spec import OVERALL
from monitor.storage.dashboard.performance import SIDE_BY_SIDE_COLUMNS
from monitor.storage.dashboard.queries import DashboardQueries
from monitor.storage.dashboard.records import default_range
from monitor.storage.store import SqlStore
from tests.dashboard.conftest import AppFactory
from tests.dashboard.helpers import charts, marks, texts
from tests.dashboard.seed import Seeded
from tests.dashboard.seed_performance import AS_OF, ESTIMATE
from tests.performance_data import (
    HOURS,
    START,
    labels_as_of,
    performance_app,
    predictions,
    reference_profile,
)

AUTOMATIC = PerformancePair(ESTIMATE, "estimated_roc_auc", "click_auc", "auc")
# The example app's own pair, seeded through the batch stage with its click outcomes.
EXAMPLE = PerformancePair("click_auc_estimate", "estimated_roc_auc", "click_auc_realized",
                          "auc")


@pytest.fixture(scope="module")
def computed() -> dict[str, ResearchResult]:
    """The seeded metrics computed again, apart from the database."""
    preds = predictions()
    labels = labels_as_of(preds, AS_OF)
    return {name: run(metric, preds.drop(columns="clicked"), reference_profile(),
                      labels=labels if metric.labels else None, as_of=AS_OF)
            for name, metric in performance_app().metrics.items()}


def wide(result: ResearchResult, segment: str) -> pd.DataFrame:
    values = result.values[result.values["segment"] == segment]
    return values.pivot_table(index="window_start", columns="field", values="value",
                              dropna=False)


def test_the_auc_pairs_by_itself_and_the_accuracy_when_declared(seeded: Seeded) -> None:
    with DashboardQueries.open(seeded.url) as queries:
        assert queries.performance.pairs() == [EXAMPLE, AUTOMATIC]
        assert queries.performance.declarable(ESTIMATE) == ["click_accuracy"]
        declared = queries.performance.pairs({"click_accuracy": ESTIMATE})
        assert queries.performance.stages(ESTIMATE, AUTOMATIC) == ["batch"]
    assert declared[-1] == PerformancePair(ESTIMATE, "estimated_accuracy", "click_accuracy",
                                           "accuracy", declared=True)


@pytest.mark.parametrize("segment", [OVERALL, "device=ios"])
def test_side_by_side_holds_the_stored_estimate_and_realized_values(
        seeded: Seeded, computed: dict[str, ResearchResult], segment: str) -> None:
    span = default_range(START + pd.Timedelta(hours=HOURS - 1), days=2)
    with DashboardQueries.open(seeded.url) as queries:
        frame = queries.performance.side_by_side(ESTIMATE, "estimated_roc_auc", span,
                                                 stage="batch", segments=[segment],
                                                 pair=AUTOMATIC)
    assert len(frame) == HOURS and set(frame["segment"]) == {segment}
    estimate, realized = wide(computed[ESTIMATE], segment), wide(computed["click_auc"], segment)
    np.testing.assert_array_equal(frame["estimate"], estimate["estimated_roc_auc"])
    np.testing.assert_array_equal(frame["sampling_error"],
                                  estimate["estimated_roc_auc_sampling_error"])
    np.testing.assert_array_equal(frame["realized"], realized["auc"])
    np.testing.assert_array_equal(frame["label_coverage"], realized["label_coverage"])
    # labels have come for the early windows only: the last windows wait for them
    assert frame["realized"].iloc[:HOURS - 6].notna().all()
    assert frame["realized"].iloc[-3:].isna().all()
    assert (frame["label_coverage"].iloc[-3:] == 0).all()
    assert frame["label_coverage"].iloc[0] > 0.9


def test_side_by_side_without_a_realized_metric_is_the_estimate_alone(seeded: Seeded) -> None:
    span = default_range(START + pd.Timedelta(hours=HOURS - 1), days=2)
    with DashboardQueries.open(seeded.url) as queries:
        frame = queries.performance.side_by_side(ESTIMATE, "estimated_f1", span,
                                                 stage="batch", segments=[OVERALL])
        with pytest.raises(ValueError, match="realizes estimated_roc_auc"):
            queries.performance.side_by_side(ESTIMATE, "estimated_f1", span, stage="batch",
                                             segments=[OVERALL], pair=AUTOMATIC)
    assert len(frame) == HOURS and frame["estimate"].notna().all()
    assert frame["realized"].isna().all()


def test_side_by_side_of_a_stage_without_values_is_empty(seeded: Seeded) -> None:
    span = default_range(START + pd.Timedelta(hours=HOURS - 1), days=2)
    with DashboardQueries.open(seeded.url) as queries:
        frame = queries.performance.side_by_side(ESTIMATE, "estimated_roc_auc", span,
                                                 stage="streaming", segments=[OVERALL],
                                                 pair=AUTOMATIC)
        with pytest.raises(ValueError, match="no metric named 'gone'"):
            queries.performance.side_by_side("gone", "estimated_roc_auc", span,
                                             stage="batch", segments=[OVERALL])
    assert frame.empty and list(frame.columns) == SIDE_BY_SIDE_COLUMNS


def test_the_page_draws_the_estimate_its_band_and_the_realized_auc(
        seeded: Seeded, run_app: AppFactory, computed: dict[str, ResearchResult]) -> None:
    app = run_app(seeded.url, page="performance", metric=ESTIMATE, segment="device=web")
    assert app.selectbox(key="performance_metric").value == ESTIMATE
    found = charts(app)
    assert len(found) == 2  # the overall segment and the one the link named
    for (spec, data), segment in zip(found, (OVERALL, "device=web"), strict=True):
        # the coverage bars on their own axis, then the band, the two lines, the threshold
        assert marks(spec) == ["bar"] and marks(spec["layer"][1]) == [
            "area", "line", "line", "rule"]
        # the bars, the band and the estimate's line draw one data set
        [estimated] = [d for d in data if "low" in d]
        [realized] = [d for d in data if "realized" in set(d.get("series", []))
                      or "click_auc: auc" in set(d.get("series", []))]
        [threshold] = [d for d in data if "bound" in d]
        expected = wide(computed[ESTIMATE], segment)
        truth = wide(computed["click_auc"], segment)
        assert len(estimated) == HOURS and set(estimated["series"]) == {"estimated"}
        np.testing.assert_allclose(
            estimated["high"] - estimated["low"],
            6 * expected["estimated_roc_auc_sampling_error"].to_numpy())
        np.testing.assert_array_equal(estimated["value"], expected["estimated_roc_auc"])
        labelled = truth[truth["auc"].notna()]
        np.testing.assert_array_equal(realized["value"], labelled["auc"])
        assert set(realized["series"]) == {"click_auc: auc"}
        np.testing.assert_array_equal(estimated["label_coverage"], truth["label_coverage"])
        assert list(threshold["bound"]) == [0.775]
    text = texts(app)
    assert "Realized by **click_auc**" in text and "±3 sampling errors" in text
    assert "later window(s) still wait for labels" in text


def test_a_declared_accuracy_is_drawn_beside_the_estimated_accuracy(
        seeded: Seeded, run_app: AppFactory, computed: dict[str, ResearchResult]) -> None:
    app = run_app(seeded.url, page="performance", metric=ESTIMATE)
    app.selectbox(key=f"performance_field:{ESTIMATE}").select("estimated_accuracy").run()
    [(spec, data)] = charts(app)
    assert marks(spec["layer"][1]) == ["area", "line"]  # nothing realizes it undeclared
    assert "Realized values appear once" in texts(app)
    declared = app.selectbox(key=f"performance_declared:{ESTIMATE}:estimated_accuracy")
    assert declared.options == ["—", "click_accuracy"]
    declared.select("click_accuracy").run()
    [(spec, data)] = charts(app)
    assert marks(spec["layer"][1]) == ["area", "line", "line"]
    [realized] = [d for d in data if "click_accuracy: accuracy" in set(d.get("series", []))]
    truth = wide(computed["click_accuracy"], OVERALL)
    np.testing.assert_array_equal(realized["value"], truth["accuracy"].dropna())
    [estimated] = [d for d in data if "low" in d]
    np.testing.assert_array_equal(estimated["value"],
                                  wide(computed[ESTIMATE], OVERALL)["estimated_accuracy"])


def test_the_metric_page_of_an_estimate_links_to_the_performance_page(
        seeded: Seeded, run_app: AppFactory) -> None:
    app = run_app(seeded.url, page="metric", metric=ESTIMATE)
    assert f"(performance?metric={ESTIMATE})" in "\n".join(m.value for m in app.markdown)
    other = run_app(seeded.url, page="metric", metric="click_auc")
    assert "performance?" not in "\n".join(m.value for m in other.markdown)


def test_the_example_app_estimate_and_realized_auc_are_stored_side_by_side(
    seeded: Seeded,
) -> None:
    """The example week through batch: every country-hour has both the estimate and the AUC
    of the clicks that came back, and the realized value lies within 3 sampling errors of
    the estimate in nearly every window (hours of a small country are noisy)."""
    with DashboardQueries.open(seeded.url) as queries:
        assert queries.performance.stages(EXAMPLE.estimate, EXAMPLE) == ["batch"]
    with SqlStore.open(seeded.url) as store:
        estimate = store.read_values(metric=EXAMPLE.estimate, stage="batch", limit=None)
        realized = store.read_values(metric=EXAMPLE.realized, stage="batch", limit=None)
    keys = ["segment", "window_start"]
    side = (estimate.pivot_table(index=keys, columns="field", values="value")
            .join(realized.pivot_table(index=keys, columns="field", values="value"),
                  how="inner"))
    assert len(side) == estimate[keys].drop_duplicates().shape[0] > 0
    error = (side["auc"] - side["estimated_roc_auc"]).abs()
    inside = error <= 3 * side["estimated_roc_auc_sampling_error"]
    assert inside.mean() > 0.97, side[~inside]
