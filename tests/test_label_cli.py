"""The command line with a metric joined to labels: `research run/backtest --labels`,
recording, promotion to batch, `batch run` reading both files, and the refusal to promote
to streaming, on a SQLite results database of this module's own."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner, Result

import tests.label_data as label_data
from examples.music_home_events import write_events
from monitor.cli.main import cli
from monitor.research import evaluate
from monitor.storage.migrate import upgrade
from monitor.storage.store import SqlStore
from monitor.values import read_values_csv
from tests.label_data import END, HORIZON, START, label_app, labels_for, predictions

APP = ["--app", "tests.label_data:cli_app"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    where = tmp_path_factory.mktemp("label-cli")
    preds = predictions(seed=31, n=1_200)
    return {"predictions": write_events(preds, where / "home.jsonl"),
            "reversed": write_events(preds.assign(score=1.0 - preds["score"]),
                                     where / "reversed.jsonl"),
            "labels": write_events(labels_for(preds, seed=32), where / "outcomes.jsonl"),
            "database": where / "monitor.sqlite"}


@pytest.fixture(autouse=True)
def app(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{files['database']}"
    upgrade(url)
    monkeypatch.setenv("MONITOR_DATABASE_URL", url)
    monkeypatch.setattr(label_data, "cli_app", label_app(
        prediction_files=str(files["predictions"]), label_files=str(files["labels"])),
        raising=False)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, [*APP, *args], catch_exceptions=False)


def test_help_explains_labels_and_as_of() -> None:
    for command in ("run", "backtest"):
        text = invoke("research", command, "--help").output
        assert "--labels FILE" in text and "--as-of TIME" in text
        assert "joined to labels" in text


def test_run_joins_the_labels_says_what_became_of_them_and_records(
        files: dict[str, Path]) -> None:
    result = invoke("research", "run", "click_accuracy", "--data", str(files["predictions"]),
                    "--labels", str(files["labels"]))
    assert result.exit_code == 0, result.output
    metric = label_data.cli_app.get("click_accuracy")
    expected = evaluate(metric, read_events_frame(files["predictions"]),
                        labels=str(files["labels"]))
    got = read_values_csv(io.StringIO(result.stdout))
    pd.testing.assert_frame_equal(got, expected, check_exact=True, check_dtype=False)
    assert "joined," in result.stderr and "duplicates (an earlier label won)" in result.stderr
    assert "3 rejected: " in result.stderr
    for reason in ("field 'clicked' is not a boolean", "label id 'prediction_id' is empty"):
        assert f"1 {reason}" in result.stderr
    assert "windows mature as of" in result.stderr
    assert "recorded research run of click_accuracy as version 1" in result.stderr


def test_without_labels_the_error_says_which_stream_to_pass(files: dict[str, Path]) -> None:
    result = CliRunner().invoke(cli, [*APP, "research", "run", "click_auc", "--data",
                                      str(files["predictions"]), "--no-store"])
    assert result.exit_code != 0
    assert "metric 'click_auc': joins labels from stream 'outcomes'" in result.output


def test_backtest_fires_only_on_mature_windows(files: dict[str, Path]) -> None:
    common = ["research", "backtest", "click_auc", "--data", str(files["reversed"]),
              "--labels", str(files["labels"]), "--no-store"]
    soon = invoke(*common, "--as-of", (END + pd.Timedelta("1h")).isoformat())
    assert "no alert would have fired" in soon.stdout, soon.output
    settled = invoke(*common)  # as of the end of the data: the last label, a day on
    assert "alert(s) over" in settled.stdout
    assert START.strftime("%Y-%m-%d %H:%M") in settled.stdout
    bad = CliRunner().invoke(cli, [*APP, *common, "--as-of", "tomorrow-ish"])
    assert bad.exit_code != 0 and "is not a time" in bad.output


def test_batch_runs_from_both_files_then_the_metric_moves_to_streaming(
        files: dict[str, Path]) -> None:
    name = "click_accuracy"
    assert invoke("research", "run", name, "--data", str(files["predictions"]), "--labels",
                  str(files["labels"])).exit_code == 0
    promoted = invoke("promote", name, "--to", "batch", "--reason", "labels work")
    assert promoted.exit_code == 0, promoted.output
    ran = invoke("batch", "run", "--metric", name, "--since", START.isoformat(),
                 "--until", (END + HORIZON).isoformat())
    assert ran.exit_code == 0, ran.output
    assert "label rows" in ran.output
    with SqlStore.open(f"sqlite:///{files['database']}") as store:
        got = store.read_values(metric=name, stage="batch", limit=None)
    expected = evaluate(label_data.cli_app.get(name), read_events_frame(files["predictions"]),
                        labels=str(files["labels"]))
    got = got[got["window_start"] < END].drop(columns="stage").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected.drop(columns="stage"), check_exact=True,
                                  check_dtype=False)
    streamed = CliRunner().invoke(cli, [*APP, "promote", name, "--to", "streaming",
                                        "--reason", "faster"])
    assert streamed.exit_code == 0, streamed.output  # streaming joins labels too


def read_events_frame(path: Path) -> pd.DataFrame:
    from monitor.sources.files import read_events

    return read_events(path).events


def test_metrics_list_shows_the_label_stream_and_horizon() -> None:
    shown = invoke("metrics", "list").output
    assert "home + outcomes within 1d" in shown
