"""Performance estimation registered on a Monitor: a prediction stream without labels, a
labelled reference declared with ``mon.reference``, values from the research stage equal
to the aggregate's own, and a reference that cannot serve named at binding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import metrics
from metrics.drift import ReferenceProfile
from monitor import Monitor
from monitor.errors import DefinitionError
from monitor.references import References
from monitor.research import evaluate, run
from monitor.research_record import profile_to_record
from tests.test_estimation import simulate


def predictions(rng: np.random.Generator) -> pd.DataFrame:
    """Two hours of predictions, the second after a covariate shift; no label."""
    first, second = simulate(rng, 3_000), simulate(rng, 2_500, shift=1.0)
    start = pd.Timestamp("2026-03-01T00:00:00Z")
    times = [start + pd.Timedelta(seconds=s) for s in
             [*np.linspace(0, 3599, len(first)), *np.linspace(3600, 7199, len(second))]]
    frame = pd.concat([first, second], ignore_index=True).drop(columns="label")
    return frame.assign(ts=[t.isoformat() for t in times])


@pytest.fixture()
def app(tmp_path: Path) -> tuple[Monitor, Path]:
    reference = simulate(np.random.default_rng(11), 20_000)
    path = tmp_path / "training.parquet"
    reference.to_parquet(path)
    mon = Monitor()
    mon.stream("predictions", schema={"score": "float"})  # labels come later, elsewhere
    mon.reference("training", path)
    mon.metric("estimated", "predictions",
               metrics.estimated_performance("score", "clicked", "training"), window="1h")
    return mon, path


def expected_values(reference: pd.DataFrame, events: pd.DataFrame) -> list[dict[str, float]]:
    """Per hour, the aggregate's values with the calibration fitted straight from the data."""
    profile = ReferenceProfile.fit(reference, ["score"], name="training",
                                   calibrations=[("score", "clicked")])
    aggregate = metrics.estimated_performance("score", "clicked", profile)
    hours = pd.to_datetime(events["ts"], format="ISO8601").dt.floor("1h")
    out = []
    for _, rows in events.groupby(hours):
        state = aggregate.new_state()
        state.update(rows)
        out.append(aggregate.value(state))
    return out


def test_research_estimates_each_window_against_the_declared_reference(
        app: tuple[Monitor, Path]) -> None:
    mon, path = app
    events = predictions(np.random.default_rng(12))
    reference = pd.read_parquet(path).rename(columns={"label": "clicked"})
    path_with_clicked = path.with_name("clicked.parquet")
    reference.to_parquet(path_with_clicked)
    metric = mon.metrics["estimated"]

    from_file = run(metric, events, references=References(
        paths={"training": path_with_clicked})).values  # as `monitor research run` binds
    from_frame = evaluate(metric, events, reference=reference)
    pd.testing.assert_frame_equal(from_file, from_frame)

    expected = expected_values(reference, events)
    assert sorted(from_file["window_start"].unique()) == [
        pd.Timestamp("2026-03-01T00:00:00Z"), pd.Timestamp("2026-03-01T01:00:00Z")]
    for hour, (start, rows) in enumerate(from_file.groupby("window_start")):
        got = dict(zip(rows["field"], rows["value"], strict=True))
        assert got == expected[hour], start
    # the shift moves the estimate
    auc = from_file[from_file["field"] == "estimated_roc_auc"]["value"].tolist()
    assert auc[0] - auc[1] > 0.03


def test_a_reference_without_the_label_is_named_with_the_metric(
        app: tuple[Monitor, Path]) -> None:
    mon, _ = app  # its reference has "label", the metric reads "clicked"
    events = predictions(np.random.default_rng(13))
    with pytest.raises(DefinitionError, match=r"metric 'estimated': reference 'training' has "
                                              r"no column\(s\) 'clicked'"):
        run(mon.metrics["estimated"], events, references=References(paths=mon.references))


def test_a_recorded_run_stores_a_profile_with_the_calibration(
        app: tuple[Monitor, Path], tmp_path: Path) -> None:
    """What `monitor research run` records, and batch and streaming bind later."""
    mon, path = app
    reference = pd.read_parquet(path).rename(columns={"label": "clicked"})
    labelled = tmp_path / "labelled.parquet"
    reference.to_parquet(labelled)
    mon.metric("score_drift", "predictions", metrics.psi("score", "training"), window="1h")
    chosen = profile_to_record(mon, mon.metrics["estimated"], {"training": labelled},
                               profiles=None)  # type: ignore[arg-type]  # the file is there
    assert chosen is not None
    assert chosen.profile.calibration("score", "clicked") == ReferenceProfile.fit(
        reference, ["score"], calibrations=[("score", "clicked")]).calibration(
        "score", "clicked")
    bound = mon.metrics["estimated"].aggregate.bind_reference(
        ReferenceProfile.from_json(chosen.profile.to_json()))
    assert bound.to_dict()["profile_id"] == chosen.profile.id


def test_a_score_column_that_is_not_numeric_fails_at_registration() -> None:
    mon = Monitor()
    mon.stream("predictions", schema={"score": "str"})
    with pytest.raises(DefinitionError, match=r"metric 'estimated'.*column 'score' is str"):
        mon.metric("estimated", "predictions",
                   metrics.estimated_performance("score", "clicked", "training"), window="1h")
