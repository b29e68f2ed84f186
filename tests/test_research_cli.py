"""`monitor research run/backtest` and `monitor metrics list` on real files.

The runs are recorded in a SQLite results database of this module's own.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from monitor.cli.main import cli
from monitor.research import evaluate
from monitor.storage import results
from monitor.storage.migrate import upgrade
from monitor.values import read_values_csv
from tests.cli_app import mon

APP = ["--app", "tests.cli_app:mon"]


@pytest.fixture(scope="module")
def results_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('research-cli') / 'monitor.sqlite'}"
    upgrade(url)
    return url


@pytest.fixture(autouse=True)
def record_in(results_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_DATABASE_URL", results_database)


def good_events(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-05-01T00:00:00Z")
    times = start + pd.to_timedelta(np.sort(rng.integers(0, 3 * 3600, n)), unit="s")
    latency = rng.lognormal(5, 0.5, n)
    latency[(times >= start + pd.Timedelta("2h")) & (rng.random(n) < 0.2)] = 5000.0  # spike
    return pd.DataFrame({
        "ts": [t.isoformat() for t in times],
        "latency_ms": latency,
        "country": rng.choice(["SE", "US"], n),
        "clicked": rng.random(n) < 0.1,
    })


def invoke(*args: str):
    result = CliRunner().invoke(cli, [*APP, *args], catch_exceptions=False)
    return result


def test_run_rejects_bad_rows_says_why_and_computes_from_the_rest(tmp_path: Path) -> None:
    good = good_events()
    lines = [json.dumps(row) for row in good.to_dict("records")]
    bad = ['{"ts": "2026-05-01T00:00:00Z", "latency_ms": 1.0,',  # truncated JSON
           "[1, 2, 3]",
           json.dumps({"ts": "2026-05-01T00:10:00Z", "latency_ms": "fast", "country": "SE"}),
           json.dumps({"ts": "yesterday", "latency_ms": 3.0, "country": "SE"}),
           '{"ts": "2026-05-01T00:10:00Z", "latency_ms": Infinity, "country": "SE"}',
           json.dumps({"ts": "2026-05-01T00:10:00Z", "country": "SE"})]
    for i, line in enumerate(bad):
        lines.insert(10 + 40 * i, line)
    data = tmp_path / "events.jsonl"
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "values.csv"

    result = invoke("research", "run", "latency", "--data", str(data), "--out", str(out))

    assert result.exit_code == 0, result.output
    summary = result.stderr
    assert f"read {len(good) + len(bad)} events" in summary
    assert f"used {len(good)}, rejected {len(bad)}" in summary
    for reason in ["malformed JSON", "not a JSON object", "field 'latency_ms' is not a number",
                   "unparseable timestamp in ts", "field 'latency_ms' is not finite",
                   "field 'latency_ms' is null"]:
        assert reason in summary
    written = read_values_csv(out)
    expected = evaluate(mon.get("latency"), good)
    pd.testing.assert_frame_equal(written, expected, check_dtype=False, check_exact=True)


def test_csv_and_parquet_give_the_same_values_as_json_lines(tmp_path: Path) -> None:
    good = good_events(seed=3)
    records = good.to_dict("records")
    (tmp_path / "e.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    good.to_parquet(tmp_path / "e.parquet")
    with (tmp_path / "e.csv").open("w") as handle:
        good.to_csv(handle, index=False)
        handle.write("2026-05-01T00:00:00Z,1.0,SE,False,surplus\n")  # a malformed row
    outputs = {}
    for suffix in ("jsonl", "parquet", "csv"):
        out = tmp_path / f"{suffix}.csv"
        result = invoke("research", "run", "latency", "--data", str(tmp_path / f"e.{suffix}"),
                        "--out", str(out))
        assert result.exit_code == 0, result.output
        outputs[suffix] = out.read_text()
    assert outputs["jsonl"] == outputs["parquet"] == outputs["csv"]
    assert "rejected 1: 1 malformed CSV row: expected 4 fields, got 5" in result.stderr


def test_backtest_lists_the_alerts(tmp_path: Path) -> None:
    data = tmp_path / "events.jsonl"
    good_events().to_json(data, orient="records", lines=True)
    result = invoke("research", "backtest", "latency", "--data", str(data))
    assert result.exit_code == 0, result.output
    assert "alert(s) over 3 windows" in result.stdout
    lines = result.stdout.splitlines()
    # the spike is in the third hour; every segment's P99 breaches there, nothing before
    fired = [line for line in lines if "2026-05-01 02:00:00" in line]
    assert {line.split()[2] for line in fired} == {"*", "country=SE", "country=US"}
    assert not any("2026-05-01 00:00:00" in line or "2026-05-01 01:00:00" in line
                   for line in lines)


def test_metrics_list_shows_windows_segments_and_owners(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    monkeypatch.setenv("MONITOR_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.sqlite'}")
    result = invoke("metrics", "list")
    assert result.exit_code == 0
    latency = next(line for line in result.stdout.splitlines() if line.startswith("latency"))
    assert latency.split() == ["latency", "home", "unregistered", "-", "1h", "country",
                               "p50,p99", "1", "platform", "-"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["research", "run", "latncy", "--data", "x.jsonl"], "no metric named 'latncy'"),
        (["research", "run", "latency", "--data", "missing.jsonl"],
         "no event file matches 'missing.jsonl'"),
        (["research", "backtest", "ctr", "--data", "x.jsonl"], "has no alert rules"),
    ],
)
def test_errors_say_what_to_do(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, [*APP, *args])
    assert result.exit_code == 1
    assert message in result.output


def test_without_a_results_database_a_run_says_how_to_make_one_or_not_to_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MONITOR_DATABASE_URL")
    data = tmp_path / "events.jsonl"
    good_events().to_json(data, orient="records", lines=True)
    for command in ("run", "backtest"):
        result = CliRunner().invoke(cli, [*APP, "research", command, "latency", "--data",
                                          str(data)])
        assert result.exit_code == 1
        assert f"no results database at {tmp_path / 'monitor.sqlite'} yet: create it with " \
               "`monitor db upgrade`" in result.output
        assert "pass --no-store" in result.output
    computed = invoke("research", "run", "latency", "--data", str(data), "--no-store")
    assert computed.exit_code == 0, computed.output
    (tmp_path / "values.csv").write_text(computed.stdout)
    pd.testing.assert_frame_equal(read_values_csv(tmp_path / "values.csv"),
                                  evaluate(mon.get("latency"), good_events()),
                                  check_dtype=False, check_exact=True)
    assert "recorded" not in computed.stderr
    assert not (tmp_path / "monitor.sqlite").exists()


def test_a_missing_app_says_how_to_name_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MONITOR_APP", raising=False)
    result = CliRunner().invoke(cli, ["metrics", "list"])
    assert result.exit_code == 2
    assert "pass --app module:attribute or set MONITOR_APP" in result.output


def test_a_value_the_database_refuses_is_an_error_not_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Labels are escaped so that no stored value is refused (tests/test_segments.py); if
    one still is, the run says so and records nothing."""
    data = tmp_path / "events.jsonl"
    good_events().to_json(data, orient="records", lines=True)

    def refuse(*args: object, **kwargs: object) -> int:
        raise sa.exc.DataError("INSERT INTO metric_values ...", {}, Exception(
            "PostgreSQL text fields cannot contain NUL (0x00) bytes"))

    monkeypatch.setattr(results, "write_windows", refuse)
    result = CliRunner().invoke(cli, [*APP, "research", "run", "latency", "--data", str(data)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert ("the results database refused the run of latency, so nothing was recorded: "
            "PostgreSQL text fields cannot contain NUL (0x00) bytes") in result.output
    assert "pass --no-store" in result.output
