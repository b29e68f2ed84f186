"""`monitor assertions export` on a research run recorded through the command line and on
a batch run from a SQL table, in SQLite and Postgres: the lines are the examples research
computes in process on the same events."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from monitor.assertion_examples import examples
from monitor.batch.runner import BatchRunner, Retry
from monitor.batch.sources import TableSource
from monitor.batch.tables import load_events
from monitor.cli.main import cli
from monitor.research import run
from monitor.storage.store import SqlStore
from monitor.targets import batch_targets
from tests.assertions_cli_app import mon

APP = ["--app", "tests.assertions_cli_app:mon"]
START = pd.Timestamp("2026-04-01T00:00:00Z")
HOURS = 6


@pytest.fixture
def database(results_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MONITOR_DATABASE_URL", results_url)
    return results_url


def events(n: int = 2_000, seed: int = 18) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    offsets = np.sort(rng.integers(0, HOURS * 3_600, n))
    return pd.DataFrame({
        "ts": [t.isoformat() for t in START + pd.to_timedelta(offsets, unit="s")],
        "view_id": rng.integers(0, 1_800, n),  # some views twice
        "user_id": rng.integers(0, 200, n).astype(str),
        "country": rng.choice(["SE", "DE", "BR"], n),
        "score": rng.random(n).round(6),
        "new_user": rng.random(n) < 0.4,
    })


def iso(moment: datetime | str) -> str:
    return pd.Timestamp(moment).tz_convert("UTC").isoformat().replace("+00:00", "Z")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, [*APP, *args], catch_exceptions=False)


def record_research_run(tmp_path: Path, data: pd.DataFrame) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in data.to_dict("records")))
    result = invoke("research", "run", "sure_about_strangers", "--data", str(path))
    assert result.exit_code == 0, result.output


def expected_lines(data: pd.DataFrame, since: pd.Timestamp, until: pd.Timestamp,
                   segments: set[str] | None = None, stage: str = "research"
                   ) -> list[dict[str, object]]:
    """The examples research computes in process, laid out as the export promises."""
    spec = mon.metrics["sure_about_strangers"]
    table = examples(spec, run(spec, data).windows)
    starts = pd.to_datetime(table["window_start"], utc=True)
    table = table[(starts >= since) & (starts < until)]
    if segments is not None:
        table = table[table["segment"].isin(segments)]
    table = table.assign(start=pd.to_datetime(table["window_start"], utc=True))
    table = table.sort_values(["start", "segment"], kind="stable")  # sample order kept
    return [{"metric": "sure_about_strangers", "version": 1, "stage": stage,
             "segment": row["segment"], "window_start": iso(row["window_start"]),
             "window_end": iso(row["window_end"]), "id": row["id"],
             "severity": row["severity"],
             "fields": {"ts": row["ts"], "user_id": row["user_id"], "score": row["score"]}}
            for row in table.to_dict("records")]


def test_export_of_a_range_equals_the_examples_research_computes(
        database: str, tmp_path: Path) -> None:
    data = events()
    record_research_run(tmp_path, data)
    since, until = START + pd.Timedelta(hours=1), START + pd.Timedelta(hours=4)
    out = tmp_path / "examples.jsonl"

    result = invoke("assertions", "export", "sure_about_strangers",
                    "--since", "2026-04-01T01:00Z", "--until", "2026-04-01T04:00:00+00:00",
                    "--out", str(out))

    assert result.exit_code == 0, result.output
    got = [json.loads(line) for line in out.read_text().splitlines()]
    want = expected_lines(data, since, until)
    assert got == want
    assert len(got) == 3 * 4 * 5  # 3 hours x (3 countries and '*'), full samples of k = 5
    assert [line["id"] for line in got] == [line["id"] for line in want]  # order too
    assert "wrote 60 examples of sure_about_strangers version 1 (research, 12 windows)" in (
        result.stderr)
    assert database.split("://")[1] not in result.output  # the URL is never printed


def test_export_to_stdout_of_some_segments(database: str, tmp_path: Path) -> None:
    data = events(seed=7)
    record_research_run(tmp_path, data)

    result = invoke("assertions", "export", "sure_about_strangers", "--stage", "research",
                    "--segment", "country=SE", "--segment", "country=BR", "--out", "-")

    assert result.exit_code == 0, result.output
    got = [json.loads(line) for line in result.stdout.splitlines()]
    everything = START, START + pd.Timedelta(hours=HOURS)
    assert got == expected_lines(data, *everything, segments={"country=SE", "country=BR"})
    assert {line["segment"] for line in got} == {"country=SE", "country=BR"}


def test_export_from_batch_equals_the_examples_research_computes(
        database: str, tmp_path: Path) -> None:
    data = events(seed=11)
    table = data.assign(ts=pd.to_datetime(data["ts"], utc=True))
    engine = sa.create_engine(database)
    with SqlStore.open(database) as store:
        version = store.register_metric(mon.metrics["sure_about_strangers"]).version
        store.record_stage_change("sure_about_strangers", version, "batch", by="test",
                                  reason="export")
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("DROP TABLE IF EXISTS assertions_cli_events"))
            load_events(engine, mon.streams["home"], table)
            batch = BatchRunner(store, lambda m: TableSource(engine, m.stream, chunk_rows=97),
                                retry=Retry(attempts=1))
            batch.run_many(batch_targets(mon, store, names=["sure_about_strangers"]),
                           since=START, until=START + pd.Timedelta(hours=HOURS))
            with engine.begin() as conn:
                conn.execute(sa.text("DROP TABLE assertions_cli_events"))
        finally:
            engine.dispose()

    # the metric is in batch: the stage it is read from by default
    result = invoke("assertions", "export", "sure_about_strangers",
                    "--since", "2026-04-01T02:00Z", "--until", "2026-04-01T05:00Z", "--out", "-")

    assert result.exit_code == 0, result.output
    got = [json.loads(line) for line in result.stdout.splitlines()]
    since, until = START + pd.Timedelta(hours=2), START + pd.Timedelta(hours=5)
    assert got == expected_lines(data, since, until, stage="batch")
    windows = {(line["window_start"], line["segment"]) for line in got}
    assert len(windows) == 3 * 4  # 3 hours x (3 countries and '*')


def test_errors_say_what_to_run_next(database: str, tmp_path: Path) -> None:
    out = tmp_path / "examples.jsonl"
    unknown = invoke("assertions", "export", "no_such", "--out", str(out))
    assert unknown.exit_code == 1
    assert "no metric 'no_such' in the results database" in unknown.output
    assert "monitor research run no_such --data FILE" in unknown.output

    record_research_run(tmp_path, events())
    mean = invoke("research", "run", "mean_score", "--data", str(tmp_path / "events.jsonl"))
    assert mean.exit_code == 0, mean.output
    not_assertion = invoke("assertions", "export", "mean_score", "--out", str(out))
    assert not_assertion.exit_code == 1
    assert "'mean_score' is not an assertion (its aggregate is mean)" in not_assertion.output

    empty = invoke("assertions", "export", "sure_about_strangers", "--since", "2027-01-01",
                   "--out", str(out))
    assert empty.exit_code == 1
    assert "nothing stored for sure_about_strangers version 1 in research" in empty.output
    assert "monitor research run sure_about_strangers --data FILE" in empty.output
    batch = invoke("assertions", "export", "sure_about_strangers", "--stage", "batch",
                   "--out", str(out))
    assert batch.exit_code == 1
    assert "monitor batch run --metric sure_about_strangers" in batch.output
    assert not out.exists()

    backwards = invoke("assertions", "export", "sure_about_strangers", "--since", "2026-04-02",
                       "--until", "2026-04-01", "--out", str(out))
    assert backwards.exit_code == 2
    assert "--since must be before --until" in backwards.output
