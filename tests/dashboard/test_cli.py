"""``monitor dashboard``: the Streamlit command it becomes, and what it prints."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import dashboard_cmd
from monitor.cli.main import cli


def test_dashboard_runs_streamlit_headless_with_the_database_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []
    monkeypatch.setattr(dashboard_cmd.os, "execve",
                        lambda path, argv, env: calls.append((path, argv, env)))
    url = "postgresql+psycopg://monitor:s3cret-pw@db.internal:5432/monitor"
    result = CliRunner().invoke(cli, ["dashboard", "--port", "8612", "--address", "0.0.0.0",
                                      "--database-url", url])
    assert result.exit_code == 0, result.output
    [(path, argv, env)] = calls
    assert argv[:4] == [path, "-m", "streamlit", "run"]
    assert Path(argv[4]) == Path(dashboard_cmd.dashboard_script())
    assert Path(argv[4]).name == "app.py" and Path(argv[4]).exists()
    options = dict(zip(argv[5::2], argv[6::2], strict=True))
    assert options["--server.port"] == "8612" and options["--server.address"] == "0.0.0.0"
    assert options["--server.headless"] == "true"
    assert options["--browser.gatherUsageStats"] == "false"
    assert env["MONITOR_DATABASE_URL"] == url
    assert "s3cret-pw" not in result.output and "monitor:***@db.internal" in result.output


def test_dashboard_refuses_a_bad_port() -> None:
    result = CliRunner().invoke(cli, ["dashboard", "--port", "0"])
    assert result.exit_code != 0 and "--port" in result.output
