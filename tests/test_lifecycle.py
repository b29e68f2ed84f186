"""`monitor promote`, `monitor metrics list/history` and recorded research runs, on SQLite
and on Postgres: stages in order, demotion with a reason, the history kept, each missing
precondition named with the command that fixes it, a changed definition as a new version,
and no password in any output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from monitor.cli.main import cli
from monitor.lifecycle import bind_stored_reference
from monitor.storage.store import SqlStore
from monitor.targets import target
from tests.lifecycle_app import events, mon, write_events
from tests.storage.conftest import throwaway_postgres

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "lifecycle-s3cret-pw"


def monitor(url: str, *args: str, app: str = "mon") -> Result:
    return CliRunner().invoke(cli, ["--app", f"tests.lifecycle_app:{app}", *args],
                              env={"MONITOR_DATABASE_URL": url, "USER": "ana"},
                              catch_exceptions=False)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def refused(result: Result, *messages: str) -> None:
    assert result.exit_code == 1, result.output
    for message in messages:
        assert message in result.output
    assert "Traceback" not in result.output


def table_row(output: str, metric: str) -> list[str]:
    return next(line for line in output.splitlines() if line.split()[:1] == [metric]).split()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_events(tmp_path / "events.jsonl", events())


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    return write_events(tmp_path / "reference.jsonl", events(n=600, seed=9))


def test_stages_go_in_order_and_every_change_is_kept(results_url: str, data: Path) -> None:
    refused(monitor(results_url, "promote", "latency", "--to", "batch", "--reason", "x"),
            "metric 'latency': is not registered yet",
            "`monitor research run latency --data FILE`")
    recorded = ok(monitor(results_url, "research", "run", "latency", "--data", str(data)))
    assert "recorded research run of latency as version 1 (newly registered)" in recorded.stderr

    refused(monitor(results_url, "promote", "latency", "--to", "streaming", "--reason", "x"),
            "is in research and cannot skip batch",
            "`monitor promote latency --to batch --reason ...`")
    promoted = ok(monitor(results_url, "promote", "latency", "--to", "batch", "--reason",
                          "backtest caught INC-7 two days before the page"))
    assert promoted.output == ("latency version 1 promoted: research -> batch (by ana: "
                               "backtest caught INC-7 two days before the page)\n")
    refused(monitor(results_url, "promote", "latency", "--to", "batch", "--reason", "again"),
            "version 1 is already in batch")
    ok(monitor(results_url, "promote", "latency", "--to", "streaming", "--reason",
               "alerts within a minute", "--by", "bo"))
    demoted = ok(monitor(results_url, "promote", "latency", "--to", "research", "--reason",
                         "too noisy at one-minute windows"))
    assert "latency version 1 demoted: streaming -> research" in demoted.output
    refused(monitor(results_url, "promote", "latency", "--to", "batch", "--reason", "  "),
            "a stage change needs a reason")
    assert monitor(results_url, "promote", "latency", "--to", "batch").exit_code == 2

    history = ok(monitor(results_url, "metrics", "history", "latency")).output.splitlines()
    assert history[0].split() == ["when", "(UTC)", "version", "from", "to", "boundary", "by",
                                  "reason"]
    rows = [line.split() for line in history[1:]]
    assert [row[2:5] + row[6:7] for row in rows] == [
        ["1", "-", "research", "ana"],
        ["1", "research", "batch", "ana"],
        ["1", "batch", "streaming", "bo"],
        ["1", "streaming", "research", "ana"],
    ]
    # changes into or out of streaming apply from a window boundary, the others have none
    assert [row[5] for row in rows[:2]] == ["-", "-"]
    assert all(row[5].endswith(":00:00Z") for row in rows[2:])
    assert history[2].endswith("backtest caught INC-7 two days before the page")

    listed = ok(monitor(results_url, "metrics", "list"))
    latency = table_row(listed.stdout, "latency")
    assert latency[:4] == ["latency", "home", "research", "1"]
    assert " ".join(latency).endswith(" ana: too noisy at one-minute windows")
    assert table_row(listed.stdout, "latency_psi")[2:4] == ["unregistered", "-"]


def test_the_last_change_is_cut_to_fit(results_url: str, data: Path) -> None:
    ok(monitor(results_url, "research", "run", "latency", "--data", str(data)))
    reason = "the backtest over March caught INC-7, INC-9 and INC-12 hours before users did"
    ok(monitor(results_url, "promote", "latency", "--to", "batch", "--reason", reason))
    row = " ".join(table_row(ok(monitor(results_url, "metrics", "list")).stdout, "latency"))
    assert row.endswith("ana: the backtest over March caught...")
    assert reason in monitor(results_url, "metrics", "history", "latency").output


def test_each_missing_precondition_says_which_command_to_run(
    results_url: str, data: Path, reference: Path
) -> None:
    refused(monitor(results_url, "promote", "latency_psi", "--to", "batch", "--reason", "x"),
            "metric 'latency_psi': no reference profile 'training' is stored",
            "`monitor research run latency_psi --data FILE --reference FILE`")

    with SqlStore.open(results_url) as store:  # registered, but never run in research
        store.register_metric(mon.get("latency"))
    refused(monitor(results_url, "promote", "latency", "--to", "batch", "--reason", "x"),
            "metric 'latency': no research run is recorded for version 1",
            "`monitor research run latency --data FILE`",
            "`monitor research backtest latency --data FILE`")
    backtest = ok(monitor(results_url, "research", "backtest", "latency", "--data", str(data)))
    assert "recorded research run of latency as version 1 (in research)" in backtest.stderr
    ok(monitor(results_url, "promote", "latency", "--to", "batch", "--reason", "backtested"))

    ok(monitor(results_url, "research", "run", "latency_psi", "--data", str(data),
               "--reference", str(reference)))
    ok(monitor(results_url, "promote", "latency_psi", "--to", "batch", "--reason", "stable"))
    with SqlStore.open(results_url) as store:  # what was promoted is what batch runs
        assert target(mon.get("latency_psi"), store).version == 1
        profile = store.load_profile("training")
    assert list(profile) == ["latency_ms"] and profile.name == "training"


def test_a_research_run_without_a_reference_file_uses_the_stored_profile(
    results_url: str, data: Path, reference: Path, tmp_path: Path
) -> None:
    first = tmp_path / "first.csv"
    ok(monitor(results_url, "research", "run", "latency_psi", "--data", str(data),
               "--reference", str(reference), "--out", str(first)))
    again = tmp_path / "again.csv"
    run = ok(monitor(results_url, "research", "run", "latency_psi", "--data", str(data),
                     "--out", str(again)))
    assert "comparing against the stored reference profile 'training'" in run.stderr
    assert "as version 1 (in research)" in run.stderr
    assert again.read_text() == first.read_text()


def test_a_changed_definition_is_a_new_version_promoted_only_after_its_research_run(
    results_url: str, data: Path
) -> None:
    ok(monitor(results_url, "research", "run", "latency", "--data", str(data)))
    ok(monitor(results_url, "promote", "latency", "--to", "batch", "--reason", "v1 is good"))

    listed = ok(monitor(results_url, "metrics", "list", app="changed"))
    assert table_row(listed.stdout, "latency")[2:4] == ["batch", "1*"]
    assert "the app's definition differs from the stored version" in listed.stderr
    for stage in ("batch", "streaming"):
        refused(monitor(results_url, "promote", "latency", "--to", stage, "--reason", "x",
                        app="changed"),
                "its definition changed since version 1 was registered (aggregate ps changed)",
                "`monitor research run latency --data FILE`",
                "registers it as version 2")

    recorded = ok(monitor(results_url, "research", "run", "latency", "--data", str(data),
                          app="changed"))
    assert ("as version 2 (the definition changed; version 1 was in batch)"
            in recorded.stderr)
    listed = ok(monitor(results_url, "metrics", "list", app="changed"))
    assert table_row(listed.stdout, "latency")[2:4] == ["research", "2"]
    ok(monitor(results_url, "promote", "latency", "--to", "batch", "--reason", "p95 added",
               app="changed"))

    history = monitor(results_url, "metrics", "history", "latency").output.splitlines()[1:]
    assert [line.split()[2:5] for line in history] == [
        ["1", "-", "research"], ["1", "research", "batch"],
        ["2", "-", "research"], ["2", "research", "batch"],
    ]
    assert "registered version 2: spec changed from" in history[2]
    # the original app's definition is now the changed one: it needs its own research run
    refused(monitor(results_url, "promote", "latency", "--to", "streaming", "--reason", "x"),
            "its definition changed since version 2 was registered")


def test_a_refitted_reference_changes_the_definition(
    results_url: str, data: Path, reference: Path, tmp_path: Path
) -> None:
    ok(monitor(results_url, "research", "run", "latency_psi", "--data", str(data),
               "--reference", str(reference)))
    with SqlStore.open(results_url) as store:
        before = bind_stored_reference(mon.get("latency_psi"), store)
    other = write_events(tmp_path / "other.jsonl", events(n=600, seed=10))
    ok(monitor(results_url, "research", "run", "latency_psi", "--data", str(data),
               "--reference", str(other)))
    with SqlStore.open(results_url) as store:
        after = bind_stored_reference(mon.get("latency_psi"), store)
        definition = store.current_definition("latency_psi")
    assert before.id != after.id
    assert definition is not None and (definition.version, definition.spec_id) == (2, after.id)


def test_demotion_moves_the_stored_version_even_after_the_app_changed(
    results_url: str, data: Path
) -> None:
    ok(monitor(results_url, "research", "run", "latency", "--data", str(data)))
    ok(monitor(results_url, "promote", "latency", "--to", "batch", "--reason", "ok"))
    demoted = ok(monitor(results_url, "promote", "latency", "--to", "research", "--reason",
                         "paging at night", app="changed"))
    assert "latency version 1 demoted: batch -> research (by ana: paging at night)" \
        in demoted.output


def test_without_a_database_metrics_list_shows_every_metric_unregistered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MONITOR_DATABASE_URL", raising=False)
    result = CliRunner().invoke(cli, ["--app", "tests.lifecycle_app:mon", "metrics", "list"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert table_row(result.stdout, "latency")[2:4] == ["unregistered", "-"]
    assert f"no results database at {tmp_path / 'monitor.sqlite'} yet" in result.stderr
    assert "`monitor db upgrade`" in result.stderr
    assert not (tmp_path / "monitor.sqlite").exists()

    for args in (["promote", "latency", "--to", "batch", "--reason", "x"],
                 ["metrics", "history", "latency"],
                 ["values", "export", "--out", "values.csv"]):
        result = CliRunner().invoke(cli, ["--app", "tests.lifecycle_app:mon", *args])
        refused(result, "no results database at", "`monitor db upgrade`")
    assert not (tmp_path / "monitor.sqlite").exists()


def test_a_password_in_the_database_url_never_shows(
    tmp_path: Path, data: Path, reference: Path
) -> None:
    outputs: list[str] = []

    def run(url: str, *args: str, app: str = "mon") -> Result:
        result = monitor(url, *args, app=app)
        outputs.append(result.output + result.stderr + repr(result.exception))
        return result

    with throwaway_postgres("monitor_lifecycle") as url:
        secret_url = url.replace("postgres@", f"postgres:{PASSWORD}@")  # trust auth
        refused(run(secret_url, "research", "run", "latency", "--data", str(data)),
                "postgres:***@", "has no tables yet: run `monitor db upgrade`")
        refused(run(secret_url, "metrics", "history", "latency"), "no tables yet")
        listed = ok(run(secret_url, "metrics", "list"))
        assert "postgres:***@" in listed.stderr
        ok(CliRunner().invoke(cli, ["db", "upgrade"], env={"MONITOR_DATABASE_URL": secret_url}))
        recorded = ok(run(secret_url, "research", "run", "latency", "--data", str(data),
                          "--out", str(tmp_path / "latency.csv")))
        assert "postgresql+psycopg://postgres:***@127.0.0.1:5432/monitor_lifecycle_" \
            in recorded.stderr
        ok(run(secret_url, "research", "run", "latency_psi", "--data", str(data),
               "--reference", str(reference)))
        ok(run(secret_url, "research", "backtest", "latency", "--data", str(data)))
        refused(run(secret_url, "promote", "latency", "--to", "streaming", "--reason", "x"),
                "cannot skip batch")
        ok(run(secret_url, "promote", "latency", "--to", "batch", "--reason", "ok"))
        refused(run(secret_url, "promote", "latency", "--to", "batch", "--reason", "x",
                    app="changed"), "definition changed")
        ok(run(secret_url, "metrics", "list"))
        ok(run(secret_url, "metrics", "history", "latency"))
        ok(run(secret_url, "values", "export", "--out", str(tmp_path / "values.csv")))
        ok(run(secret_url, "values", "export", "--out", "-"))
    unreachable = f"postgresql://monitor:{PASSWORD}@127.0.0.1:1/monitor"
    for args in (["research", "run", "latency", "--data", str(data)],
                 ["promote", "latency", "--to", "batch", "--reason", "x"],
                 ["metrics", "history", "latency"],
                 ["values", "export", "--out", str(tmp_path / "values.csv")]):
        refused(run(unreachable, *args), "cannot connect to the postgresql server at host "
                                         "127.0.0.1, port 1", "monitor:***@")
    listed = ok(run(unreachable, "metrics", "list"))
    assert table_row(listed.stdout, "latency")[2] == "?"
    assert "stages unknown: cannot connect" in listed.stderr
    assert outputs and not any(PASSWORD in text for text in outputs)


def test_the_lifecycle_is_pure() -> None:
    script = ("import json, sys; import monitor.lifecycle; "
              "print(json.dumps([m for m in ('sqlalchemy', 'alembic', 'psycopg', 'sqlite3') "
              "if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert json.loads(out.stdout) == []
