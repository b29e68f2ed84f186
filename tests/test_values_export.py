"""`monitor values export` on SQLite and Postgres: the rows a recorded research run stored
come back identical — same bits, same timestamps — to the file the run wrote."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner, Result

from monitor.cli.main import cli
from monitor.values import read_values_csv
from tests.lifecycle_app import events, write_events


def monitor(url: str, *args: str, app: str = "mon") -> Result:
    result = CliRunner().invoke(cli, ["--app", f"tests.lifecycle_app:{app}", *args],
                                env={"MONITOR_DATABASE_URL": url}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_events(tmp_path / "events.jsonl", events(n=2_000, hours=30, seed=4))


def test_exported_research_values_are_the_research_run_file(
    results_url: str, data: Path, tmp_path: Path
) -> None:
    reference = write_events(tmp_path / "reference.jsonl", events(n=800, seed=5, scale=0.9))
    researched = {}
    for metric in ("latency", "latency_psi"):
        researched[metric] = tmp_path / f"{metric}.csv"
        monitor(results_url, "research", "run", metric, "--data", str(data), "--reference",
                str(reference), "--out", str(researched[metric]))

    for metric, written in researched.items():
        exported = tmp_path / f"exported-{metric}.csv"
        result = monitor(results_url, "values", "export", "--metric", metric, "--stage",
                         "research", "--out", str(exported))
        assert exported.read_text() == written.read_text()  # repr of every float: same bits
        rows = len(read_values_csv(written))
        assert f"wrote {rows} rows (1 metric) to {exported}" in result.stderr

    everything = tmp_path / "all.csv"
    monitor(results_url, "values", "export", "--stage", "research", "--out", str(everything))
    expected = pd.concat([read_values_csv(p) for p in researched.values()], ignore_index=True)
    pd.testing.assert_frame_equal(read_values_csv(everything), expected, check_exact=True)
    assert read_values_csv(everything)["window_start"].dt.tz is not None
    assert (expected["value"] != expected["value"].round(6)).any()  # real doubles, not round


def test_time_range_and_standard_output(results_url: str, data: Path, tmp_path: Path) -> None:
    written = tmp_path / "latency.csv"
    monitor(results_url, "research", "run", "latency", "--data", str(data), "--out",
            str(written))
    values = read_values_csv(written)
    since, until = "2026-05-01T05:00:00Z", "2026-05-01T09:00:00Z"
    result = monitor(results_url, "values", "export", "--since", since, "--until", until,
                     "--out", "-")
    exported = tmp_path / "exported.csv"
    exported.write_text(result.stdout)
    inside = values[(values["window_start"] >= pd.Timestamp(since))
                    & (values["window_start"] < pd.Timestamp(until))].reset_index(drop=True)
    assert inside["window_start"].nunique() == 4
    pd.testing.assert_frame_equal(read_values_csv(exported), inside, check_exact=True)
    assert f"wrote {len(inside)} rows (1 metric) to standard output" in result.stderr


def test_the_newest_version_by_default_and_another_on_request(
    results_url: str, data: Path, tmp_path: Path
) -> None:
    first, second = tmp_path / "v1.csv", tmp_path / "v2.csv"
    monitor(results_url, "research", "run", "latency", "--data", str(data), "--out", str(first))
    monitor(results_url, "research", "run", "latency", "--data", str(data), "--out",
            str(second), app="changed")
    assert set(read_values_csv(second)["field"]) == {"p50", "p95", "p99"}

    newest, older = tmp_path / "newest.csv", tmp_path / "older.csv"
    monitor(results_url, "values", "export", "--out", str(newest))
    monitor(results_url, "values", "export", "--metric", "latency", "--version", "1",
            "--out", str(older))
    assert newest.read_text() == second.read_text()
    assert older.read_text() == first.read_text()


def test_nothing_stored_is_an_empty_file_with_the_header(results_url: str,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "empty.csv"
    result = monitor(results_url, "values", "export", "--metric", "latency", "--out", str(out))
    assert out.read_text() == "metric,stage,segment,window_start,window_end,field,value,count\n"
    assert "wrote 0 rows (0 metrics)" in result.stderr
